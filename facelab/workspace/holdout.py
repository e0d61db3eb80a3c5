"""Held-out faces: a pure, stable rule that keeps some faces away from the trainer, for a reconstruction score on
faces it never saw.

The rule reads the source frame recorded in each face file's metadata (e.g. ``"data_src/000123.png"``), never the
face file's own name, so it survives sorting and renaming ``aligned/``. Frames are grouped in blocks of consecutive
frame numbers, so the neighbours of a held-out frame in a video (near-duplicates of it) are held out with it.
A block is held out when a hash (SHA-256, the same on every run and machine) of (salt, block) is below ``share``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import PureWindowsPath
from typing import Protocol, Union

DEFAULT_BLOCK = 24  # about a second of video
DEFAULT_SALT = "facelab"
_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")


class HasSourceFrame(Protocol):
    """Anything with a ``source_frame`` (a :class:`facelab.workspace.FaceMeta`)."""

    @property
    def source_frame(self) -> str: ...


FrameRef = Union[str, "os.PathLike[str]", HasSourceFrame]


def block_key(source_frame: str | os.PathLike[str], block: int = DEFAULT_BLOCK) -> str:
    """The block a frame belongs to, from its file stem only (folders and extension are ignored).

    A stem ending in digits (``"000123"``, ``"clip_000123"``) gives ``"<prefix>#<number // block>"``, so frames
    ``0..block-1`` share a block; any other stem is its own block, ``"=<stem>"``.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    stem = PureWindowsPath(os.fspath(source_frame)).stem  # splits on both / and \
    found = _TRAILING_DIGITS.match(stem)
    if found is None:
        return f"={stem}"
    prefix, digits = found.groups()
    return f"{prefix}#{int(digits) // block}"


def block_score(key: str, salt: str = DEFAULT_SALT) -> float:
    """Uniform value in [0, 1) of a block key: the first 8 bytes of SHA-256(salt, key) over 2**64."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _check_share(share: float) -> float:
    share = float(share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    return share


def is_held_out(source_frame: str | os.PathLike[str], share: float, block: int = DEFAULT_BLOCK,
                salt: str = DEFAULT_SALT) -> bool:
    """Whether the face of ``source_frame`` is held out of training: its block's score is below ``share``.

    share 0 holds nothing, share 1 holds everything; about ``share`` of the blocks are held in between.
    """
    return block_score(block_key(source_frame, block), salt) < _check_share(share)


def _frame_of(item: FrameRef) -> str:
    frame = getattr(item, "source_frame", item)
    return os.fspath(frame)  # type: ignore[arg-type]


def split_held_out(metas_or_frames: Sequence[FrameRef], share: float, block: int = DEFAULT_BLOCK,
                   salt: str = DEFAULT_SALT) -> tuple[list[int], list[int]]:
    """Split faces (face metadata or source frame names) into ``(train_indices, held_indices)``, both ascending.

    Follows :func:`is_held_out`, with two guarantees: at least one face stays in training (when every block would
    be held, the block with the highest score trains), and when ``share`` > 0 and there are at least two blocks,
    at least one block is held (the one with the lowest score).
    """
    share = _check_share(share)
    keys = [block_key(_frame_of(item), block) for item in metas_or_frames]
    scores = {key: block_score(key, salt) for key in set(keys)}
    held = {key for key, score in scores.items() if score < share}
    if scores and len(held) == len(scores):
        held.discard(max(scores, key=lambda k: (scores[k], k)))
    if share > 0 and not held and len(scores) >= 2:
        held.add(min(scores, key=lambda k: (scores[k], k)))
    train = [i for i, key in enumerate(keys) if key not in held]
    return train, [i for i, key in enumerate(keys) if key in held]


def held_out_paths(paths: Sequence[os.PathLike[str] | str], share: float, block: int = DEFAULT_BLOCK,
                   salt: str = DEFAULT_SALT) -> set[str]:
    """The face files among ``paths`` that :func:`split_held_out` holds out, by their metadata's source frame.

    Files whose metadata cannot be read are never held (the stage that reads them reports them)."""
    if share <= 0:
        return set()
    from facelab.errors import FaceFileError
    from facelab.workspace.faces import read_meta

    readable: list[tuple[str, str]] = []
    for path in paths:
        try:
            readable.append((os.fspath(path), read_meta(path).source_frame))
        except (FaceFileError, OSError):
            continue
    _, held = split_held_out([frame for _, frame in readable], share, block, salt)
    return {readable[i][0] for i in held}
