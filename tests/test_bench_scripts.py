"""The bench scripts say how they are used and fail in words (a review found --help ending in a traceback, a
script that printed nothing, and one that exited 0 with every step failed)."""
import subprocess
import sys

from conftest import ROOT


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_realsize_takes_help_and_names_its_configs():
    shown = bench("bench/realsize.py", "--help")
    assert shown.returncode == 0 and "{clip-b32,blip-base,qwen2-vl,llava-7b}" in shown.stdout
    unknown = bench("bench/bench_realsize.py", "nosuch")
    assert unknown.returncode == 2 and "invalid choice: 'nosuch'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_the_cuda_part_says_where_it_runs():
    alone = bench("bench/bench_cuda.py")
    assert alone.returncode == 1 and "runs inside bench/bench_engine.py on a CUDA device" in alone.stderr


def test_realsize_steps_every_config_by_default_and_writes_its_figures(tmp_path, monkeypatch):
    """`python bench/bench_realsize.py` with no NAME (what the docs run) stepped nothing: argparse checked the
    default list against `choices` and refused it. Each step's process is stood in for here; the figures come back
    as JSON for the docs' table."""
    import json

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import bench_realsize

    def step(command, **_kwargs):
        name, method = command[-2:]
        line = {"update": "all", "peak_rss_growth_bytes": 2 * 2**30, "plan_total_bytes": 4 * 2**30, "build_seconds": 1.0,
                "step_seconds": 2.0, "plan_over_measured": 2.0, "torch_threads": 1, "config": name, "method": method}
        return subprocess.CompletedProcess(command, 0, json.dumps(line) + "\n", "")

    monkeypatch.setattr(bench_realsize.subprocess, "run", step)
    monkeypatch.setattr(sys, "argv", ["bench_realsize.py", "--json-out", str(tmp_path / "realsize.json")])
    bench_realsize.main()
    figures = json.loads((tmp_path / "realsize.json").read_text())["figures"]
    assert [f["name"] for f in figures[:2]] == ["clip-b32 MultiDelete (all)", "clip-b32 GA (all)"]
    assert len(figures) == 2 * len(bench_realsize.SIZES) and figures[0]["value"] == 2.0
    assert "measured / planned 0.50" in figures[0]["detail"]
