"""Swap models behind one registry: trained ``saehd``, ``quick96``, ``amp`` and the training-free ``warp``.

>>> model = create_model("saehd", {"resolution": 64, "archi": "df-ud"}, torch.device("cpu"))

Contracts in :mod:`facelab.models.base`; finding and loading a workspace's models in :mod:`facelab.models.store`.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from facelab.models.amp import AMP, AMPArch
from facelab.models.base import TRAINED, TRAINING_FREE, SwapModel, TrainableModel, TrainKnobs
from facelab.models.memory import count_activation_elements
from facelab.models.quick96 import Quick96, Quick96Arch
from facelab.models.registry import MODELS
from facelab.models.saehd import SAEHD, SAEHDArch
from facelab.models.warp import WarpArch, WarpModel

MODELS.register("saehd", "SAEHD: df/liae autoencoder with -u -d -t variants (DeepFaceLab's main model)")(SAEHD)
MODELS.register("quick96", "Quick96: fixed 96 px df-ud model with RMSprop and lr dropout, quick to train")(Quick96)
MODELS.register("amp", "AMP: one decoder, src/dst inters mixed by a morph factor")(AMP)
MODELS.register("warp", "training-free: the best-matching source face warped onto each destination face")(WarpModel)


def create_model(name: str, arch: Mapping[str, Any] | None = None,
                 device: torch.device | None = None) -> SwapModel:
    """A new model ``name`` with ``arch`` over its defaults (unset or None keys keep the default), on ``device``."""
    model = MODELS.create(name, dict(arch) if arch is not None else None)
    return model.to(device if device is not None else torch.device("cpu"))


def arch_class(name: str) -> type:
    """The frozen arch dataclass of model ``name``."""
    return MODELS.get(name).factory.arch_cls  # type: ignore[attr-defined]


def model_kind(name: str) -> str:
    """``trained`` or ``training-free``: how model type ``name`` learns."""
    return str(MODELS.get(name).factory.kind)  # type: ignore[attr-defined]


def describe(model: TrainableModel, knobs: TrainKnobs, batch_size: int = 8) -> dict[str, Any]:
    """Parameter count and a memory estimate: fp32 weights + gradients + two optimizer moments + activations of a
    training iteration at ``batch_size`` (forward outputs kept for backward, fp32)."""
    params = sum(p.numel() for p in model.parameters())
    acts = count_activation_elements(model, batch_size, knobs)
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


__all__ = ["AMP", "AMPArch", "MODELS", "TRAINED", "TRAINING_FREE", "Quick96", "Quick96Arch", "SAEHD", "SAEHDArch",
           "SwapModel", "TrainKnobs", "TrainableModel", "WarpArch", "WarpModel", "arch_class", "create_model", "describe",
           "model_kind"]
