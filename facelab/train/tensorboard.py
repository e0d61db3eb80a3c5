"""TensorBoard logs of a training run in ``model/<name>/tensorboard/``: losses, iteration time, previews.

It hooks onto what the loop already reports, without changing it: the per-iteration progress callback (``iter``,
``ms``, ``src``, ``dst``) gives the scalars, and each new ``preview.png`` the loop writes at a save becomes an image
at the iteration it was seen. ``loss.png`` and ``preview.png`` stay as they are. The ``tensorboard`` package is
optional: without it training runs as before.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from facelab.errors import FacelabError
from facelab.utils.progress import Progress

log = logging.getLogger(__name__)
TB_DIR = "tensorboard"
HINT = "TensorBoard logging is off: `pip install tensorboard` to get it (or pass --no-tensorboard to hide this)"
SCALARS = {"src": "loss/src", "dst": "loss/dst", "ms": "time/ms_per_iter"}


def tensorboard_available() -> tuple[bool, str]:
    """Whether ``torch.utils.tensorboard`` can write event files here, and why not."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        return False, f"tensorboard is not installed ({exc.name or exc})"
    return True, "ok"


class TensorBoardLog:
    """A :data:`Progress` that writes scalars per iteration and each new preview to ``model_dir/tensorboard``."""

    def __init__(self, model_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.model_dir = Path(model_dir)
        self.preview = self.model_dir / "preview.png"
        self.log_dir = self.model_dir / TB_DIR
        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as exc:
            raise FacelabError(f"cannot write TensorBoard logs into {self.log_dir}: {exc.strerror}") from exc
        self._seen = self._stamp()  # a preview from an earlier run is not this run's
        self.iteration: int | None = None

    def _stamp(self) -> int | None:
        try:
            return self.preview.stat().st_mtime_ns
        except OSError:
            return None

    def __call__(self, n: int = 1, **info: Any) -> None:
        it = info.get("iter")
        if it is None:
            return
        self.iteration = int(it)
        for key, tag in SCALARS.items():
            try:
                value = float(info[key])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, self.iteration)
        self.add_new_preview()

    def add_new_preview(self) -> bool:
        """Log ``preview.png`` when it changed since last seen; True when it did."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen or self.iteration is None:
            return False
        from facelab.workspace.images import read_image

        try:
            image = read_image(self.preview)
        except (FacelabError, OSError) as exc:  # being replaced right now: the next call sees it
            log.debug("preview not logged yet: %s", exc)
            return False
        self._seen = stamp
        self.writer.add_image("preview", image, self.iteration, dataformats="HWC")
        return True

    def close(self) -> None:
        """Log the preview of the final save, then flush and close the event file."""
        self.add_new_preview()
        self.writer.flush()
        self.writer.close()


def open_tensorboard(model_dir: Path, wanted: bool | None) -> tuple[TensorBoardLog | None, str | None]:
    """(log, hint): ``wanted`` None = on when importable (else a one-line hint); True = required; False = off."""
    if wanted is False:
        return None, None
    ok, why = tensorboard_available()
    if not ok:
        if wanted:
            raise FacelabError(f"--tensorboard: {why}; `pip install tensorboard` or drop the flag")
        return None, HINT
    return TensorBoardLog(model_dir), None


def tee(*callbacks: Progress | None) -> Progress:
    """One progress callback calling each of ``callbacks`` (None ones left out) in order."""
    live = [cb for cb in callbacks if cb is not None]

    def cb(n: int = 1, **info: Any) -> None:
        for c in live:
            c(n, **dict(info))

    return cb
