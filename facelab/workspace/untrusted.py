"""Bounded parsing and checking of untrusted metadata values (a face file may come from anyone).

Each checker takes one JSON value and returns it typed, or raises ``ValueError``; :func:`field` names the field in
the message. Every size is bounded, every number is finite and within a range whose products stay finite, and the
geometry is refused when the face fit cannot use it, so what passes here cannot fail later in the maths.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Callable, TypeVar

import numpy as np

from facelab.align.geometry import canonical_face_type, face_transform
from facelab.errors import FacelabError

T = TypeVar("T")

Matrix = tuple[tuple[float, float, float], tuple[float, float, float]]
Points = tuple[tuple[float, float], ...]

MAX_JSON_VALUES = 20_000  # bound on the values of a document (a face with a few masks has ~600)
MAX_STRING = 16 << 20  # characters of a base64 string (the JSON size limit bounds it anyway)
MAX_EXTRA = 256  # entries of ``extra``
MAX_FACE_SIZE = 4096  # the largest face extract writes
MAX_FRAME_SIDE = 1 << 16
MAX_COORD = 1e6  # |coordinate| in pixels, box and landmarks: keeps every product finite
MAX_MATRIX = 1e7  # |entry| of a 2x3 matrix (translations of a small face in a large frame)
MIN_DET = 1e-12  # |det| of a matrix's 2x2 part below this is not invertible in practice
MIN_SPREAD = 1e-3  # pixels: landmarks closer together than this carry no geometry


def field(doc: dict, key: str, parse: Callable[[Any], T]) -> T:
    """``parse(doc[key])``; a missing key or any failure is a ValueError naming ``key``."""
    if key not in doc:
        raise ValueError(f"field {key!r} is missing")
    return named(key, parse, doc[key])


def named(key: str, parse: Callable[[Any], T], value: Any) -> T:
    """``parse(value)``; any failure is a one-line ValueError naming ``key``."""
    try:
        return parse(value)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, FacelabError,
            np.linalg.LinAlgError) as exc:
        raise ValueError(f"field {key!r}: {' '.join(str(exc).split())[:200]}") from None


def seq(v: Any, n: int | None = None) -> list:
    if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
        what = f"{type(v).__name__}" if not isinstance(v, (list, tuple)) else f"{len(v)} items"
        raise ValueError(f"expected a list of {n if n is not None else 'some'} items, got {what}")
    return list(v)


def number(v: Any, bound: float = MAX_COORD) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise ValueError(f"expected a number, got {type(v).__name__}")
    if not -bound <= v <= bound:  # also refuses NaN
        raise ValueError(f"expected a finite number within +-{bound:g}, got {v!r:.40}")
    return float(v)


def integer(v: Any, lo: int = -(1 << 53), hi: int = 1 << 53) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ValueError(f"expected an integer in {lo}..{hi}, got {v!r:.40}")
    return int(v)


def string(v: Any, limit: int = 4096) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise ValueError(f"expected a string of at most {limit} characters")
    return v


def frame_size(v: Any) -> tuple[int, int]:
    w, h = (integer(x, 1, MAX_FRAME_SIDE) for x in seq(v, 2))
    return w, h


def face_index(v: Any) -> int:
    return integer(v, 0, 1_000_000)


def face_size(v: Any) -> int:
    return integer(v, 1, MAX_FACE_SIZE)


def face_type(v: Any) -> str:
    canonical_face_type(string(v, 64))  # raises FacelabError for an unknown type
    return v


def box(v: Any) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (number(x) for x in seq(v, 4))
    return x0, y0, x1, y1


def b64(v: Any) -> bytes:
    if not isinstance(v, str) or len(v) > MAX_STRING:
        raise ValueError("expected a base64 string")
    return base64.b64decode(v, validate=True)


def points(v: Any) -> Points:
    """68 (x, y) points within :data:`MAX_COORD` that are not all (nearly) the same point."""
    rows = seq(v, 68)
    pts = tuple((number(x), number(y)) for x, y in (seq(p, 2) for p in rows))
    arr = np.asarray(pts, np.float64)
    if float(np.ptp(arr[:, 0])) < MIN_SPREAD or float(np.ptp(arr[:, 1])) < MIN_SPREAD:
        raise ValueError("landmarks are degenerate (all on one point or one axis-aligned line)")
    return pts


def matrix(v: Any) -> Matrix:
    """A finite, bounded, invertible 2x3 affine."""
    rows = tuple(tuple(number(x, MAX_MATRIX) for x in seq(r, 3)) for r in seq(v, 2))
    det = rows[0][0] * rows[1][1] - rows[0][1] * rows[1][0]
    if not abs(det) >= MIN_DET:
        raise ValueError(f"matrix is not invertible (determinant {det:.3g})")
    return rows  # type: ignore[return-value]


def as_points(v: Any) -> Points:
    """Landmarks given in code, as (68, 2) finite floats (a document read from a file goes through points)."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (68, 2) or not np.all(np.isfinite(arr)):
        raise ValueError(f"landmarks must be 68 finite (x, y) points, got shape {arr.shape}")
    return tuple((float(x), float(y)) for x, y in arr)


def as_matrix(v: Any) -> Matrix:
    """A matrix given in code, as a finite 2x3 (a document read from a file goes through matrix)."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (2, 3) or not np.all(np.isfinite(arr)):
        raise ValueError(f"matrix must be a finite 2x3, got shape {arr.shape}")
    return tuple(tuple(float(x) for x in row) for row in arr)  # type: ignore[return-value]


def fits(landmarks: Points) -> None:
    """Refuse landmarks the face fit cannot use (merge recomputes the frame->face transform from the frame
    landmarks; stages that re-crop fit the face landmarks)."""
    mat = face_transform(np.asarray(landmarks, np.float64), 256, "whole_face")
    det = float(mat[0, 0] * mat[1, 1] - mat[0, 1] * mat[1, 0])
    if not (np.all(np.isfinite(mat)) and abs(det) >= MIN_DET):
        raise ValueError("the face fit of these landmarks is degenerate")


def extra(v: Any) -> dict[str, Any]:
    """``extra``: a bounded object of short names to JSON scalars (finite numbers, short strings)."""
    if not isinstance(v, dict) or len(v) > MAX_EXTRA:
        raise ValueError(f"extra must be an object of at most {MAX_EXTRA} entries")
    for k, x in v.items():
        string(k, 256)
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError(f"extra[{k!r}] is not finite")
        if not (x is None or isinstance(x, (bool, int, float)) or (isinstance(x, str) and len(x) <= 4096)):
            raise ValueError(f"extra[{k!r}] must be a JSON scalar")
    return dict(v)


def parse_json(raw: bytes) -> Any:
    """Parse a metadata document in bounded memory: the number of values is bounded before parsing (every value
    past the first follows a ',' or opens a container, so counting those bytes bounds it from above), NaN and
    Infinity are refused, and so are numbers that overflow or have absurdly many digits."""
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_JSON_VALUES:
        raise ValueError(f"metadata has up to {values} values, more than {MAX_JSON_VALUES} (oversized arrays)")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float,
                          parse_int=_short_int)
    except RecursionError as exc:
        raise ValueError("metadata is nested too deeply") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"metadata contains {name}; only finite numbers are allowed")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"metadata number {text[:40]} is not finite")
    return v


def _short_int(text: str) -> int:
    if len(text) > 20:
        raise ValueError(f"metadata integer of {len(text)} digits")
    return int(text)
