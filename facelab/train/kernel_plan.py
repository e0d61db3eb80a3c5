"""Training's one hook for CPU kernel choice (:mod:`facelab.models.kernels`): plan on the first batch, check the
plan against the fixed rule over whole steps, and hand every batch on."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any, Iterator, Mapping

import torch

from facelab.models.kernels import cache_file, check_plan, plan_kernels
from facelab.train.options import TrainOptions, apply_fixed

log = logging.getLogger(__name__)


def with_kernel_plan(run: Any, batches: Iterator[Any], opts: TrainOptions) -> Iterator[Any]:
    """On CPU (unless ``kernel_choice`` is off): time the kernels of each convolution call the model makes on the
    first batch and use the fastest (:func:`facelab.models.kernels.plan_kernels`, cached per machine). The same
    batches follow, the first one included."""
    if not opts.kernel_choice or run.device.type != "cpu":
        return batches
    first = next(batches)
    src, dst = first.warped_src.to(run.device), first.warped_dst.to(run.device)
    knobs = apply_fixed(opts.effective(), getattr(type(run.model), "fixed_options", {}))[0].knobs()

    def forward() -> object:
        with torch.random.fork_rng(devices=[]):  # training's random stream stays as it was
            return run.model(src, dst, knobs)

    def whole_step() -> None:
        total = sum(t.float().sum() for t in _tensors(forward()) if t.requires_grad)
        if isinstance(total, torch.Tensor):
            total.backward()
        for p in run.model.parameters():
            p.grad = None

    plan = plan_kernels(run.model, forward, cache_file())
    log.info("convolution kernels: %s", plan.describe())
    if opts.kernel_check:
        log.info("convolution kernels: %s", check_plan(run.model, whole_step, plan, cache_file()).describe())
    return itertools.chain([first], batches)


def _tensors(out: object) -> Iterator[torch.Tensor]:
    """Every tensor in a model output (a tensor, or mappings / sequences / dataclasses of them)."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, Mapping):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        for f in dataclasses.fields(out):
            yield from _tensors(getattr(out, f.name))
