"""NaN / loss-spike guard: bad steps are skipped, repeated ones roll back, non-finite weights are never saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facelab.errors import FacelabError
from facelab.train import checkpoint as ck
from facelab.train import loop
from facelab.train.loop import GuardConfig, final_save, open_run, train
from facelab.train.options import TrainOptions
from facelab.workspace import Workspace

TINY = {"resolution": 32, "archi": "df-u", "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}
CPU = torch.device("cpu")


def _opts(**kw) -> TrainOptions:
    return TrainOptions(**{**dict(batch_size=2, workers=0, autosave_minutes=0.0, backups=5, seed=3), **kw})


class Poisoned:
    """The real loader, with chosen batches (1-based, counted from the start of this run) made NaN or huge."""

    def __init__(self, inner, bad: dict[int, str]) -> None:
        self.inner, self.bad = inner, bad

    def __iter__(self):
        for i, batch in enumerate(self.inner, 1):
            kind = self.bad.get(i)
            if kind == "nan":
                batch.warped_src[0, 0, 0, 0] = float("nan")
            elif kind == "spike":  # finite, but the loss explodes: the model steps on it
                batch.target_src.mul_(1e4)
                batch.target_dst.mul_(1e4)
            yield batch

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def poison(monkeypatch):
    real = loop.make_loader

    def use(bad: dict[int, str]) -> None:
        monkeypatch.setattr(loop, "make_loader", lambda *a, **k: Poisoned(real(*a, **k), bad))

    return use


def _run(ws: Path, faces, guard: GuardConfig | None = None, **kw):
    return train(Workspace(ws), "m", "saehd", TINY, _opts(**kw), CPU, src_dir=faces[0], dst_dir=faces[1],
                 preview=False, guard=guard or GuardConfig())


def _ckpt(ws: Path, name: str) -> dict:
    return ck.read_checkpoint(Workspace(ws).model("m") / name)


def _same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_nan_steps_are_skipped_without_moving_weights(tmp_path, aligned_faceset, poison):
    _run(tmp_path, aligned_faceset, target_iter=2)
    poison({1: "nan", 2: "nan"})
    r = _run(tmp_path, aligned_faceset, target_iter=5)
    assert (r.iteration, r.skipped_steps, r.rollbacks) == (5, 2, 0)
    c2, c5 = _ckpt(tmp_path, "ckpt_0000002.pt"), _ckpt(tmp_path, "ckpt_last.pt")
    hist = ck.history_from_tensors(c5["loss_history"])
    assert hist["iteration"] == [1.0, 2.0, 5.0]  # bad steps never enter the history
    assert all(torch.isfinite(v).all() for v in c5["model"].values())
    # the optimizer stepped at iterations 1, 2 and 5 only
    steps2 = {int(st["step"]) for st in c2["optimizers"]["G"]["state"].values()}
    steps5 = {int(st["step"]) for st in c5["optimizers"]["G"]["state"].values()}
    assert (steps2, steps5) == ({2}, {3})

def test_repeated_spikes_roll_back_to_last_checkpoint(tmp_path, aligned_faceset, poison):
    guard = GuardConfig(max_bad=3, min_history=2)
    _run(tmp_path, aligned_faceset, guard, target_iter=3)
    poison({1: "spike", 2: "spike", 3: "spike"})
    r = _run(tmp_path, aligned_faceset, guard, target_iter=6)
    assert (r.iteration, r.skipped_steps, r.rollbacks) == (6, 3, 1)
    c3, c6 = _ckpt(tmp_path, "ckpt_0000003.pt"), _ckpt(tmp_path, "ckpt_last.pt")
    assert c6["iteration"] == 6
    assert _same_weights(c3, c6)  # the spiked steps moved the weights; the rollback restored them
    s3, s6 = c3["optimizers"]["G"]["state"], c6["optimizers"]["G"]["state"]
    assert all(torch.equal(s3[i][k], s6[i][k]) for i in s3 for k in s3[i])


def test_endless_divergence_gives_up(tmp_path, aligned_faceset, poison):
    guard = GuardConfig(max_bad=1, min_history=2, max_rollbacks=2)
    _run(tmp_path, aligned_faceset, guard, target_iter=3)
    poison({i: "nan" for i in range(1, 20)})
    with pytest.raises(FacelabError, match="keeps diverging"):
        _run(tmp_path, aligned_faceset, guard, target_iter=20)
    assert _ckpt(tmp_path, "ckpt_last.pt")["iteration"] == 3  # nothing bad was saved


def test_non_finite_weights_are_never_saved(tmp_path, aligned_faceset):
    _run(tmp_path, aligned_faceset, target_iter=2)
    run = open_run(Workspace(tmp_path).model("m"), "saehd", {}, _opts(), CPU)
    run.iteration = 7
    with torch.no_grad():
        next(run.model.parameters()).fill_(float("nan"))
    final_save(run, _opts(), None, GuardConfig())
    saved = _ckpt(tmp_path, "ckpt_last.pt")
    assert saved["iteration"] == 2 and run.rollbacks == 1
    assert all(torch.equal(v, saved["model"][k]) for k, v in run.model.state_dict().items())


def test_bad_last_step_keeps_the_last_good_checkpoint(tmp_path, aligned_faceset, poison):
    _run(tmp_path, aligned_faceset, target_iter=2)
    poison({2: "spike"})  # the spiked step moves the weights; the run ends on it
    r = _run(tmp_path, aligned_faceset, GuardConfig(min_history=1), target_iter=4)
    assert (r.iteration, r.skipped_steps, r.rollbacks) == (4, 1, 0)
    assert _ckpt(tmp_path, "ckpt_last.pt")["iteration"] == 2  # iteration 3 was good but is not worth a spike
