"""The CLI's one progress adapter: a total with no items starts the count again; a total with items keeps it."""

from __future__ import annotations

import io

from tqdm import tqdm

from facelab.cli.common import progress_callback


def test_a_second_run_on_the_same_bar_counts_from_zero():
    bar = tqdm(file=io.StringIO(), disable=False)
    cb = progress_callback(bar)
    cb(0, total=5)
    for _ in range(5):
        cb(1, faces=1)
    assert (bar.n, bar.total) == (5, 5)
    cb(0, total=3)  # the next side of the same step
    cb(1)
    assert (bar.n, bar.total) == (1, 3)
    cb(2, total=10)  # a total that grows while items are counted keeps the count
    assert (bar.n, bar.total) == (3, 10)
    bar.close()
