"""The full merge started from the page: :func:`facelab.merge.stage.merge_frames` in a background thread with the
settings file the page saved (what ``merge --config`` reads), reporting progress for the progress bar."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facelab.errors import FacelabError
from facelab.merge.config import settings_from_file
from facelab.utils.lock import stage_folders
from facelab.workspace.layout import Workspace

log = logging.getLogger(__name__)


@dataclass
class MergeJob:
    state: str = "idle"  # idle | running | done | failed
    done: int = 0
    total: int = 0
    started: float = 0.0
    seconds: float = 0.0
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done, "total": self.total, "error": self.error,
                "seconds": round(self.seconds or (time.monotonic() - self.started if self.started else 0.0), 1),
                "summary": self.summary}


class MergeRunner:
    """One merge at a time; ``start`` returns at once, ``status`` is polled by the page."""

    def __init__(self, ws: Workspace, model_dir: Path | None, device: torch.device | str = "cpu") -> None:
        self.ws = ws
        self.model_dir = model_dir
        self.device = torch.device(device)
        self.job = MergeJob()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        with self.lock:
            return self.job.as_dict()

    def start(self, config_file: Path) -> dict[str, Any]:
        settings = settings_from_file(config_file)  # a bad file fails here, in the request, not in the thread
        with self.lock:
            if self.job.state == "running":
                raise FacelabError("a merge is already running; wait for it to finish")
            self.job = MergeJob(state="running", started=time.monotonic())
            self.thread = threading.Thread(target=self._run, args=(settings,), name="studio-merge", daemon=True)
            self.thread.start()
            return self.job.as_dict()

    def _progress(self, n: int = 1, **info: Any) -> None:
        with self.lock:
            if "total" in info and info["total"] is not None:
                self.job.total = int(info["total"])
            self.job.done += n

    def _run(self, settings) -> None:
        from facelab.merge.predict import IdentityPredictor
        from facelab.merge.stage import MergePaths, merge_frames

        paths = MergePaths.of(self.ws)
        predictor = IdentityPredictor(256, "whole_face") if self.model_dir is None else None
        try:
            with stage_folders("merge", paths.merged, paths.merged_mask):
                result = merge_frames(self.ws, self.model_dir, settings, self.device, force=True,
                                      progress=self._progress, predictor=predictor, paths=paths)
            with self.lock:
                self.job.state = "done"
                self.job.summary = result.summary()
        except Exception as exc:  # the thread reports every failure to the page instead of dying silently
            log.warning("studio merge failed: %s", exc)
            with self.lock:
                self.job.state = "failed"
                self.job.error = str(exc)
        finally:
            with self.lock:
                self.job.seconds = time.monotonic() - self.job.started
