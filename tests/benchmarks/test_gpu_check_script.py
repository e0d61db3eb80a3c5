"""benchmarks/gpu_check.sh on a machine without a GPU: it parses, and its dry run names every step and runs nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
PINNED = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
STEPS = {
    "venv": (f"torch=={PINNED}+cu128", "requirements-dev.txt"),
    "tests": ("-m pytest -q", "-m gpu"),
    "train_flops": ("benchmarks/bench_train_flops.py",),
    "extract": ("benchmarks/bench_extract.py", "--device cuda"),
    "merge": ("benchmarks/bench_merge.py", "--device cuda"),
    "demo": ("main.py demo --device cuda",),
}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_dry_run_names_every_step_within_nine_minutes_and_runs_nothing(tmp_path):
    work, venv = tmp_path / "work", tmp_path / "venv"
    done = _run("--dry-run", "--work", str(work), "--venv", str(venv))
    assert done.returncode == 0, done.stderr
    plan = {m.group(1): (int(m.group(2)), m.group(3))
            for m in re.finditer(r"^step (\S+) \(timeout (\d+)s\): (.*)$", done.stdout, re.M)}
    assert list(plan) == list(STEPS)
    for name, parts in STEPS.items():
        for part in parts:
            assert part in plan[name][1], (name, part)
    budget = int(re.search(r"budget (\d+)s", done.stdout).group(1))
    assert budget + 10 < 9 * 60  # every step's limit is cut to what is left of the budget
    assert str(work / "gpu_check.md") in done.stdout
    assert not work.exists() and not venv.exists()


def test_unknown_argument_is_refused():
    done = _run("--no-such-flag")
    assert done.returncode == 2 and "unknown argument" in done.stderr
