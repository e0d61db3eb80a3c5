"""preview.png layout, loss.png, and the loop's pure helpers (history, spike test)."""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np
import pytest

from facelab.train.loop import GuardConfig, append_history, is_spike
from facelab.train.preview import COLUMNS, compose_preview, header_height, write_loss_plot
from facelab.workspace.images import read_image, to_uint8


def test_compose_preview_layout(astronaut):
    r, n = 32, 3
    rng = np.random.default_rng(0)
    cols = [rng.random((n, r, r, 3), dtype=np.float32) for _ in COLUMNS]
    cols[0][0] = astronaut[::16, ::16].astype(np.float32) / 255.0
    grid = compose_preview(*cols, min_cell=0)
    h = header_height(r)
    assert grid.shape == (h + n * r, len(COLUMNS) * r, 3) and grid.dtype == np.uint8
    for i in range(n):
        for j, col in enumerate(cols):
            cell = grid[h + i * r: h + (i + 1) * r, j * r: (j + 1) * r]
            np.testing.assert_array_equal(cell, to_uint8(col[i]))
    header = grid[:h]
    for j in range(len(COLUMNS)):  # every column has a label drawn in its header cell
        assert header[:, j * r: (j + 1) * r].max() > 150


def test_small_models_get_cells_a_person_can_judge(astronaut):
    face = astronaut[::8, ::8].astype(np.float32) / 255.0  # 64 px
    cols = [np.stack([face, face]) for _ in COLUMNS]
    grid = compose_preview(*cols)
    h = header_height(128)
    assert grid.shape == (h + 2 * 128, len(COLUMNS) * 128, 3)
    cell = grid[h:h + 128, :128].astype(np.float32) / 255.0
    back = cv2.resize(cell, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(back - face).mean() < 0.02  # the same face, enlarged


def test_compose_preview_rejects_mismatched_columns():
    a = np.zeros((2, 16, 16, 3), np.float32)
    with pytest.raises(ValueError):
        compose_preview(a, a, a, a, np.zeros((2, 8, 8, 3), np.float32))


def test_loss_plot_is_written(tmp_path):
    hist = {"iteration": [1.0, 2.0, 3.0, 4.0], "src_loss": [4.0, 3.0, math.nan, 1.0], "dst_loss": [5.0, 4.0, 3.0, 2.0]}
    path = write_loss_plot(tmp_path / "loss.png", hist, title="t")
    img = read_image(path)
    assert img.shape == (300, 800, 3)
    # orange (src) and blue (dst) lines are both drawn
    orange = np.all(np.abs(img.astype(int) - [255, 127, 14]) < 40, axis=-1).sum()
    blue = np.all(np.abs(img.astype(int) - [31, 119, 180]) < 40, axis=-1).sum()
    assert orange > 50 and blue > 50


def test_append_history_backfills_new_keys():
    h: dict = {}
    append_history(h, 1, {"src_loss": 1.0, "dst_loss": 2.0})
    append_history(h, 2, {"src_loss": 0.5, "dst_loss": 1.5, "gan": 0.7})
    append_history(h, 3, {"src_loss": 0.4, "dst_loss": 1.4})
    assert h["iteration"] == [1.0, 2.0, 3.0]
    assert h["src_loss"] == [1.0, 0.5, 0.4]
    assert math.isnan(h["gan"][0]) and h["gan"][1] == 0.7 and math.isnan(h["gan"][2])


def test_spike_needs_history_and_factor():
    g = GuardConfig(spike_factor=10.0, min_history=3)
    recent: deque = deque([1.0, 2.0], maxlen=50)
    assert not is_spike(1000.0, recent, g)
    recent.append(3.0)  # median 2
    assert not is_spike(20.0, recent, g)
    assert is_spike(20.1, recent, g)
