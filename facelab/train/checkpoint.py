"""Training checkpoints of swap models in ``workspace/model/<name>/`` (facelab's one format, kind ``swap``: see
:mod:`facelab.utils.checkpoint` and :mod:`facelab.models.store`).

```
model/<name>/
  config.json            human-readable: model type, arch, train options of the last run, versions, iterations
  ckpt_last.pt           the newest checkpoint
  ckpt_<iter:07d>.pt     numbered backups (the newest ``opts.backups`` are kept)
  preview.png loss.png   refreshed at every save; previews/<iter:07d>.png with --preview-history
```

A training checkpoint adds to the swap format the optimizer states, the loss history and the RNG states (plain
types and tensors only; ``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from facelab import __version__
from facelab.models.store import KIND, read_swap_checkpoint
from facelab.utils.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    LAST_NAME,
    backup_path,
    has_checkpoint,
    last_path,
    list_backups,
    save_checkpoint,
)
from facelab.utils.checkpoint import write_config as write_config_doc

if TYPE_CHECKING:
    from facelab.models.base import SwapModel

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "LAST_NAME", "arch_to_dict", "backup_path", "capture_rng",
           "has_checkpoint", "history_from_tensors", "history_to_tensors", "last_path", "list_backups",
           "make_checkpoint", "read_checkpoint", "restore_rng", "save_checkpoint", "write_config"]


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a swap checkpoint safely (``weights_only=True``), checked and migrated to the current layout."""
    return read_swap_checkpoint(path, map_location)


# -- RNG states as plain types --------------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python as tensors, ints and lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": [int(v) for v in py_state[1]],
                   "gauss_next": None if py_state[2] is None else float(py_state[2])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`; parts missing from ``state`` are left alone."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if "numpy" in state:
        s = state["numpy"]
        keys = s["keys"].cpu().numpy().astype(np.uint32)
        np.random.set_state(("MT19937", keys, int(s["pos"]), int(s["has_gauss"]), float(s["cached_gaussian"])))
    if "python" in state:
        s = state["python"]
        random.setstate((int(s["version"]), tuple(int(v) for v in s["state"]), s["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [t.cpu().to(torch.uint8) for t in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# -- loss history -----------------------------------------------------------------------------------------------
def history_to_tensors(history: dict[str, list[float]]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in history.items()}


def history_from_tensors(history: dict[str, Any]) -> dict[str, list[float]]:
    return {k: [float(x) for x in torch.as_tensor(v).tolist()] for k, v in history.items()}


# -- build / write / read -----------------------------------------------------------------------------------------
def arch_to_dict(arch: Any) -> dict[str, Any]:
    """A model's frozen arch dataclass (or dict) as a JSON-ready dict."""
    raw = dataclasses.asdict(arch) if dataclasses.is_dataclass(arch) else dict(arch)
    return json.loads(json.dumps(raw))


def make_checkpoint(model: SwapModel, optimizers: dict[str, torch.optim.Optimizer], iteration: int,
                    loss_history: dict[str, list[float]], opts: dict[str, Any] | None = None,
                    loader_state: dict[str, Any] | None = None, rng: dict[str, Any] | None = None,
                    critics: dict[str, nn.Module] | None = None,
                    data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of a run (plain types and tensors only; tensors moved to the CPU). ``data`` records how
    the training faces were chosen (the held-out share), fixed when the model is created."""
    ckpt: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "model_type": str(model.name),
        "arch": arch_to_dict(model.arch),
        "iteration": int(iteration),
        "model": _state(model),
        "critics": {k: _state(m) for k, m in (critics or {}).items()},
        "optimizers": {k: _to_cpu(opt.state_dict()) for k, opt in optimizers.items()},
        "loss_history": history_to_tensors(loss_history),
        "rng": capture_rng() if rng is None else rng,
        "opts": dict(opts or {}),
        "data": dict(data or {}),
        "torch_version": str(torch.__version__),
        "facelab_version": __version__,
    }
    if loader_state is not None:
        ckpt["loader"] = loader_state
    return ckpt


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def write_config(model_dir: Path, name: str, ckpt: dict[str, Any]) -> Path:
    """Write the human-readable ``config.json`` of a swap model (``created`` kept from an existing one)."""
    return write_config_doc(model_dir, {
        "kind": KIND,
        "name": name,
        "model_type": ckpt["model_type"],
        "arch": ckpt["arch"],
        "data": ckpt.get("data", {}),
        "train_options": ckpt.get("opts", {}),
        "iterations": int(ckpt["iteration"]),
        "torch_version": str(torch.__version__),
        "facelab_version": __version__,
    })
