"""Swap models behind one registry: ``saehd``, ``quick96``, ``amp``.

>>> model = create_model("saehd", {"resolution": 64, "archi": "df-ud"}, torch.device("cpu"))
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from facelab.models.amp import AMP, AMPArch
from facelab.models.base import StepResult, SwapModel
from facelab.models.memory import count_activation_elements
from facelab.models.quick96 import Quick96, Quick96Arch
from facelab.models.registry import MODELS
from facelab.models.saehd import SAEHD, SAEHDArch

MODELS.register("saehd", "SAEHD: df/liae autoencoder with -u -d -t variants (DeepFaceLab's main model)")(SAEHD)
MODELS.register("quick96", "Quick96: fixed 96 px df-ud model with RMSprop and lr dropout, quick to train")(Quick96)
MODELS.register("amp", "AMP: one decoder, src/dst inters mixed by a morph factor")(AMP)


def create_model(name: str, arch: Mapping[str, Any] | None = None,
                 device: torch.device | None = None) -> SwapModel:
    """A new model ``name`` with ``arch`` over its defaults (unset or None keys keep the default), on ``device``."""
    model = MODELS.create(name, dict(arch) if arch is not None else None)
    return model.to(device if device is not None else torch.device("cpu"))


def arch_class(name: str) -> type:
    """The frozen arch dataclass of model ``name``."""
    return MODELS.get(name).factory.arch_cls  # type: ignore[attr-defined]


def describe(model: SwapModel, batch_size: int = 8) -> dict[str, Any]:
    """Parameter count and a memory estimate: fp32 weights + gradients + two optimizer moments + activations of a
    training iteration at ``batch_size`` (forward outputs kept for backward, fp32)."""
    params = sum(p.numel() for p in model.parameters())
    acts = count_activation_elements(model, batch_size)
    weights_b = params * 4
    optim_b = params * 4 * 3  # gradients + two moments (AdaBelief); RMSprop keeps one
    acts_b = acts * 4
    return {
        "model": model.name,
        "parameters": params,
        "weights_mb": weights_b / 2 ** 20,
        "optimizer_mb": optim_b / 2 ** 20,
        "activations_mb": acts_b / 2 ** 20,
        "total_mb": (weights_b + optim_b + acts_b) / 2 ** 20,
        "batch_size": batch_size,
    }


__all__ = ["AMP", "AMPArch", "MODELS", "Quick96", "Quick96Arch", "SAEHD", "SAEHDArch", "StepResult", "SwapModel", "arch_class", "create_model", "describe"]
