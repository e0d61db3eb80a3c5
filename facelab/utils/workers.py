"""One meaning of ``--workers`` in every stage: -1 = automatic, 0 = in the calling process, N = N processes."""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any

#: The meaning of a ``workers`` setting, said once; every stage's help text ends with it.
WORKERS_MEANING = "-1 = automatic (one per usable core), 0 = in this process, N = N processes"
AUTO = -1


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int, cap: int | None = None, reserve: int = 0, share: int = 1) -> int:
    """The number of worker processes a stage starts; 0 means it works in the calling process.

    ``requested`` -1 is automatic: the usable cores minus the ``reserve`` the stage keeps for itself (e.g. one per
    training process), split over ``share`` processes that each start workers (DDP ranks), at least 1 and at most
    ``cap``. 0 and any N > 0 are taken as given (a stage may still start fewer when it has fewer jobs).
    """
    requested = int(requested)
    if requested < AUTO:
        raise ValueError(f"workers must be -1 (automatic), 0 (in this process) or a count, got {requested}")
    if requested != AUTO:
        return requested
    n = max(1, (usable_cores() - int(reserve)) // max(1, int(share)))
    return n if cap is None else max(1, min(n, int(cap)))


def workers_field(what: str, default: int = AUTO) -> Any:
    """A dataclass field for a stage's ``workers`` setting: ``what`` the processes do, then the one meaning."""
    return field(default=default, metadata={"help": f"{what}: {WORKERS_MEANING}.", "range": (AUTO, 256)})
