"""The per-item error policy: a bad item is a counted, named skip; anything else still stops the stage."""

from __future__ import annotations

import errno
import logging

import cv2
import numpy as np
import pytest

from facelab.errors import FaceFileError, FacelabError
from facelab.utils.items import ITEM_ERRORS, ItemErrors, failure_summary, run_items

pytestmark = pytest.mark.fault


def _work(x: int) -> int:
    if x == 2:
        raise np.linalg.LinAlgError("Singular matrix")
    if x == 4:
        raise OSError(errno.ENOSPC, "No space left on device", "/ws/aligned/000004_0.jpg")
    if x == 5:
        cv2.warpAffine(np.zeros((4, 4), np.uint8), np.zeros((3, 3)), (4, 4))  # cv2.error: bad matrix shape
    if x == 6:
        raise FaceFileError("000006_0.jpg: not a valid face file: truncated\nsecond line")
    return x * 10


def test_run_items_skips_and_names_each_bad_item_and_goes_on(caplog):
    errors = ItemErrors()
    with caplog.at_level(logging.WARNING):
        done = list(run_items(range(8), _work, errors, name=lambda x: f"item{x}"))
    assert done == [(0, 0), (1, 10), (3, 30), (7, 70)]
    assert len(errors) == 4 and errors
    assert [f.split(":")[0] for f in errors.failures] == ["item2", "item4", "item5", "item6"]
    assert "Singular matrix" in errors.failures[0] and "No space left on device" in errors.failures[1]
    assert all("\n" not in f for f in errors.failures)  # one line each
    assert "item4" in caplog.text  # logged, never printed


def test_guard_records_and_the_loop_goes_on():
    errors = ItemErrors()
    done = []
    for name in ("a", "b", "c"):
        with errors.guard(name):
            if name == "b":
                raise ValueError("umeyama: source points are all identical")
            done.append(name)
    assert done == ["a", "c"]
    assert errors.as_tuple() == ("b: umeyama: source points are all identical",)


def test_a_message_already_naming_the_item_is_not_named_twice():
    errors = ItemErrors()
    with errors.guard("x.jpg"):
        raise FaceFileError("/ws/data_dst/aligned/x.jpg: source frame '/etc/passwd' is outside the workspace")
    assert errors.failures == ["x.jpg: source frame '/etc/passwd' is outside the workspace"]


def test_programming_errors_and_interrupts_are_not_swallowed():
    errors = ItemErrors()
    with pytest.raises(KeyError):
        with errors.guard("a"):
            raise KeyError("bug")

    def interrupted(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(run_items([1], interrupted, errors))
    assert len(errors) == 0 and not errors


def test_the_policy_covers_what_geometry_and_io_raise():
    for exc in (FacelabError, FaceFileError, OSError, ValueError, np.linalg.LinAlgError, cv2.error):
        assert issubclass(exc, ITEM_ERRORS)


def test_extend_takes_failures_recorded_elsewhere():
    a = ItemErrors()
    a.add("one", "bad")
    a.extend(["two: worse"])
    assert a.as_tuple() == ("one: bad", "two: worse")


def test_failure_summary_names_the_first_few_and_counts_the_rest():
    line = failure_summary([f"{i:06d}_0.jpg: broken" for i in range(7)])
    assert line.startswith("7 failed: 000000_0.jpg: broken; 000001_0.jpg: broken; 000002_0.jpg: broken")
    assert line.endswith("(and 4 more)") and "\n" not in line
    errors = ItemErrors()
    errors.add("a", "x" * 5000)
    assert len(failure_summary(errors.failures)) < 400
