"""Training's one hook for CPU kernel choice: it plans on the first batch, caches in the user cache (here the
session's, see conftest), hands every batch on in order, and does nothing when turned off."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import torch

from facelab.models import conv_paths as P
from facelab.models import create_model
from facelab.models import kernels as K
from facelab.models.batch import Batch
from facelab.train.kernel_plan import with_kernel_plan
from facelab.train.options import TrainOptions

TINY = {"ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


def _batches(n: int, res: int = 32):
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        img = lambda: torch.rand(2, 3, res, res, generator=g)  # noqa: E731
        mask = torch.ones(2, 1, res, res)
        yield Batch(img(), img(), mask, mask, img(), img(), mask, mask)


def _run():
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": 32, "archi": "df-ud", **TINY})
    return SimpleNamespace(model=model, device=torch.device("cpu"))


def _planned(model) -> int:
    return sum(1 for m in model.modules() if K.plannable(m) and getattr(m, K.KERNEL_ATTR))


def test_plan_on_the_first_batch_cached_and_every_batch_handed_on(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    run, want = _run(), list(_batches(3))
    rng = torch.get_rng_state()
    got = list(with_kernel_plan(run, iter(_batches(3)), TrainOptions(kernel_check=False)))
    assert len(got) == 3 and all(torch.equal(a.warped_src, b.warped_src) for a, b in zip(got, want, strict=True))
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream untouched
    assert _planned(run.model) == sum(1 for m in run.model.modules() if K.plannable(m))
    machines = json.loads((tmp_path / "kernels.json").read_text())["machines"]
    assert list(machines) == [K.machine_key()] and machines[K.machine_key()]


def test_off_or_not_cpu_leaves_batches_and_kernels_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    run = _run()
    batches = iter(_batches(2))
    assert with_kernel_plan(run, batches, TrainOptions(kernel_choice=False)) is batches
    gpu = SimpleNamespace(model=run.model, device=torch.device("meta"))
    assert with_kernel_plan(gpu, batches, TrainOptions()) is batches
    assert _planned(run.model) == 0 and not os.listdir(tmp_path)


def test_the_session_cache_is_not_the_users():
    home_cache = Path.home() / ".cache" / "facelab"
    assert K.cache_file().parent != home_cache


def _conv_weights(state: dict) -> list[torch.Tensor]:
    """The conv weights whose two layouts differ (k x k with k > 1)."""
    return [v for k, v in state.items() if k.endswith("weight") and v.dim() == 4 and v.shape[-1] > 1]


def test_training_on_cpu_keeps_weights_channels_last_and_plans_once(tmp_path, aligned_faceset, monkeypatch):
    from facelab.models.store import load_model
    from facelab.train import checkpoint as ck
    from facelab.train.loop import train
    from facelab.workspace import Workspace

    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    arch = {"resolution": 32, "archi": "df-ud", **TINY}
    src, dst = aligned_faceset
    for name, on in (("cl", True), ("plain", False)):
        opts = TrainOptions(batch_size=2, workers=0, autosave_minutes=0.0, target_iter=2, channels_last=on,
                            kernel_choice=on)
        train(Workspace(tmp_path / "ws"), name, "saehd", arch, opts, torch.device("cpu"), src_dir=src, dst_dir=dst,
              preview=False)
        weights = _conv_weights(ck.read_checkpoint(tmp_path / "ws" / "model" / name / "ckpt_last.pt")["model"])
        assert weights and all(P.is_channels_last(w) == on for w in weights)
        assert (tmp_path / "cache" / "kernels.json").is_file()  # written by the first run only
        model = load_model(tmp_path / "ws" / "model" / name, "cpu")  # either layout loads into a fresh model
        assert all(w.is_contiguous() for w in _conv_weights(model.state_dict()))


def test_whole_step_check_keeps_the_plan_or_the_rule_and_leaves_no_gradients(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    run = _run()
    caplog.set_level("INFO")
    rng = torch.get_rng_state()
    got = list(with_kernel_plan(run, iter(_batches(2)), TrainOptions()))
    assert len(got) == 2 and torch.equal(torch.get_rng_state(), rng)
    assert "with the fixed rule: keeping the" in caplog.text
    kept = "plan" if "keeping the plan" in caplog.text else "rule"
    planned = _planned(run.model)
    assert (planned > 0) == (kept == "plan")
    assert all(p.grad is None for p in run.model.parameters())


def _timed_model(slow_path: str):
    """A convolution whose chosen path ``slow_path`` costs a visible sleep, so the check's verdict is known."""
    import time

    run = _run()
    conv = next(m for m in run.model.modules() if K.plannable(m))
    x = torch.rand(1, conv.in_channels, 16, 16)
    K.set_kernel_paths(conv, {K.dispatch_key(x): P.IM2COL})

    def step() -> None:
        path = K.chosen_path(conv, x)
        conv(x).sum().backward()
        if path == slow_path:
            time.sleep(0.02)
    return run.model, conv, step


def test_check_plan_drops_a_plan_slower_than_the_rule():
    model, conv, step = _timed_model(P.IM2COL)
    check = K.check_plan(model, step, repeats=3)
    assert check.kept == "rule" and check.plan_seconds > check.rule_seconds
    assert getattr(conv, K.KERNEL_ATTR) == {}


def test_check_plan_keeps_a_faster_plan():
    model, conv, step = _timed_model(P.DIRECT)
    check = K.check_plan(model, step, repeats=3)
    assert check.kept == "plan" and check.rule_seconds > check.plan_seconds
    assert list(getattr(conv, K.KERNEL_ATTR).values()) == [P.IM2COL]
    assert "keeping the plan" in check.describe()


def test_check_plan_verdict_is_cached_so_every_run_makes_the_same_choice(tmp_path):
    model, conv, slow_plan = _timed_model(P.IM2COL)
    plan = K.KernelPlan(K.machine_key(), (), 0.0)
    cache = K.cache_file(tmp_path)
    first = K.check_plan(model, slow_plan, plan, cache, repeats=2)
    assert first.kept == "rule" and first.plan_seconds > 0
    stored = json.loads(cache.read_text())["machines"][K.machine_key()]
    assert list(stored.values()) == ["rule"] and list(stored)[0].startswith(K.STEP_PREFIX)
    model2, conv2, slow_rule = _timed_model(P.DIRECT)  # would keep the plan if it were timed
    again = K.check_plan(model2, slow_rule, plan, cache)
    assert again.kept == "rule" and again.plan_seconds == 0.0 and "from the cache" in again.describe()
    assert getattr(conv2, K.KERNEL_ATTR) == {}
