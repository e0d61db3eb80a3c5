"""Save -> stop -> resume equals an uninterrupted run; architecture conflicts; stop conditions; previews."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.models.store import load_model
from facelab.train import checkpoint as ck
from facelab.train.loader import FaceLoader
from facelab.train.loop import train
from facelab.train.options import TrainOptions
from facelab.train.preview import COLUMNS, MIN_CELL, header_height
from facelab.workspace import Workspace, read_image
from facelab.workspace.images import to_uint8

TINY = {"resolution": 32, "archi": "liae-ud", "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}
CPU = torch.device("cpu")


def _opts(**kw) -> TrainOptions:
    base = dict(batch_size=2, workers=0, autosave_minutes=0.0, backups=2, seed=7, lr=1e-4)
    return TrainOptions(**{**base, **kw})


def _train(ws_root: Path, faces, arch=TINY, name="m", preview=True, **kw):
    src, dst = faces
    return train(Workspace(ws_root), name, "saehd", arch, _opts(**kw), CPU, src_dir=src, dst_dir=dst,
                 preview=preview)


def test_resume_equals_uninterrupted_run(tmp_path, aligned_faceset):
    a = _train(tmp_path / "a", aligned_faceset, target_iter=3)
    assert (a.iteration, a.stopped_by, a.created) == (3, "target_iter", True)
    a2 = _train(tmp_path / "a", aligned_faceset, target_iter=6)
    assert (a2.start_iteration, a2.iteration, a2.created) == (3, 6, False)
    _train(tmp_path / "b", aligned_faceset, target_iter=6)
    ca = ck.read_checkpoint(tmp_path / "a/model/m/ckpt_last.pt")
    cb = ck.read_checkpoint(tmp_path / "b/model/m/ckpt_last.pt")
    assert ca["iteration"] == cb["iteration"] == 6
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    sa, sb = ca["optimizers"]["G"]["state"], cb["optimizers"]["G"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    for idx in sa:
        for name in sa[idx]:
            assert torch.equal(torch.as_tensor(sa[idx][name]), torch.as_tensor(sb[idx][name])), (idx, name)
    ha, hb = ck.history_from_tensors(ca["loss_history"]), ck.history_from_tensors(cb["loss_history"])
    assert ha == hb and ha["iteration"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # the first 3 iterations were not retrained: the resumed run moved the weights away from iteration 3
    c3 = ck.read_checkpoint(tmp_path / "a/model/m/ckpt_0000003.pt")
    assert any(not torch.equal(c3["model"][k], ca["model"][k]) for k in ca["model"])


def test_conflicting_arch_flag_is_an_error(tmp_path, aligned_faceset):
    _train(tmp_path, aligned_faceset, target_iter=1, preview=False)
    with pytest.raises(FacelabError, match=r"--ae-dims 32 conflicts .*ae_dims=16"):
        _train(tmp_path, aligned_faceset, arch={**TINY, "ae_dims": 32}, target_iter=2)
    with pytest.raises(FacelabError, match=r"holds a saehd model"):
        train(Workspace(tmp_path), "m", "quick96", {}, _opts(target_iter=2), CPU,
              src_dir=aligned_faceset[0], dst_dir=aligned_faceset[1])
    # the same values (or none at all) and changed schedule options are fine
    r = _train(tmp_path, aligned_faceset, arch={"ae_dims": 16, "face_type": "f"}, target_iter=2, batch_size=3,
               lr=2e-4)
    assert (r.start_iteration, r.iteration) == (1, 2)
    r = train(Workspace(tmp_path), "m", "saehd", None, _opts(target_iter=3), CPU, src_dir=aligned_faceset[0],
              dst_dir=aligned_faceset[1])
    assert r.iteration == 3


def test_stops_and_previews(tmp_path, aligned_faceset):
    calls = []

    def progress(n=1, **info):
        calls.append(info)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: finish this step, save, return

    src, dst = aligned_faceset
    ws = Workspace(tmp_path)
    r = train(ws, "m", "saehd", TINY, _opts(target_iter=50, backups=1), CPU, progress, src_dir=src, dst_dir=dst)
    assert (r.stopped_by, r.iteration) == ("interrupted", 2)
    assert [c["iter"] for c in calls] == [1, 2] and {"ms", "src", "dst"} <= set(calls[0])
    assert ck.read_checkpoint(ws.model("m") / ck.LAST_NAME)["iteration"] == 2
    assert [i for i, _ in ck.list_backups(ws.model("m"))] == [2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    r = train(ws, "m", "saehd", TINY, _opts(target_iter=50), CPU, should_stop=lambda: True, src_dir=src,
              dst_dir=dst)
    assert (r.stopped_by, r.iteration) == ("should_stop", 2)
    r = train(ws, "m", "saehd", TINY, _opts(max_minutes=1e-6), CPU, src_dir=src, dst_dir=dst)
    assert r.stopped_by == "max_minutes" and r.iteration in (2, 3)
    r = train(ws, "m", "saehd", TINY, _opts(target_iter=r.iteration + 1, preview_history=True), CPU, src_dir=src,
              dst_dir=dst)

    res, cell = TINY["resolution"], MIN_CELL  # a 32 px model's cells are enlarged to 128 px
    grid = read_image(ws.model("m") / "preview.png")
    h = header_height(cell)
    assert grid.shape == (h + 4 * cell, len(COLUMNS) * cell, 3)
    # the src and dst columns show the loader's fixed, unaugmented preview faces

    def enlarged(face):
        return to_uint8(np.clip(cv2.resize(face.permute(1, 2, 0).numpy(), (cell, cell),
                                           interpolation=cv2.INTER_CUBIC), 0, 1))

    with FaceLoader(src, dst, res, "full", _opts(), workers=0) as loader:
        fixed_src, fixed_dst = loader.preview_samples(4)
    for i in range(4):
        row = grid[h + i * cell: h + (i + 1) * cell]
        np.testing.assert_array_equal(row[:, :cell], enlarged(fixed_src[i]))
        np.testing.assert_array_equal(row[:, 2 * cell: 3 * cell], enlarged(fixed_dst[i]))
    assert read_image(ws.model("m") / "loss.png").shape == (300, 800, 3)
    assert [p.name for p in (ws.model("m") / "previews").iterdir()] == [f"{r.iteration:07d}.png"]

def test_load_model_is_eval_and_predicts(tmp_path, aligned_faceset):
    _train(tmp_path, aligned_faceset, target_iter=2, preview=False)
    model = load_model(Workspace(tmp_path).model("m"), CPU)
    assert not model.training and model.arch.ae_dims == 16
    out = model.predict(torch.rand(1, 3, 32, 32))
    assert out["face"].shape == (1, 3, 32, 32) and out["mask"].shape == (1, 1, 32, 32)
    ref = ck.read_checkpoint(Workspace(tmp_path).model("m") / "ckpt_last.pt")["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k])
    assert np.isfinite(out["face"].numpy()).all()


def test_autosave_writes_numbered_backups(tmp_path, aligned_faceset):
    r = _train(tmp_path, aligned_faceset, preview=False, target_iter=3, autosave_minutes=1e-9, backups=3)
    # iteration 0 at creation, then an autosave before each later step and the final save: never twice the same
    assert [i for i, _ in ck.list_backups(Workspace(tmp_path).model("m"))] == [1, 2, 3]
    assert r.saves == 4

