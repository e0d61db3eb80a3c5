"""The one progress callback of library code.

A stage takes ``progress: Progress | None`` and calls ``progress(n=1, **info)`` when ``n`` more items are done
(``info``: a few values worth showing, e.g. ``faces=12``); ``progress(0, total=N)`` sets or resets the total.
The CLI turns it into a tqdm bar (:func:`facelab.cli.common.progress_callback`); library code never prints.
"""

from __future__ import annotations

from typing import Any, Callable

Progress = Callable[..., None]


def no_progress(n: int = 1, **info: Any) -> None:
    """A :data:`Progress` that ignores every call."""
