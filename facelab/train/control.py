"""Talk to a running ``train`` through small files in its model folder, so another process (``studio``, a script,
a person with ``touch``) can watch it and ask it to save or stop, on any machine and without signals::

    model/<name>/control/                 made by whoever watches (:func:`watch`); without it nothing is written
    model/<name>/control/save.request     save a checkpoint (and preview) now; removed once the trainer took it
    model/<name>/control/stop.request     save and stop cleanly; removed once the trainer took it
    model/<name>/control/status.json      written by the trainer every few seconds while the folder exists:
                                          iteration, rate, target, time left, loss history

The trainer looks at the folder at most every :data:`POLL_SECONDS` (a few ``stat`` calls), so watching never slows
training, and drops requests left over from an earlier run when it starts. A run nobody watches leaves its model
folder exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_write_text
from facelab.utils.checkpoint import now_iso

CONTROL_DIR = "control"
STATUS_FILE = "status.json"
REQUESTS = ("save", "stop")
POLL_SECONDS = 0.5
STATUS_SECONDS = 2.0
HISTORY_POINTS = 400  # loss history points kept in status.json (evenly strided, the last one always in)
RATE_WINDOW_SECONDS = 30.0


def control_dir(model_dir: Path) -> Path:
    return Path(model_dir) / CONTROL_DIR


def status_path(model_dir: Path) -> Path:
    return control_dir(model_dir) / STATUS_FILE


def watch(model_dir: Path) -> None:
    """Ask the trainer of ``model_dir`` to keep ``status.json`` up to date (from its next poll on)."""
    try:
        control_dir(model_dir).mkdir(exist_ok=True)
    except OSError as exc:
        raise FacelabError(f"cannot create {control_dir(model_dir)}: {exc.strerror}; check permissions") from exc


def request_path(model_dir: Path, what: str) -> Path:
    if what not in REQUESTS:
        raise FacelabError(f"unknown trainer request {what!r}; choose from {', '.join(REQUESTS)}")
    return control_dir(model_dir) / f"{what}.request"


def post_request(model_dir: Path, what: str) -> Path:
    """Ask the trainer of ``model_dir`` to ``save`` or ``stop`` (atomic write of a small JSON file)."""
    path = request_path(model_dir, what)
    atomic_write_text(path, json.dumps({"request": what, "posted": now_iso()}) + "\n")
    return path


def pending_requests(model_dir: Path) -> list[str]:
    return [what for what in REQUESTS if request_path(model_dir, what).exists()]


def take_requests(model_dir: Path) -> set[str]:
    """The requests waiting in ``model_dir``, each removed as it is taken."""
    taken = set()
    for what in REQUESTS:
        try:
            request_path(model_dir, what).unlink()
        except FileNotFoundError:
            continue
        except OSError:  # cannot remove it (read-only folder): ignore it rather than act on it forever
            continue
        taken.add(what)
    return taken


def read_status(model_dir: Path) -> dict[str, Any] | None:
    """``status.json`` of ``model_dir``; None when there is none or it cannot be read."""
    try:
        doc = json.loads(status_path(model_dir).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def history_tail(history: Mapping[str, list[float]], points: int = HISTORY_POINTS) -> dict[str, list]:
    """``history`` strided down to about ``points`` entries per series; non-finite values become None (JSON)."""
    n = len(history.get("iteration", []))
    step = max(1, math.ceil(n / points))
    idx = list(range(0, n, step))
    if n and idx[-1] != n - 1:
        idx.append(n - 1)
    return {k: [float(v[i]) if i < len(v) and math.isfinite(v[i]) else None for i in idx]
            for k, v in history.items()}


class TrainControl:
    """The trainer's side: :meth:`poll` once per iteration (cheap: it acts every :data:`POLL_SECONDS`)."""

    def __init__(self, model_dir: Path, *, poll_seconds: float = POLL_SECONDS,
                 status_seconds: float = STATUS_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.model_dir = Path(model_dir)
        self.poll_seconds = poll_seconds
        self.status_seconds = status_seconds
        self.clock = clock
        self.last_poll = -math.inf
        self.last_status = -math.inf
        self.rate: deque[tuple[float, int]] = deque()
        self.started = now_iso()
        take_requests(self.model_dir)  # requests of an earlier run must not stop this one

    def iterations_per_second(self) -> float:
        if len(self.rate) < 2 or self.rate[-1][0] <= self.rate[0][0]:
            return 0.0
        (t0, i0), (t1, i1) = self.rate[0], self.rate[-1]
        return (i1 - i0) / (t1 - t0)

    def poll(self, iteration: int, history: Mapping[str, list[float]], target_iter: int,
             saved_iteration: int) -> set[str]:
        """The requests posted since the last poll (``save``, ``stop``); writes ``status.json`` when due."""
        now = self.clock()
        if now - self.last_poll < self.poll_seconds:
            return set()
        self.last_poll = now
        self.rate.append((now, iteration))
        while len(self.rate) > 2 and now - self.rate[0][0] > RATE_WINDOW_SECONDS:
            self.rate.popleft()
        if not control_dir(self.model_dir).is_dir():  # nobody watches, nothing asked
            return set()
        taken = take_requests(self.model_dir)
        if now - self.last_status >= self.status_seconds or taken:
            self.write_status("running", iteration, history, target_iter, saved_iteration)
        return taken

    def write_status(self, state: str, iteration: int, history: Mapping[str, list[float]], target_iter: int,
                     saved_iteration: int, stopped_by: str = "") -> None:
        """Write ``control/status.json`` (only while the control folder exists)."""
        if not control_dir(self.model_dir).is_dir():
            return
        rate = self.iterations_per_second()
        left = (target_iter - iteration) / rate if target_iter > iteration and rate > 0 else None
        doc = {"state": state, "iteration": iteration, "target_iter": target_iter,
               "iterations_per_second": round(rate, 4), "seconds_left": None if left is None else round(left, 1),
               "last_save_iteration": saved_iteration, "stopped_by": stopped_by, "started": self.started,
               "updated": now_iso(), "updated_unix": time.time(), "history": history_tail(history)}
        with contextlib.suppress(FacelabError):  # a full disk must not stop training over a status file
            atomic_write_text(status_path(self.model_dir), json.dumps(doc) + "\n")
        self.last_status = self.clock()
