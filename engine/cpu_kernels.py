"""The same numbers on every x86-64 CPU: torch's CPU kernels are held to AVX2 before torch loads.

On one machine a spec and seed give the same metrics. Across machines torch picks its CPU kernels by the
instruction set it finds (ATen's vectorised kernels, oneDNN's, MKL's GEMM); each rounds its own way, and a
tiny model trained from scratch grows that rounding into another model. Measured on 2026-12-07 with
`pulse --method ga --model llava-tiny --data people-tiny --requests 2 --knowledge pretrained --seed 42`: on an
AVX-512 machine the original answered 62.5% of the MMBench-format set, and GA forgot none of the forget
people's questions. The AVX2 machine that made docs/results/pulse-main.json had 50.0%, and GA forgot 20% of
the image questions. With ATen's and oneDNN's kernels held to AVX2, the AVX-512 machine gives the record's
cell exactly. MKL is held to its AVX2 reproducibility branch as well (`MKL_CBWR`): on Intel CPUs MKL would
otherwise take its AVX-512 code; on AMD it runs AVX2 already. NumPy's and SciPy's OpenBLAS (the membership
attack's logistic regression) is held to its Haswell (AVX2) kernels: on this machine OpenBLAS picks those
itself, and its SkylakeX kernels, which an Intel AVX-512 CPU would get, move the `shapes-tiny` original's
`mia.auc` from 0.86969 to 0.86979. NumPy's own vectorised loops (its `exp` and `log`, which the logistic
regression calls) are held to AVX2 too (`NPY_DISABLE_CPU_FEATURES` names NumPy's AVX-512 dispatch targets, in the
names NumPy 2.4 gives them): with them on AVX-512, `mmul-workbench demo --json` on this AMD EPYC read the
record's every recall and AUC but the membership attack's (Retrain's `mia.auc` 0.479724 against 0.479812); held,
all of its 1,031 numbers other than timings are the record's. On the tiny models AVX2 costs no time (that pulse
run: 20.1 s native, 19.5 s held; a clip-tiny MultiDelete run: 11.1 s and 11.4 s).

`hold_cpu_kernels` runs when `engine` is imported, before any torch or NumPy import: engine code imports them
lazily, and processes the engine starts inherit the variables. A variable the operator has set is kept;
`MMUL_CPU_KERNELS=native` leaves every kernel to the machine. Other architectures and CPUs without AVX2 are left
alone, and CUDA kernels are not touched. Each run's cost record names the ATen kernels that ran (`cpu_kernels`).
Any other value of MMUL_CPU_KERNELS is refused before a run or an attack starts (`check_setting`: engine.preflight,
engine.attacks.attack_spec).

The module also reads the CPU's model name (`cpu_model`: a run's cost `device`, a results record's machine), from
the same /proc/cpuinfo.
"""
from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import MutableMapping
from pathlib import Path

HELD = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
# NumPy names its dispatch targets X86_V3 (AVX2), X86_V4 (AVX-512 Skylake), AVX512_ICL, AVX512_SPR from 2.4 on;
# a name the installed NumPy does not dispatch would only print a warning on every start, so older ones keep theirs.
NUMPY_NAMES_SINCE = (2, 4)
OPT_OUT = ("MMUL_CPU_KERNELS", "native")  # the variable and the value that leave the kernels to the machine
SETTINGS = ("avx2", "native")  # what MMUL_CPU_KERNELS may say (unset: avx2)
CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_value(key: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The first `key : value` line's value in /proc/cpuinfo (Linux), or None (no such line, or no such file)."""
    try:
        with cpuinfo.open() as lines:
            line = next((line for line in lines if line.startswith(key)), None)
    except OSError:
        return None
    return line.partition(":")[2].strip() if line is not None else None


def cpu_has_avx2(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU lists AVX2 (Linux; False where /proc/cpuinfo cannot be read)."""
    return "avx2" in (cpuinfo_value("flags", cpuinfo) or "").split()


def cpu_model(cpuinfo: Path = CPUINFO) -> str | None:
    """The CPU's model name (Linux), or None where /proc/cpuinfo does not say."""
    return cpuinfo_value("model name", cpuinfo) or None


def numpy_version() -> tuple[int, int] | None:
    """The installed NumPy's (major, minor), read from its dist-info folder's name without importing it (an import
    would fix its dispatch before the hold; importlib.metadata costs 40 ms, this under 1 ms); None if not found."""
    spec = importlib.util.find_spec("numpy")
    if spec is None or spec.origin is None:
        return None
    for info in Path(spec.origin).parent.parent.glob("numpy-*.dist-info"):
        major, _, rest = info.name.removeprefix("numpy-").partition(".")
        minor = rest.partition(".")[0]
        if major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return None


def setting_error(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """One line on a MMUL_CPU_KERNELS that is neither unset nor one of SETTINGS, else None."""
    name = OPT_OUT[0]
    value = environ.get(name)
    if value is None or value in SETTINGS:
        return None
    return (f"{name}={value}: give avx2 (torch's CPU kernels held to AVX2, the same numbers on every x86-64 "
            f"machine; the default) or native (the machine's own)")


def check_setting() -> None:
    """SpecError when MMUL_CPU_KERNELS says something else than SETTINGS (before a run or an attack starts)."""
    from engine.errors import SpecError

    if (error := setting_error()) is not None:
        raise SpecError(error)


def hold_cpu_kernels(environ: MutableMapping[str, str] = os.environ, machine: str | None = None,
                     has_avx2: bool | None = None, numpy: tuple[int, int] | None = None) -> dict[str, str]:
    """Set the HELD variables the environment does not set yet; return those it set. NumPy's is set only for a
    NumPy that names its targets as HELD does (`numpy`: its version, read from the installation if not given)."""
    name, native = OPT_OUT
    if environ.get(name) == native:
        return {}
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64") or not (cpu_has_avx2() if has_avx2 is None else has_avx2):
        return {}
    numpy_names_match = (numpy or numpy_version() or (0, 0)) >= NUMPY_NAMES_SINCE
    added = {key: value for key, value in HELD.items()
             if key not in environ and (key != "NPY_DISABLE_CPU_FEATURES" or numpy_names_match)}
    environ.update(added)
    return added
