"""Safe loading of tensor files: ``torch.load(weights_only=True)`` with one user error for every failure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from facelab.errors import FacelabError


def load_tensors(path: str | os.PathLike, what: str, fix: str, map_location: str | torch.device = "cpu") -> Any:
    """Load ``path`` (plain types and tensors only). A missing, corrupt or foreign file raises one FacelabError
    naming the file, ``what`` it should be (e.g. "checkpoint") and ``fix`` (what the user can do)."""
    path = Path(path)
    if not path.is_file():
        raise FacelabError(f"no {what} at {path}; {fix}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types here: UnpicklingError, RuntimeError, EOFError, ...
        raise FacelabError(f"{path} is not a readable {what} ({type(exc).__name__}: {str(exc)[:120]}); {fix}") from exc
