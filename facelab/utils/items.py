"""The one per-item error policy of the stages that loop over items (frames, face files).

One bad item never stops a stage: the errors an item can raise on bad input or a bad disk (:data:`ITEM_ERRORS`)
are caught per item, recorded as ``"name: message"`` in an :class:`ItemErrors` and logged, and the stage goes on
with the next item. The stage's result record carries the failures; the CLI names them and exits non-zero unless
told ``--keep-going``. Anything else (a bug, an interrupt, a broken worker pool) still stops the stage.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from facelab.errors import FacelabError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: What one item may raise on hostile input or a failing disk; caught per item, never beyond.
ITEM_ERRORS: tuple[type[BaseException], ...] = (FacelabError, OSError, ValueError, np.linalg.LinAlgError, cv2.error)
MESSAGE_MAX = 300  # characters of one recorded message
SHOWN = 3  # failures a one-line summary names


def item_message(error: BaseException | str, name: str = "") -> str:
    """``error`` as one short line; a leading ``<path>/<name>: `` already naming the item is dropped."""
    text = error if isinstance(error, str) else (str(error) or type(error).__name__)
    text = " ".join(text.split())
    if name:
        at = text.find(f"{name}: ")
        if at >= 0 and " " not in text[:at]:
            text = text[at + len(name) + 2:]
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 3] + "..."


@dataclass
class ItemErrors:
    """The failed items of one stage run, each ``"name: message"``, in the order they failed."""

    failures: list[str] = field(default_factory=list)

    def add(self, name: str, error: BaseException | str) -> None:
        """Record (and log) that item ``name`` failed with ``error``."""
        entry = f"{name}: {item_message(error, name)}"
        self.failures.append(entry)
        log.warning("skipped %s", entry)

    @contextmanager
    def guard(self, name: str) -> Iterator[None]:
        """Run the block for item ``name``; an :data:`ITEM_ERRORS` error ends the block and is recorded."""
        try:
            yield
        except ITEM_ERRORS as exc:
            self.add(name, exc)

    def extend(self, failures: Iterable[str]) -> None:
        """Take over failures recorded elsewhere (e.g. by a worker process), already ``"name: message"``."""
        for entry in failures:
            self.failures.append(entry)
            log.warning("skipped %s", entry)

    def __len__(self) -> int:
        return len(self.failures)

    def __bool__(self) -> bool:
        return bool(self.failures)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self.failures)


def run_items(items: Iterable[T], fn: Callable[[T], R], errors: ItemErrors,
              name: Callable[[T], str] = lambda item: getattr(item, "name", str(item))) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for every item ``fn`` handles; the items it fails on are recorded in ``errors``."""
    for item in items:
        try:
            result = fn(item)
        except ITEM_ERRORS as exc:
            errors.add(name(item), exc)
            continue
        yield item, result


def failure_summary(failures: Iterable[str], shown: int = SHOWN) -> str:
    """One line naming the first ``shown`` failures and how many there are: ``2 failed: a: ...; b: ...``."""
    failures = list(failures)
    text = "; ".join(failures[:shown])
    more = f" (and {len(failures) - shown} more)" if len(failures) > shown else ""
    return f"{len(failures)} failed: {text}{more}"
