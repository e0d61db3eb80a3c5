"""One training iteration, owned by the trainer: forward (under bf16 mixed precision when on), the model's losses, the
NaN guard, backward, gradient clipping and the optimizer steps of the generator and of each critic.

Distributed runs wrap the generator and each critic in its own ``DistributedDataParallel`` (see
:func:`facelab.train.distributed.wrap_module`); the step calls the wrappers, so every gradient is averaged by DDP.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from facelab.models.base import Critic, TrainableModel, TrainKnobs
from facelab.models.batch import Batch
from facelab.train.options import TrainOptions


@dataclass(frozen=True)
class StepResult:
    """What one training iteration reports. ``finite`` is False when a loss was NaN/inf: then no weight moved."""

    losses: dict[str, float]
    finite: bool


@dataclass
class Trainee:
    """What a step trains: the model, the callable of its training forward (the model itself, or its DDP
    wrapper), its critics (raw modules and their training calls) and one optimizer per part (``G`` + critics)."""

    model: TrainableModel
    forward: Callable[..., Any]
    optimizers: dict[str, torch.optim.Optimizer]
    critics: dict[str, nn.Module] = field(default_factory=dict)
    critic_calls: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def critic_views(self) -> dict[str, Critic]:
        return {k: Critic(m, self.critic_calls.get(k, m)) for k, m in self.critics.items()}


def new_trainee(model: TrainableModel, opts: TrainOptions,
                wrap: Callable[[nn.Module], Callable[..., Any]] | None = None) -> Trainee:
    """A fresh trainee of ``model`` under (resolved) ``opts``: its critics and optimizers built; with ``wrap``
    (e.g. ``DistributedDataParallel``) the generator and each critic are called through their wrappers."""
    from facelab.train.optim import make_optimizers

    critics = model.make_critics(opts.knobs(), {})
    optims = make_optimizers(model, critics, opts, model.lr_cos_cycle)
    wrap = wrap or (lambda m: m)
    return Trainee(model, wrap(model), optims, critics, {k: wrap(c) for k, c in critics.items()})


def mixed_precision_on(device_type: str, mixed_precision: bool | None) -> bool:
    """Whether the forward pass runs under bf16 autocast: as ``mixed_precision`` says, or when it is None
    (automatic) on CUDA only, where tensor cores make bf16 fast; on a CPU it is slower and only asked for."""
    return device_type == "cuda" if mixed_precision is None else bool(mixed_precision)


def autocast(device: torch.device, mixed_precision: bool | None) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device``'s type when :func:`mixed_precision_on`; plain fp32 otherwise. Weights, their
    gradients and the optimizer state stay fp32 either way (autocast casts copies for the ops that gain)."""
    if mixed_precision_on(device.type, mixed_precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def all_finite(losses: Mapping[str, torch.Tensor]) -> bool:
    """True when every loss is finite (one device sync)."""
    return bool(torch.isfinite(torch.stack([v.detach().float().reshape(()) for v in losses.values()])).all())


def loss_values(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Scalars of the reported losses (one device transfer)."""
    names = list(losses)
    vals = torch.stack([losses[k].detach().float().reshape(()) for k in names]).cpu().tolist()
    return dict(zip(names, vals, strict=True))


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[nn.Parameter], clipgrad: bool,
                   frozen: list[nn.Parameter] | None = None, batch_size: int = 1) -> None:
    """zero_grad -> backward of ``loss * batch_size`` -> drop the gradients of ``frozen`` -> optional global-norm
    clip at 1.0 -> step.

    ``loss`` is a batch mean of per-sample losses; its gradient times ``batch_size`` is the gradient of their batch
    sum, which is what DeepFaceLab differentiates (its losses are per-sample vectors). The clip norm 1.0 and the
    optimizers' eps act on that gradient, so the update matches DeepFaceLab's at any batch size. In a distributed
    run ``batch_size`` is this process's batch and DDP averages the sums over processes, as DeepFaceLab averages
    them over GPUs."""
    opt.zero_grad(set_to_none=True)
    (loss * batch_size if batch_size != 1 else loss).backward()
    for p in frozen or ():
        p.grad = None
    if clipgrad:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
    opt.step()


def train_step(t: Trainee, batch: Batch, knobs: TrainKnobs, clipgrad: bool,
               mixed_precision: bool | None) -> StepResult:
    """One iteration on ``batch`` (already on the model's device). When any loss is not finite nothing moves
    (``finite=False``); else the generator steps on ``G_loss``, then each critic that has a loss this step, each on
    the gradient of its batch sum (:func:`optimizer_step`); the reported losses stay batch means.
    ``mixed_precision``: see :func:`mixed_precision_on` (None: on for CUDA only)."""
    with autocast(batch.warped_src.device, mixed_precision):
        out = t.forward(batch.warped_src, batch.warped_dst, knobs)
    out = {k: v.float() for k, v in out.items()}
    losses = t.model.losses(out, batch, knobs, t.critic_views())
    report = dict(losses.terms) | {f"{k}_loss": v for k, v in losses.critics.items()}
    if not all_finite(report):
        for opt in t.optimizers.values():
            opt.zero_grad(set_to_none=True)
        return StepResult(loss_values(report), False)
    n = batch.size
    optimizer_step(losses.terms["G_loss"], t.optimizers["G"], list(t.model.parameters()), clipgrad,
                   frozen=t.model.frozen_parameters(knobs), batch_size=n)
    for name, loss in losses.critics.items():
        optimizer_step(loss, t.optimizers[name], list(t.critics[name].parameters()), clipgrad, batch_size=n)
    return StepResult(loss_values(report), True)
