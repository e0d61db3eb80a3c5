"""A tiny SAEHD (res 64, dims e16 ae64 d16 dm8) on real aligned faces halves its loss within minutes on one thread."""

from __future__ import annotations

import math
import time

import torch

from facelab.train import checkpoint as ck
from facelab.train.loop import train
from facelab.train.options import TrainOptions
from facelab.workspace import Workspace

ARCH = {"resolution": 64, "archi": "liae-ud", "e_dims": 16, "ae_dims": 64, "d_dims": 16, "d_mask_dims": 8}


def test_tiny_model_halves_its_loss(tmp_path, aligned_faceset):
    src, dst = aligned_faceset
    totals: list[float] = []

    def progress(n=1, **info):
        totals.append(float(info["src"]) + float(info["dst"]))

    def halved() -> bool:  # mean of the last 10 steps at most half of the first step's loss
        return len(totals) >= 10 and sum(totals[-10:]) / 10 <= 0.5 * totals[0]

    opts = TrainOptions(batch_size=4, workers=0, max_minutes=3.0, autosave_minutes=0.0, seed=0)
    start = time.monotonic()
    result = train(Workspace(tmp_path), "tiny", "saehd", ARCH, opts, torch.device("cpu"), progress, halved,
                   src_dir=src, dst_dir=dst)
    minutes = (time.monotonic() - start) / 60
    assert result.stopped_by == "should_stop", f"loss {totals[0]:.3f} -> {totals[-1]:.3f} in {minutes:.1f} min"
    assert all(math.isfinite(t) for t in totals) and result.skipped_steps == 0
    history = ck.history_from_tensors(ck.read_checkpoint(result.model_dir / ck.LAST_NAME)["loss_history"])
    assert len(history["src_loss"]) == result.iteration
    assert (result.model_dir / "preview.png").is_file()
