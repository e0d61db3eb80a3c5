"""Shared fixtures. Real faces come from packages (skimage astronaut, matplotlib's Grace Hopper)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# One torch thread: on a busy 2-core box two threads run several times slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins, 512x512 uint8 RGB."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """Grace Hopper, 600x512 uint8 RGB."""
    import matplotlib.cbook

    from facelab.workspace import read_image

    return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture
def ws(tmp_path: Path):
    from facelab.workspace import Workspace

    w = Workspace(tmp_path / "workspace")
    w.init()
    return w
