"""The training monitor: what a running (or finished) ``train`` wrote in its model folder, read without ever
touching the trainer, and the save / stop requests of :mod:`facelab.train.control`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from facelab.errors import FacelabError
from facelab.studio.security import inside, plain_name
from facelab.train.control import pending_requests, post_request, read_status, watch
from facelab.workspace.layout import Workspace

#: A status older than this (seconds) means the trainer is gone (killed, or another machine's clock).
STALE_SECONDS = 60.0


def model_dirs(ws: Workspace) -> list[Path]:
    return sorted(p for p in ws.models.iterdir() if p.is_dir() and (p / "config.json").exists()) \
        if ws.models.is_dir() else []


def model_dir(ws: Workspace, name: str) -> Path:
    """``model/<name>``, refused unless it is a plain name of an existing model folder inside the workspace."""
    path = ws.model(plain_name(name, "model name"))
    inside(ws, path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(2, "no model folder with a config.json", str(path))
    return path


def _config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads((path / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def model_summary(path: Path, now: float | None = None) -> dict[str, Any]:
    """Name, kind, iterations saved, the trainer's status (state ``running`` / ``stopped`` / ``idle``: no status,
    or ``stale``: one not updated for a minute), pending requests and which images exist. Asks the trainer to keep
    its status up to date from now on (:func:`facelab.train.control.watch`)."""
    watch(path)
    cfg = _config(path)
    status = read_status(path)
    now = time.time() if now is None else now
    state = "idle"
    if status is not None:
        state = status.get("state", "idle")
        if state == "running" and now - float(status.get("updated_unix") or 0) > STALE_SECONDS:
            state = "stale"
    return {"name": path.name, "model_type": cfg.get("model_type"), "kind": cfg.get("kind"),
            "saved_iterations": cfg.get("iterations"), "updated": cfg.get("updated"), "state": state,
            "status": status, "pending": pending_requests(path),
            "images": [n for n in ("preview.png", "loss.png") if (path / n).is_file()]}


def request(ws: Workspace, name: str, what: str) -> dict[str, Any]:
    """Ask the trainer of model ``name`` to ``save`` or ``stop``."""
    path = model_dir(ws, name)
    if what not in ("save", "stop"):
        raise FacelabError(f"unknown request {what!r}; use save or stop")
    post_request(path, what)
    return model_summary(path)
