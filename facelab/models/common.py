"""Small helpers shared by the trained swap models: arch coercion, preview outputs, critic calls."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from facelab.errors import FacelabError
from facelab.models.base import Critic
from facelab.utils.config import build_config


def coerce_arch(cls: type, arch: Any, model_name: str) -> Any:
    """An arch dataclass from an instance, a (partial) dict or None; bad values raise FacelabError."""
    if isinstance(arch, cls):
        return arch
    if arch is not None and not isinstance(arch, Mapping):
        raise FacelabError(f"{model_name} architecture must be a mapping or {cls.__name__}, not {type(arch).__name__}")
    return build_config(cls, arch, source=f"{model_name} architecture")


@contextlib.contextmanager
def no_param_grads(module: nn.Module) -> Iterator[nn.Module]:
    """While active, ``module``'s parameters take no gradient (gradients still flow through it to its input)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def critic_pair(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[Any, Any]:
    """The critic's outputs on ``real`` and ``fake`` (detached) from one call of its training forward (one call,
    so a DDP wrapper sees one forward per backward). Outputs are tensors or tuples of tensors, split back."""
    n = real.shape[0]
    out = critic.train(torch.cat([real.detach(), fake.detach()]))
    if isinstance(out, tuple):
        return tuple(o[:n] for o in out), tuple(o[n:] for o in out)
    return out[:n], out[n:]


def preview_outputs(p: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``preview`` contract from a forward's outputs: three reconstructions and their masks, as float32."""
    keys = ("src_src", "dst_dst", "src_dst")
    return {k: p[k].float() for k in keys} | {f"{k}_mask": p[f"{k}_mask"].float() for k in keys}


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
