"""Face sets in the studio: pages of ``aligned/`` (or its trash) in a sort method's order, thumbnails cached on
disk under ``.studio/thumbs/``, moves to and from ``<aligned>_trash`` (nothing is ever deleted), face metadata."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.errors import FacelabError
from facelab.sort.apply import move_to_trash, trash_dir_for
from facelab.sort.methods import SORT_METHODS
from facelab.studio.security import Refused, inside, plain_name
from facelab.utils.atomic import atomic_write_bytes
from facelab.utils.items import ItemErrors
from facelab.workspace.faces import list_faces, read_face, read_meta
from facelab.workspace.images import encode_image, to_uint8
from facelab.workspace.layout import SIDES, Workspace

THUMB = 128
PLACES = ("aligned", "trash")
STUDIO_DIR = ".studio"


def folder_of(ws: Workspace, side: str, place: str) -> Path:
    if side not in SIDES or place not in PLACES:
        raise FacelabError(f"side must be one of {', '.join(SIDES)} and place one of {', '.join(PLACES)}")
    aligned = ws.aligned(side)  # type: ignore[arg-type]
    return aligned if place == "aligned" else trash_dir_for(aligned)


def face_path(ws: Workspace, side: str, place: str, name: str) -> Path:
    """The face file ``name`` of ``side``'s aligned folder or its trash; refused unless it lies in the workspace."""
    path = folder_of(ws, side, place) / plain_name(name, "face file")
    real = inside(ws, path)
    if not real.is_file():
        raise FileNotFoundError(2, "no such face file", str(path))
    return path


class FaceSets:
    """Listing, sorting, thumbnails and moves; sort orders are cached per folder listing."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.lock = threading.Lock()
        self._orders: dict[tuple, list[str]] = {}

    def methods(self) -> list[dict[str, str]]:
        return [{"name": e.name, "help": e.help} for e in SORT_METHODS]

    def order(self, side: str, place: str, method: str) -> list[str]:
        """File names of the folder, by name or in ``method``'s order (files it leaves out or would trash come
        last)."""
        folder = folder_of(self.ws, side, place)
        paths = list_faces(folder) if folder.is_dir() else []
        names = [p.name for p in paths]
        if method in ("", "name"):
            return names
        key = (str(folder), method, tuple((p.name, p.stat().st_mtime_ns) for p in paths))
        with self.lock:
            if key not in self._orders:
                plan = SORT_METHODS.get(method).factory(paths, count=len(paths), errors=ItemErrors())
                first = [p.name for p in (*plan.order, *plan.trash)]
                seen = set(first)
                self._orders = {key: first + [n for n in names if n not in seen]}  # keep one listing
            return self._orders[key]

    def page(self, side: str, place: str, method: str, page: int, per: int) -> dict[str, Any]:
        names = self.order(side, place, method)
        per = max(1, min(int(per), 500))
        page = max(0, int(page))
        return {"side": side, "place": place, "sort": method or "name", "total": len(names), "page": page,
                "per": per, "names": names[page * per:(page + 1) * per]}

    def thumbnail(self, side: str, place: str, name: str) -> bytes:
        """A JPEG thumbnail, made once per file version and kept in ``.studio/thumbs/``."""
        path = face_path(self.ws, side, place, name)
        stat = path.stat()
        cache = self.ws.root / STUDIO_DIR / "thumbs" / side / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}.jpg"
        if cache.is_file():
            return cache.read_bytes()
        face = read_face(path)
        small = cv2.resize(face.image, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        data = encode_image(small, ".jpg", quality=85)
        atomic_write_bytes(cache, data)
        return data

    def meta(self, side: str, place: str, name: str) -> dict[str, Any]:
        meta = read_meta(face_path(self.ws, side, place, name))
        return {"name": name, "source_frame": meta.source_frame, "frame_size": list(meta.frame_size),
                "face_index": meta.face_index, "face_type": meta.face_type, "size": meta.size,
                "box": [round(float(v), 1) for v in meta.box], "detector": meta.detector,
                "landmarks_backend": meta.landmarks_backend, "schema_version": meta.schema_version,
                "masks": [{"name": m.name, "source": m.source} for m in meta.masks],
                "landmarks_face": np.round(meta.lm_face, 1).tolist(), "extra": dict(meta.extra)}

    def mask_png(self, side: str, place: str, name: str, mask: str) -> bytes:
        meta = read_meta(face_path(self.ws, side, place, name))
        record = meta.mask(mask)
        if record is None:
            raise FileNotFoundError(2, f"no mask {mask!r} in {name}", name)
        return encode_image(to_uint8(record.to_face(meta.size)), ".png")

    def trash(self, side: str, names: list[str]) -> int:
        """Move faces of ``side``'s aligned folder to its trash (never deleted); returns how many moved."""
        paths = [face_path(self.ws, side, "aligned", n) for n in names]
        move_to_trash(paths, folder_of(self.ws, side, "aligned"))
        return len(paths)

    def restore(self, side: str, names: list[str]) -> int:
        """Move faces back from the trash; a name already taken in ``aligned/`` gets a ``.N`` suffix."""
        target = folder_of(self.ws, side, "aligned")
        inside(self.ws, target)
        moved = 0
        for n in names:
            src = face_path(self.ws, side, "trash", n)
            dest = target / src.name
            k = 1
            while dest.exists():
                dest = target / f"{src.stem}.{k}{src.suffix}"
                k += 1
            os.replace(src, dest)
            moved += 1
        return moved


def check_names(names: Any) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 10000:
        raise Refused("names must be a list of face file names")
    return names
