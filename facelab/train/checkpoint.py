"""Checkpoints of a training run in ``workspace/model/<name>/``.

```
model/<name>/
  config.json            human-readable: model type, arch, train options of the last run, versions, iterations
  ckpt_last.pt           the newest checkpoint
  ckpt_<iter:07d>.pt     numbered backups (the newest ``opts.backups`` are kept)
  preview.png loss.png   refreshed at every save; previews/<iter:07d>.png with --preview-history
```

A checkpoint is a dict of plain types and tensors only (state dicts of the model and its optimizers, the iteration,
the loss history, RNG states) and loads with ``torch.load(..., weights_only=True)``. Every write goes to a
temporary file first and is moved into place with ``os.replace``, so a kill never leaves a broken checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from facelab import __version__
from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_path, atomic_write_text
from facelab.utils.torch_io import load_tensors
from facelab.workspace import Workspace

if TYPE_CHECKING:
    from facelab.models.base import SwapModel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
LAST_NAME = "ckpt_last.pt"
_BACKUP_RE = re.compile(r"^ckpt_(\d{7})\.pt$")
_REQUIRED = ("format_version", "model_type", "arch", "iteration", "model", "optimizers")


# -- paths --------------------------------------------------------------------------------------------------------
def last_path(model_dir: Path) -> Path:
    return Path(model_dir) / LAST_NAME


def backup_path(model_dir: Path, iteration: int) -> Path:
    return Path(model_dir) / f"ckpt_{iteration:07d}.pt"


def list_backups(model_dir: Path) -> list[tuple[int, Path]]:
    """Numbered backups as ``(iteration, path)``, oldest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in model_dir.iterdir() if (m := _BACKUP_RE.match(p.name)) and p.is_file()]
    return sorted(found)


def has_checkpoint(model_dir: Path) -> bool:
    return last_path(model_dir).is_file()


def is_swap_model(model_dir: Path) -> bool:
    """A trained swap model folder (other trained things, such as mask learners, live beside them and say so in
    their config.json); a checkpoint without a config.json counts as a swap model."""
    from facelab.models import MODELS

    if not has_checkpoint(model_dir):
        return False
    config = Path(model_dir) / CONFIG_NAME
    if not config.exists():
        return True
    try:
        kind = json.loads(config.read_text("utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return False
    return kind in MODELS


def find_swap_model(ws: Workspace, name: str | None) -> Path:
    """The swap model folder named ``name``, or the only trained one in the workspace when no name is given."""
    if name:
        if not has_checkpoint(ws.model(name)):
            raise FacelabError(f"no trained model in {ws.model(name)}; run `python main.py train --name {name}` first")
        return ws.model(name)
    trained = sorted(p for p in ws.models.iterdir() if p.is_dir() and is_swap_model(p)) if ws.models.is_dir() else []
    if len(trained) == 1:
        return trained[0]
    if not trained:
        raise FacelabError(f"no trained model in {ws.models}; run `python main.py train` first")
    raise FacelabError(f"several models in {ws.models} ({', '.join(p.name for p in trained)}); pick one with --name")


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
                    loader_state: dict[str, Any] | None = None, rng: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of a run (plain types and tensors only; tensors moved to the CPU)."""
    ckpt: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_type": str(model.name),
        "arch": arch_to_dict(model.arch),
        "iteration": int(iteration),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": {k: _to_cpu(opt.state_dict()) for k, opt in optimizers.items()},
        "loss_history": history_to_tensors(loss_history),
        "rng": capture_rng() if rng is None else rng,
        "opts": dict(opts or {}),
        "torch_version": str(torch.__version__),
        "facelab_version": __version__,
    }
    if loader_state is not None:
        ckpt["loader"] = loader_state
    return ckpt


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_checkpoint(model_dir: Path, ckpt: dict[str, Any], backups: int) -> Path:
    """Write ``ckpt_last.pt`` atomically, then a numbered backup; keep the newest ``backups`` of those.

    Returns the path of ``ckpt_last.pt``.
    """
    model_dir = Path(model_dir)
    last = last_path(model_dir)
    with atomic_path(last) as tmp:
        try:
            torch.save(ckpt, tmp)
        except OSError as exc:
            raise FacelabError(f"cannot write checkpoint {last}: {exc.strerror}; check free disk space") from exc
    if backups > 0:
        target = backup_path(model_dir, int(ckpt["iteration"]))
        with atomic_path(target) as tmp:
            shutil.copyfile(last, tmp)
        for _, old in list_backups(model_dir)[:-backups]:
            old.unlink(missing_ok=True)
    return last


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``) and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FacelabError(f"no checkpoint at {path}; train a model first (`python main.py train --model saehd`)")
    ckpt = load_tensors(path, "checkpoint", _backup_hint(path.parent), map_location)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _REQUIRED):
        raise FacelabError(f"{path} is not a facelab checkpoint; {_backup_hint(path.parent)}")
    if int(ckpt["format_version"]) > FORMAT_VERSION:
        raise FacelabError(f"checkpoint {path} has format {ckpt['format_version']}; upgrade facelab to load it")
    return ckpt


def _backup_hint(model_dir: Path) -> str:
    backups = list_backups(model_dir)
    if backups:
        return f"copy the newest backup {backups[-1][1].name} over {LAST_NAME} to go back to it"
    return "delete it to start the model afresh"


def write_config(model_dir: Path, name: str, ckpt: dict[str, Any]) -> Path:
    """Write the human-readable ``config.json`` of a run; ``created`` is kept from an existing one."""
    path = Path(model_dir) / CONFIG_NAME
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    created = now
    if path.is_file():
        try:
            created = json.loads(path.read_text("utf-8")).get("created", now)
        except (OSError, ValueError, AttributeError):
            log.warning("%s was unreadable; rewriting it", path)
    doc = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "model_type": ckpt["model_type"],
        "arch": ckpt["arch"],
        "train_options": ckpt.get("opts", {}),
        "iterations": int(ckpt["iteration"]),
        "created": created,
        "updated": now,
        "torch_version": str(torch.__version__),
        "facelab_version": __version__,
    }
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


# -- models -------------------------------------------------------------------------------------------------------
def model_from_checkpoint(ckpt: dict[str, Any], device: torch.device, source: Path) -> SwapModel:
    """Build the model a checkpoint describes and load its weights (left in train mode)."""
    from facelab.models import create_model

    model = create_model(str(ckpt["model_type"]), dict(ckpt["arch"]), device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise FacelabError(f"weights in {source} do not fit a {ckpt['model_type']} model ({first}); "
                           "the file belongs to another facelab version or model") from exc
    return model


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> SwapModel:
    """The trained model of ``model_dir`` (or of a checkpoint file) on ``device``, in eval mode.

    Used by merge, export and evaluate; architecture and weights come from the checkpoint.
    """
    model_dir = Path(model_dir)
    device = torch.device(device)
    path = model_dir if model_dir.is_file() else last_path(model_dir)
    if not path.is_file():
        raise FacelabError(f"no trained model in {model_dir} ({LAST_NAME} missing); "
                           "train one first: `python main.py train --model saehd --name <name>`")
    ckpt = read_checkpoint(path, map_location=device)
    model = model_from_checkpoint(ckpt, device, path)
    model.eval()
    return model
