"""Hostile face files for tests: a valid face file re-embedded with a metadata document the writer would refuse
(degenerate or huge landmarks, NaN in ``extra``, a source frame outside the workspace)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from facelab.workspace import faces as facefile

DEGENERATE = {"landmarks_frame": [[120.0, 140.0]] * 68, "landmarks_face": [[60.0, 70.0]] * 68}
HUGE = {"landmarks_frame": [[1e300 * (i % 3), 1e300 * (i % 2)] for i in range(68)],
        "landmarks_face": [[1e300 * (i % 3), 1e300 * (i % 2)] for i in range(68)]}
NAN_EXTRA = {"extra": {"yaw": float("nan")}}


def outside(rel: str) -> dict[str, Any]:
    """A ``source_frame`` change pointing at ``rel`` (``../`` climbs out, ``/`` is absolute)."""
    return {"source_frame": rel}


def plant(path: Path, **changes: Any) -> Path:
    """Rewrite the metadata of face file ``path`` with ``changes`` applied, skipping every writer check."""
    doc = facefile.meta_to_doc(facefile.read_meta(path))
    doc.update(changes)
    blob = zlib.compress(json.dumps(doc).encode("utf-8"))  # NaN is written as the JSON literal NaN
    data = path.read_bytes()
    embed = facefile._png_embed if path.suffix.lower() == ".png" else facefile._jpeg_embed
    path.write_bytes(embed(data, blob))
    return path
