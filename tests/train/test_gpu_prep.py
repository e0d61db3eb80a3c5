"""The CUDA training path checked on the CPU: bf16 autocast steps, the multi-tensor optimizer update against the
block update, pinned batches and cuDNN autotuning decided by pure rules. Tests marked ``gpu`` repeat the checks
on a CUDA device (``pytest -m gpu``)."""

from __future__ import annotations

import copy
from dataclasses import fields

import numpy as np
import pytest
import torch

from facelab.models import create_model
from facelab.models.batch import Batch
from facelab.train import loop
from facelab.train.loader import FaceLoader, pin_batches
from facelab.train.optim import CHUNK, AdaBelief, RMSprop, prefers_foreach
from facelab.train.options import TrainOptions
from facelab.train.step import autocast, mixed_precision_on, new_trainee, train_step
from facelab.workspace import Workspace

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}
CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def random_batch(res: int, device: torch.device, n: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, 1, res, res)
    mask[..., res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 1
    img = lambda: torch.rand(n, 3, res, res, generator=g)  # noqa: E731
    return Batch(img(), img(), mask, mask, img(), img(), mask.flip(-1), mask).to(device)


# -- bf16 autocast ------------------------------------------------------------------------------------------------
def test_mixed_precision_rule_is_on_for_cuda_only_unless_asked():
    assert TrainOptions().mixed_precision is None  # automatic
    assert mixed_precision_on("cuda", None) and not mixed_precision_on("cpu", None)
    assert not mixed_precision_on("mps", None)
    assert mixed_precision_on("cpu", True) and not mixed_precision_on("cuda", False)
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(CPU, True):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast(CPU, None):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def _bf16_steps(device: torch.device, steps: int) -> None:
    """``steps`` real SAEHD train steps under bf16 autocast: finite losses, moving fp32 weights and fp32 state."""
    torch.manual_seed(0)
    model = create_model("saehd", TINY, device)
    opts = TrainOptions(lr=1e-3, mixed_precision=True)
    trainee = new_trainee(model, opts)
    seen: list[torch.dtype] = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batch, knobs = random_batch(32, device), opts.knobs()
    with torch.no_grad():  # the same first step's loss in fp32
        fp32 = model.losses(model(batch.warped_src, batch.warped_dst, knobs), batch, knobs, {}).terms["G_loss"]
    seen.clear()
    losses = []
    for i in range(steps):
        result = train_step(trainee, batch, knobs, opts.clipgrad, opts.mixed_precision)
        assert result.finite, f"step {i}: {result.losses}"
        assert all(np.isfinite(v) for v in result.losses.values())
        losses.append(result.losses["G_loss"])
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the forward really ran in bf16
    assert losses[0] == pytest.approx(float(fp32), rel=0.05)  # bf16 forward ~ the fp32 one
    assert losses[-1] < losses[0]
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(moved) > len(before) // 2
    for p in model.parameters():
        assert p.dtype == torch.float32
        assert p.grad is None or p.grad.dtype == torch.float32
    for state in trainee.optimizers["G"].state.values():
        assert all(t.dtype == torch.float32 for t in state.values())


def test_bf16_autocast_train_steps_on_cpu_keep_fp32_master_weights():
    _bf16_steps(CPU, 4)


@pytest.mark.gpu
@needs_cuda
def test_bf16_autocast_train_steps_on_cuda():
    _bf16_steps(torch.device("cuda"), 4)


# -- optimizer update paths ---------------------------------------------------------------------------------------
def _params(device: torch.device) -> list[torch.nn.Parameter]:
    """Parameters of every layout the optimizer meets: plain, channels-last, one over a block (CHUNK), a
    scalar-like one, and one whose gradient has another layout than its weight (the whole-tensor case)."""
    g = torch.Generator().manual_seed(1)
    shapes = [(7, 5), (4, 3, 3, 3), (CHUNK + 1234,), (1,), (6, 2, 3, 3)]
    ps = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    ps[1] = torch.nn.Parameter(ps[1].detach().to(memory_format=torch.channels_last))
    ps[4] = torch.nn.Parameter(ps[4].detach().to(memory_format=torch.channels_last))
    return [torch.nn.Parameter(p.detach().to(device)) for p in ps]


def _grads(params: list[torch.Tensor], steps: int) -> list[list[torch.Tensor | None]]:
    """Per step, one gradient per parameter: channels-last like its weight except the last parameter's; the
    second parameter has none on step 2 (as a frozen part), so step counts and cosine lrs differ inside a group."""
    g = torch.Generator().manual_seed(2)
    out = []
    for k in range(steps):
        row: list[torch.Tensor | None] = []
        for i, p in enumerate(params):
            grad = torch.randn(p.shape, generator=g).to(p.device)
            if i == 1:
                grad = grad.to(memory_format=torch.channels_last)
            row.append(None if (i == 1 and k == 2) else grad)
        out.append(row)
    return out


def _opt(cls, params, foreach: bool, keep: float, device: torch.device):
    gen = torch.Generator(device=device).manual_seed(7)
    return cls(params, lr=1e-2, lr_dropout=keep, lr_cos=7 if keep < 1 else 0, generator=gen, foreach=foreach)


def _run(opt, params, grads) -> list[torch.Tensor]:
    """Step through ``grads``; per step, which elements of each parameter moved."""
    moved = []
    for row in grads:
        before = [p.detach().clone() for p in params]
        for p, gr in zip(params, row, strict=True):
            p.grad = None if gr is None else gr.clone()
        opt.step()
        moved.append(torch.cat([(p.detach() != b).flatten() for p, b in zip(params, before, strict=True)]))
    return moved


def _check_paths_agree(cls, keep: float, device: torch.device) -> None:
    a, b = _params(device), _params(device)
    grads = _grads(a, 5)
    blocks, multi = _opt(cls, a, False, keep, device), _opt(cls, b, True, keep, device)
    moved_a, moved_b = _run(blocks, a, grads), _run(multi, b, grads)
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6)
        for key in blocks.state_keys:
            torch.testing.assert_close(multi.state[pb][key], blocks.state[pa][key], rtol=1e-5, atol=1e-7)
        assert float(multi.state[pb]["step"]) == float(blocks.state[pa]["step"])
    for ma, mb in zip(moved_a, moved_b, strict=True):
        assert torch.equal(ma, mb)  # the same lr dropout masks, element for element
    if keep < 1:
        share = torch.stack(moved_a).float().mean().item()
        assert share == pytest.approx(keep, abs=0.01)


@pytest.mark.parametrize("keep", [1.0, 0.3], ids=["no-dropout", "lr-dropout"])
@pytest.mark.parametrize("cls", [AdaBelief, RMSprop], ids=["adabelief", "rmsprop"])
def test_foreach_update_equals_block_update(cls, keep):
    _check_paths_agree(cls, keep, CPU)


@pytest.mark.parametrize("keep", [1.0, 0.3], ids=["no-dropout", "lr-dropout"])
@pytest.mark.parametrize("cls", [AdaBelief, RMSprop], ids=["adabelief", "rmsprop"])
@pytest.mark.gpu
@needs_cuda
def test_foreach_update_equals_block_update_on_cuda(cls, keep):
    _check_paths_agree(cls, keep, torch.device("cuda"))


@pytest.mark.parametrize("cls", [AdaBelief, RMSprop], ids=["adabelief", "rmsprop"])
@pytest.mark.parametrize("first", [True, False], ids=["foreach-to-blocks", "blocks-to-foreach"])
def test_state_dict_round_trips_between_paths(cls, first):
    grads = _grads(_params(CPU), 6)
    ref_params = _params(CPU)
    ref = _opt(cls, ref_params, first, 0.3, CPU)
    _run(ref, ref_params, grads[:3])
    saved = copy.deepcopy(ref.state_dict())  # as read back from a checkpoint file
    other_params = [torch.nn.Parameter(p.detach().clone()) for p in ref_params]
    other = _opt(cls, other_params, not first, 0.3, CPU)
    other.load_state_dict(saved)
    other.generator.set_state(ref.generator.get_state())
    assert other.state_dict()["param_groups"] == saved["param_groups"]
    _run(ref, ref_params, grads[3:])
    _run(other, other_params, grads[3:])
    for p, q in zip(ref_params, other_params, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert set(other.state_dict()["state"][0]) == set(ref.state_dict()["state"][0])


def test_update_path_rule_and_default():
    assert prefers_foreach(torch.device("cuda")) and prefers_foreach(torch.device("cuda", 1))
    assert not prefers_foreach(CPU) and not prefers_foreach(torch.device("mps"))
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdaBelief([p], lr=0.1)
    assert opt.foreach is None and "foreach" not in opt.param_groups[0]

    def no(*a, **k):
        raise AssertionError("a CPU parameter took the multi-tensor path")

    opt._update_foreach = no  # type: ignore[method-assign]
    p.grad = torch.ones(3)
    opt.step()
    assert p[0].item() < 1.0


# -- pinned batches and cuDNN autotuning ----------------------------------------------------------------------------
def test_pin_rule_pins_only_for_cuda_on_a_cuda_build():
    assert pin_batches(torch.device("cuda"), cuda_available=True)
    assert pin_batches(torch.device("cuda", 1), cuda_available=True)
    assert not pin_batches(torch.device("cuda"), cuda_available=False)
    assert not pin_batches(CPU, cuda_available=True) and not pin_batches(CPU, cuda_available=False)
    assert not pin_batches(torch.device("mps"), cuda_available=False)


def test_loader_pins_the_two_stacked_arrays_once_per_batch(aligned_faceset, monkeypatch):
    pinned: list[torch.Tensor] = []

    def fake_pin(t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        pinned.append(out)
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    opts = TrainOptions(batch_size=2, workers=0)
    with FaceLoader(*aligned_faceset, 32, "full", opts, workers=0, pin_memory=True) as loader:
        batch = loader.next_batch()
    assert len(pinned) == 2  # images and masks, each one copy
    images, masks = pinned
    for f in fields(batch):
        t = getattr(batch, f.name)
        base = images if t.shape[1] == 3 else masks
        assert t.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()


def test_cudnn_rule_and_context_restore():
    assert loop.cudnn_benchmark_on(torch.device("cuda")) and not loop.cudnn_benchmark_on(CPU)
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with loop.cudnn_benchmark(True):
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(RuntimeError), loop.cudnn_benchmark(True):
            raise RuntimeError("a failing step")
        assert torch.backends.cudnn.benchmark is False
        with loop.cudnn_benchmark(False):
            assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = saved


def _train_two_steps(tmp_path, faces, device: torch.device) -> list[bool]:
    """Two iterations of a tiny SAEHD; cuDNN's benchmark flag as each step saw it."""
    flags: list[bool] = []
    opts = TrainOptions(batch_size=2, workers=0, autosave_minutes=0.0, target_iter=2, seed=3)
    loop.train(Workspace(tmp_path), "m", "saehd", {**TINY, "archi": "df-u"}, opts, device, src_dir=faces[0],
               dst_dir=faces[1], preview=False, progress=lambda n, **k: flags.append(torch.backends.cudnn.benchmark))
    return flags


def test_cpu_training_never_pins_and_enters_cudnn_autotuning_at_the_train_entry(tmp_path, aligned_faceset,
                                                                               monkeypatch):
    def no_pin(*a, **k):
        raise AssertionError("pin_memory called for a CPU run")

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pin)
    monkeypatch.setattr(loop, "cudnn_benchmark_on", lambda device: True)  # what a CUDA device would get
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        assert _train_two_steps(tmp_path, aligned_faceset, CPU) == [True, True]
        assert torch.backends.cudnn.benchmark is False  # restored when training ends
    finally:
        torch.backends.cudnn.benchmark = saved


@pytest.mark.gpu
@needs_cuda
def test_cuda_training_pins_batches_and_autotunes(tmp_path, aligned_faceset):
    device = torch.device("cuda")
    opts = TrainOptions(batch_size=2, workers=0)
    with FaceLoader(*aligned_faceset, 32, "full", opts, workers=0,
                    pin_memory=pin_batches(device, torch.cuda.is_available())) as loader:
        batch = loader.next_batch()
    assert all(getattr(batch, f.name).is_pinned() for f in fields(batch))
    on_gpu = batch.to(device, non_blocking=True)
    torch.testing.assert_close(on_gpu.warped_src.cpu(), batch.warped_src)
    assert _train_two_steps(tmp_path, aligned_faceset, device) == [True, True]
