"""Process-wide CPU settings: OpenMP spin default and the allocator keeping freed memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelab.utils.runtime import SPIN_COUNT, set_openmp_defaults

ROOT = Path(__file__).resolve().parents[2]


def test_spin_default_set_when_environment_is_silent():
    env: dict[str, str] = {}
    set_openmp_defaults(env)
    assert env == {"GOMP_SPINCOUNT": SPIN_COUNT}


@pytest.mark.parametrize("env", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "7"}])
def test_explicit_environment_wins(env):
    before = dict(env)
    set_openmp_defaults(env)
    assert env == before


def test_main_sets_spin_before_torch_is_imported():
    code = ("import os, sys; sys.argv = ['main.py', '--version']; import runpy\n"
            "try:\n    runpy.run_path('main.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == SPIN_COUNT


FAULTS = """
import resource, sys
from facelab.utils.runtime import keep_freed_memory
import torch
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1),
                          torch.nn.Flatten(), torch.nn.Linear(64 * 32 * 32, 512))  # a 128 MB weight gradient
x = torch.rand(16, 3, 32, 32)
def step():
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator setting")
def test_keep_freed_memory_cuts_page_faults_of_repeated_training_steps():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1])

    default, keep = faults("default"), faults("keep")
    assert default > 5 * (128 << 20) // 4096 // 2  # the weight gradient alone is faulted in again each step
    assert keep < default / 3, (keep, default)
