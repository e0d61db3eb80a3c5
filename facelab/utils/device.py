"""Device selection: ``auto`` picks the best present accelerator, else the CPU."""

from __future__ import annotations

import torch

from facelab.errors import FacelabError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name`` (auto|cpu|cuda|cuda:N|mps); errors when it is not present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacelabError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FacelabError("--device mps was asked for but MPS is not available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise FacelabError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}") from exc
