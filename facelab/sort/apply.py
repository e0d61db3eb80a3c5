"""Carry out a sort: rename kept faces in order, move rejects to ``<dir>_trash``. Nothing is ever deleted."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from facelab.errors import FaceFileError, FacelabError
from facelab.sort.methods import SORT_METHODS, SortPlan
from facelab.utils.items import ItemErrors
from facelab.utils.progress import Progress
from facelab.workspace.faces import list_faces, read_meta

log = logging.getLogger(__name__)
STAGING = "_sorting_"  # visible, valid face files if a rename is interrupted; recover-names fixes them


@dataclass(frozen=True)
class SortResult:
    method: str
    kept: int
    trashed: int
    skipped: int  # unusable files left untouched
    trash_dir: Path | None
    failures: tuple[str, ...] = ()  # "face file: why" of every file left untouched


def trash_dir_for(folder: Path) -> Path:
    return folder.parent / f"{folder.name}_trash"


def _unique(dest: Path) -> Path:
    k = 1
    cand = dest
    while cand.exists():
        cand = dest.with_name(f"{dest.stem}.{k}{dest.suffix}")
        k += 1
    return cand


def move_to_trash(paths: list[Path] | tuple[Path, ...], folder: Path) -> Path | None:
    if not paths:
        return None
    trash = trash_dir_for(folder)
    trash.mkdir(parents=True, exist_ok=True)
    for p in paths:
        os.replace(p, _unique(trash / p.name))
    return trash


def rename_in_order(folder: Path, order: list[tuple[Path, str]]) -> None:
    """Rename ``(path, new stem)`` pairs in ``folder`` in two phases, so no name collides halfway."""
    staged = []
    for i, (p, stem) in enumerate(order):
        tmp = folder / f"{STAGING}{i:06d}{p.suffix.lower()}"
        os.replace(p, tmp)
        staged.append((tmp, stem))
    for tmp, stem in staged:
        os.replace(tmp, _unique(folder / f"{stem}{tmp.suffix}"))


def apply_plan(folder: Path, plan: SortPlan) -> tuple[int, int, Path | None]:
    trash = move_to_trash(plan.trash, folder)
    rename_in_order(folder, [(p, f"{i:05d}") for i, p in enumerate(plan.order, start=1)])
    return len(plan.order), len(plan.trash), trash


def sort_faces(folder: str | os.PathLike, method: str, count: int = 2000,
               progress: Progress | None = None) -> SortResult:
    """Sort the face files of ``folder`` by ``method`` (see SORT_METHODS); rejects go to ``<folder>_trash``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacelabError(f"faces folder {folder} does not exist; run extract first or pass the right folder")
    paths = list_faces(folder)
    errors = ItemErrors()
    plan = SORT_METHODS.get(method).factory(paths, count=count, progress=progress, errors=errors)
    handled = set(plan.order) | set(plan.trash)
    kept, trashed, trash = apply_plan(folder, plan)
    return SortResult(method, kept, trashed, len([p for p in paths if p not in handled]), trash, errors.as_tuple())


def recover_names(folder: str | os.PathLike) -> int:
    """Rename every face file back to ``<frame_stem>_<face_index>`` from its metadata; returns files renamed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacelabError(f"faces folder {folder} does not exist")
    order = []
    for p in list_faces(folder):
        try:
            meta = read_meta(p)
        except FaceFileError as exc:
            log.warning("skipping %s: %s", p, exc)
            continue
        if p.stem != meta.original_name:
            order.append((p, meta.original_name))
    rename_in_order(folder, order)
    return len(order)
