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
