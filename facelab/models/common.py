"""Training-step machinery shared by the swap models: autocast, the NaN guard, optimizer steps, optional parts.

Distributed training: the training forward of every model is its ``forward(...)`` method and ``train_step``
calls it through ``model.forward_fn`` when that is set, so the loop can do::

    model.make_optimizers(opts)            # adds the discriminators the options ask for (before wrapping)
    ddp = DistributedDataParallel(model, ...)
    ddp._set_params_and_buffers_to_ignore_for_model(model, model.ddp_ignored_names())  # before wrapping
    model.forward_fn = ddp.__call__        # the generator forward (and its gradient all-reduce) goes through DDP

(``forward_fn`` must be the bound ``__call__``, not the DDP module itself, so it is not registered as a child.)

Discriminator gradients are averaged across processes by ``train_step`` itself (when a process group is up),
because discriminators are called outside the DDP forward.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.distributed as dist
from torch import nn

from facelab.errors import FacelabError
from facelab.models.base import StepResult
from facelab.train.options import TrainOptions
from facelab.utils.config import build_config


def coerce_arch(cls: type, arch: Any, model_name: str) -> Any:
    """An arch dataclass from an instance, a (partial) dict or None; bad values raise FacelabError."""
    if isinstance(arch, cls):
        return arch
    if arch is not None and not isinstance(arch, Mapping):
        raise FacelabError(f"{model_name} architecture must be a mapping or {cls.__name__}, not {type(arch).__name__}")
    return build_config(cls, arch, source=f"{model_name} architecture")


def autocast(device: torch.device, opts: TrainOptions) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when ``opts.mixed_precision``; plain fp32 elsewhere."""
    if device.type == "cuda" and opts.mixed_precision:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def all_finite(losses: Mapping[str, torch.Tensor]) -> bool:
    """True when every loss is finite (one device sync)."""
    return bool(torch.isfinite(torch.stack([v.detach().float().reshape(()) for v in losses.values()])).all())


def loss_values(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Scalars of the reported losses (one device transfer)."""
    names = list(losses)
    vals = torch.stack([losses[k].detach().float().reshape(()) for k in names]).cpu().tolist()
    return dict(zip(names, vals, strict=True))


def average_grads_across_processes(params: Iterable[nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of ``params`` when a multi-process group is initialised."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[nn.Parameter], clipgrad: bool,
                   scaler: torch.amp.GradScaler | None, before_step: Callable[[], None] | None = None) -> None:
    """zero_grad -> backward -> (hook) -> optional global-norm clip at 1.0 -> step."""
    opt.zero_grad(set_to_none=True)
    use_scaler = scaler is not None and scaler.is_enabled()
    (scaler.scale(loss) if use_scaler else loss).backward()
    if before_step is not None:
        before_step()
    if clipgrad:
        if use_scaler:
            scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
    if use_scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


def finish_step(model: nn.Module, terms: Mapping[str, torch.Tensor], d_losses: Mapping[str, torch.Tensor],
                optimizers: dict[str, torch.optim.Optimizer], opts: TrainOptions, scaler: torch.amp.GradScaler | None,
                before_g_step: Callable[[], None] | None = None) -> StepResult:
    """The shared end of a train step. When any loss is not finite nothing moves (``finite=False``); else the
    generator steps on ``terms["G_loss"]``, then each discriminator whose loss is on (``D_code_loss`` ->
    ``model.D_code`` with optimizer ``D_code``; ``D_gan_loss`` likewise), its gradients first averaged across
    processes since discriminators stay outside DDP."""
    report = dict(terms) | dict(d_losses)
    if not all_finite(report):
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        return StepResult(loss_values(report), False)
    optimizer_step(terms["G_loss"], optimizers["G"], model.generator_parameters(), opts.clipgrad, scaler,
                   before_step=before_g_step)
    for name, loss in d_losses.items():
        key = name.removesuffix("_loss")
        part = getattr(model, key)
        optimizer_step(loss, optimizers[key], list(part.parameters()), opts.clipgrad, scaler,
                       before_step=lambda part=part: average_grads_across_processes(part.parameters()))
    return StepResult(loss_values(report), True)


def preview_outputs(p: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``preview`` contract from a forward's outputs: three reconstructions and their masks, as float32."""
    keys = ("src_src", "dst_dst", "src_dst")
    return {k: p[k].float() for k in keys} | {f"{k}_mask": p[f"{k}_mask"].float() for k in keys}


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
