"""Resume bookkeeping: which frames are finished (their face 0 present, or recorded in ``.extract_state.json``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from facelab.errors import FaceFileError
from facelab.utils.atomic import atomic_write_text
from facelab.workspace.faces import list_faces, read_meta

STATE_NAME = ".extract_state.json"
STATE_VERSION = 1
log = logging.getLogger(__name__)


def load_state(aligned_dir: Path) -> dict[str, int]:
    """Recorded frames -> number of faces written (0 for frames with no face). Unreadable state counts as empty."""
    path = Path(aligned_dir) / STATE_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text("utf-8"))
        frames = doc["frames"]
        if not isinstance(frames, dict):
            raise TypeError("frames is not an object")
        return {str(k): int(v) for k, v in frames.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s (%s); finished frames are found from the face files", path, exc)
        return {}


def save_state(aligned_dir: Path, frames: dict[str, int]) -> None:
    doc = {"version": STATE_VERSION, "frames": dict(sorted(frames.items()))}
    atomic_write_text(Path(aligned_dir) / STATE_NAME, json.dumps(doc, indent=0))


def scan_faces(aligned_dir: Path) -> tuple[dict[str, list[Path]], set[str]]:
    """Face files in ``aligned_dir`` grouped by their source frame (from metadata, so renamed files count), and
    the frames among them whose faces were all written: a frame's faces are written in turn and the last one is
    marked ``frame_done`` (:func:`facelab.extract.writer.write_faces`), so a frame without it was cut short by a
    kill. Files written before that mark existed count their frame complete when face 0 is there (face 0 was
    written last)."""
    out: dict[str, list[Path]] = {}
    complete: set[str] = set()
    for path in list_faces(aligned_dir):
        try:
            meta = read_meta(path)
        except FaceFileError:
            continue
        out.setdefault(meta.source_frame, []).append(path)
        marked = "frame_done" in meta.extra or "frame_faces" in meta.extra
        if meta.extra.get("frame_done") is True or (not marked and meta.face_index == 0):
            complete.add(meta.source_frame)
    return out, complete


def face_coverage(aligned_dir: Path, frames: list[str]) -> tuple[tuple[int, int], ...]:
    """For a video: (face index, frames of ``frames`` holding a face file with that index), by face index. Each
    track keeps one face index, so this is the share of the video each tracked person has face files in."""
    wanted = set(frames)
    seen: dict[int, set[str]] = {}
    for path in list_faces(aligned_dir):
        try:
            meta = read_meta(path)
        except FaceFileError:
            continue
        if meta.source_frame in wanted:
            seen.setdefault(meta.face_index, set()).add(meta.source_frame)
    return tuple((index, len(names)) for index, names in sorted(seen.items()))
