"""Activation-memory estimate: the tensors autograd saves for backward in one training forward, counted on the
meta device (no memory is allocated and no arithmetic is done)."""

from __future__ import annotations

import torch

from facelab.models.base import TrainableModel, TrainKnobs


def count_activation_elements(model: TrainableModel, batch_size: int, knobs: TrainKnobs) -> int:
    """Elements saved for backward by the training forward at ``batch_size`` (distinct tensors, once each)."""
    with torch.device("meta"):
        twin = type(model)(model.arch)
    r = model.resolution
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and id(t) not in seen:
            seen[id(t)] = t.numel()
            keep.append(t)  # keeps ids unique while counting
        return t

    x = torch.zeros(batch_size, 3, r, r, device="meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        twin(x, x, knobs)
    return sum(seen.values())
