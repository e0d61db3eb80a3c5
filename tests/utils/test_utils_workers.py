"""``workers``: -1 = automatic, 0 = in the calling process, N = N processes, in every stage."""

from __future__ import annotations

import os

import pytest

from facelab.utils import workers as W


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may run on ``n`` cores."""

    def set_cores(n: int) -> None:
        monkeypatch.setattr(W, "usable_cores", lambda: n)

    return set_cores


def test_explicit_counts_are_taken_as_given(cores):
    cores(4)
    assert [W.resolve_workers(n) for n in (0, 1, 3, 12)] == [0, 1, 3, 12]
    assert W.resolve_workers(12, cap=2) == 12  # the cap bounds the automatic pick only
    assert W.resolve_workers(0, reserve=3, share=2) == 0


@pytest.mark.parametrize("n_cores, cap, reserve, share, want", [
    (16, None, 0, 1, 16),  # one per core
    (16, 8, 0, 1, 8),  # at most cap
    (16, 8, 1, 1, 8),
    (4, 8, 1, 1, 3),  # the training process keeps a core
    (2, 8, 1, 1, 1),
    (1, None, 1, 1, 1),  # never below one
    (16, 8, 2, 2, 7),  # two ranks: (16 - 2) // 2
    (9, 8, 3, 3, 2),
    (2, None, 64, 64, 1),
])
def test_automatic_is_the_usable_cores_less_the_reserve_split_over_ranks(cores, n_cores, cap, reserve, share, want):
    cores(n_cores)
    assert W.resolve_workers(W.AUTO, cap=cap, reserve=reserve, share=share) == want


def test_below_minus_one_is_an_error():
    with pytest.raises(ValueError, match="-1 \\(automatic\\)"):
        W.resolve_workers(-2)


def test_usable_cores_follows_the_affinity_mask():
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert W.usable_cores() == want >= 1


def test_workers_field_says_the_one_meaning():
    f = W.workers_field("Renderers")
    assert f.default == -1 and f.metadata == {"help": f"Renderers: {W.WORKERS_MEANING}.", "range": (-1, 256)}


def test_stages_resolve_their_counts_with_the_one_rule(cores):
    from facelab.extract.stage import worker_processes
    from facelab.train.loader import auto_workers, loader_workers

    cores(16)
    assert [worker_processes(w, 100) for w in (-1, 0, 1, 3)] == [8, 0, 0, 3]  # extract: auto at most 8
    assert worker_processes(-1, 2) == 2 and worker_processes(5, 1) == 0  # never more than the frames
    assert [loader_workers(w, 1) for w in (None, -1, 0, 3)] == [8, 8, 0, 3]
    assert loader_workers(-1, 4) == 3 == auto_workers(4)  # (16 - 4) // 4 per rank
    cores(2)
    assert auto_workers(1) == 1 and worker_processes(-1, 100) == 2
    cores(1)
    assert worker_processes(-1, 100) == 0  # a single worker would only wait beside this process: run here
