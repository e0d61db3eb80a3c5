"""Finding and loading swap models: ``workspace/model/<name>/`` folders in facelab's one checkpoint format
(:mod:`facelab.utils.checkpoint`, kind ``swap``).

A swap checkpoint holds ``model_type``, ``arch``, ``iteration``, ``model`` (the model's state dict), ``critics``
(state dicts of the discriminators a trained model had, by name) and ``optimizers``; training adds its history and
RNG states. Format 1 kept the critics inside ``model`` under ``D_gan.`` / ``D_code.``: :func:`migrate` moves them.
Mask learners live in their own folders (kind ``mask``) and are never listed as swap models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facelab.errors import FacelabError
from facelab.models.base import SwapModel
from facelab.utils import checkpoint as ckio
from facelab.workspace import Workspace

KIND = "swap"
REQUIRED = ("format_version", "model_type", "arch", "iteration", "model", "optimizers")
CRITIC_PREFIXES = ("D_gan.", "D_code.")


def migrate(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A swap checkpoint in the current layout (format 1's critic weights moved out of ``model``)."""
    if "critics" in ckpt:
        return ckpt
    model, critics = {}, {}
    for key, value in ckpt["model"].items():
        prefix = next((p for p in CRITIC_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            model[key] = value
        else:
            critics.setdefault(prefix[:-1], {})[key[len(prefix):]] = value
    return {**ckpt, "model": model, "critics": critics, "kind": KIND}


def read_swap_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a swap checkpoint file (safe: plain types and tensors only), migrated to this layout."""
    path = Path(path)
    if not path.is_file():
        raise FacelabError(f"no checkpoint at {path}; train a model first (`python main.py train --model saehd`)")
    return migrate(ckio.read_checkpoint(path, KIND, REQUIRED, map_location))


def is_swap_model(model_dir: Path) -> bool:
    """True for a folder holding a swap model's checkpoint. A checkpoint without a config.json counts as one; an
    unreadable config.json is an error naming the file (never a model that silently disappears)."""
    if not ckio.has_checkpoint(model_dir):
        return False
    if not (Path(model_dir) / ckio.CONFIG_NAME).exists():
        return True
    return ckio.config_kind(model_dir) == KIND


def find_swap_model(ws: Workspace, name: str | None) -> Path:
    """The swap model folder named ``name``, or the only one in the workspace when no name is given."""
    if name:
        if not ckio.has_checkpoint(ws.model(name)):
            raise FacelabError(f"no trained model in {ws.model(name)}; run `python main.py train --name {name}` first")
        return ws.model(name)
    found = sorted(p for p in ws.models.iterdir() if p.is_dir() and is_swap_model(p)) if ws.models.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise FacelabError(f"no trained model in {ws.models}; run `python main.py train` first")
    raise FacelabError(f"several models in {ws.models} ({', '.join(p.name for p in found)}); pick one with --name")


def model_from_checkpoint(ckpt: dict[str, Any], device: torch.device, source: Path) -> SwapModel:
    """Build the model a checkpoint describes and load its weights (a trained model is left in train mode)."""
    from facelab.models import MODELS, create_model

    model_type = str(ckpt["model_type"])
    if model_type not in MODELS:
        raise FacelabError(f"{source} holds a {model_type!r} model, which this facelab does not know "
                           f"({', '.join(MODELS.names())}); upgrade facelab")
    model = create_model(model_type, dict(ckpt["arch"]), device)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FacelabError(f"weights in {source} do not fit a {model_type} model ({first}); "
                           "the file belongs to another facelab version or model") from exc
    return model


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> SwapModel:
    """The swap model of ``model_dir`` (or of a checkpoint file) on ``device``, in eval mode.

    Used by merge, export and evaluate; architecture and weights come from the checkpoint.
    """
    model_dir = Path(model_dir)
    device = torch.device(device)
    path = model_dir if model_dir.is_file() else ckio.last_path(model_dir)
    if not path.is_file():
        raise FacelabError(f"no trained model in {model_dir} ({ckio.LAST_NAME} missing); "
                           "train one first: `python main.py train --model saehd --name <name>`")
    model = model_from_checkpoint(read_swap_checkpoint(path, map_location=device), device, path)
    model.eval()
    return model
