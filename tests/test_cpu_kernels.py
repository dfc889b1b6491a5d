"""engine/cpu_kernels.py: torch's CPU kernels are held to AVX2 on x86-64 before torch loads, so that a spec and
seed give the same numbers on an AVX2 and an AVX-512 machine; an operator's own setting, other architectures and
CPUs without AVX2 are left alone."""
import os
import platform
import subprocess
import sys

import pytest

from conftest import ROOT, cli, cli_env
from engine.cpu_kernels import (HELD, NUMPY_NAMES_SINCE, OPT_OUT, cpu_has_avx2, cpu_model, hold_cpu_kernels,
                                numpy_version, setting_error)


def test_the_kernels_are_held_unless_the_operator_or_the_machine_says_otherwise():
    environ = {}
    assert hold_cpu_kernels(environ, machine="x86_64", has_avx2=True, numpy=(2, 4)) == HELD and environ == HELD
    environ = {}  # a NumPy before 2.4 names its targets otherwise: it is left to itself, the rest is held
    assert hold_cpu_kernels(environ, machine="x86_64", has_avx2=True, numpy=(2, 3)) == environ
    assert "NPY_DISABLE_CPU_FEATURES" not in environ and environ["ATEN_CPU_CAPABILITY"] == "avx2"
    environ = {"ATEN_CPU_CAPABILITY": "default"}  # the operator's own: kept
    added = hold_cpu_kernels(environ, machine="AMD64", has_avx2=True, numpy=(3, 0))
    assert environ["ATEN_CPU_CAPABILITY"] == "default" and "ATEN_CPU_CAPABILITY" not in added
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX2" and environ["MKL_CBWR"] == "AVX2"
    assert environ["OPENBLAS_CORETYPE"] == "Haswell" and environ["NPY_DISABLE_CPU_FEATURES"].startswith("X86_V4")
    name, native = OPT_OUT
    for environ, machine, has_avx2 in (({name: native}, "x86_64", True), ({}, "aarch64", True), ({}, "x86_64", False)):
        before = dict(environ)
        assert hold_cpu_kernels(environ, machine=machine, has_avx2=has_avx2) == {} and environ == before


def test_avx2_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse sse2 avx avx2 fma\n")
    assert cpu_has_avx2(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx512f\n")  # avx512f is not avx2's flag
    assert not cpu_has_avx2(cpuinfo)
    assert not cpu_has_avx2(tmp_path / "missing")


def test_the_cpu_model_is_read_from_the_same_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: avx2\n")
    assert cpu_model(cpuinfo) == "Some CPU 9000"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: avx2\n")
    assert cpu_model(cpuinfo) is None and cpu_model(tmp_path / "missing") is None


def test_an_unknown_setting_is_refused_in_one_line_before_anything_runs(tmp_path, monkeypatch):
    name, native = OPT_OUT
    assert setting_error({}) is None and setting_error({name: native}) is None and setting_error({name: "avx2"}) is None
    assert setting_error({name: "avx512"}).startswith(f"{name}=avx512: give avx2")
    out = subprocess.run(cli("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"),
                         cwd=ROOT, env={**cli_env(tmp_path), name: "fast"}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"error: {setting_error({name: 'fast'})}"
    assert not (tmp_path / "sessions").exists() or not any((tmp_path / "sessions").iterdir())  # no session made
    from engine.attacks import attack_spec  # an attack is refused the same way, before its parent is read
    from engine.errors import SpecError

    monkeypatch.setenv(name, "fast")
    with pytest.raises(SpecError, match=f"{name}=fast: give avx2"):
        attack_spec("quantize", {"id": "any"}, {})


def fresh_process(code: str, **extra: str) -> str:
    environ = {key: value for key, value in os.environ.items() if key not in HELD and key != OPT_OUT[0]}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**environ, **extra}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr  # NumPy warns on stderr of a target it lacks
    return out.stdout.strip()


def capability(code: str, **extra: str) -> str:
    return fresh_process(f"{code}; print(torch.backends.cpu.get_cpu_capability())", **extra)


AVX512_TARGETS = "import numpy; from numpy._core._multiarray_umath import __cpu_features__ as f; " \
                 "print(sorted(k for k in ('X86_V4', 'AVX512_ICL', 'AVX512_SPR') if f.get(k)))"


def test_a_process_that_imports_the_engine_first_runs_numpys_avx2_loops():
    """NumPy's own vectorised loops (exp, log: the membership attack's logistic regression) take no AVX-512 target
    after `import engine`, on an x86-64 CPU with AVX2 and a NumPy that names its targets as HELD does; without the
    engine, or with MMUL_CPU_KERNELS=native, they take the machine's own (on an AVX-512 CPU, X86_V4 and up)."""
    machine_own = fresh_process(AVX512_TARGETS)
    held = fresh_process(f"import engine; {AVX512_TARGETS}")
    x86_with_avx2 = platform.machine().lower() in ("x86_64", "amd64") and cpu_has_avx2()
    assert held == ("[]" if x86_with_avx2 and numpy_version() >= NUMPY_NAMES_SINCE else machine_own)
    assert fresh_process(f"import engine; {AVX512_TARGETS}", **{OPT_OUT[0]: OPT_OUT[1]}) == machine_own


def test_numpys_version_is_read_without_importing_it():
    import numpy

    assert numpy_version() == tuple(int(part) for part in numpy.__version__.split(".")[:2])


def test_a_process_that_imports_the_engine_first_runs_the_held_kernels():
    """In a fresh process: torch alone takes the machine's best kernels; `import engine` first holds them to AVX2
    on an x86-64 CPU with AVX2 (else changes nothing); MMUL_CPU_KERNELS=native gives the machine's own back."""
    machine_own = capability("import torch")
    held = capability("import engine, torch")
    x86_with_avx2 = platform.machine().lower() in ("x86_64", "amd64") and cpu_has_avx2()
    assert held == ("AVX2" if x86_with_avx2 else machine_own)
    name, native = OPT_OUT
    assert capability("import engine, torch", **{name: native}) == machine_own
