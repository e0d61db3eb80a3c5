"""The one checkpoint format of facelab: swap models, mask learners and WSOL runs all store a folder like

```
<folder>/
  config.json            human-readable: kind, format version, created / updated (ISO 8601 with time zone), ...
  ckpt_last.pt           the newest checkpoint: a dict of plain types and tensors (``torch.load(weights_only=True)``)
  ckpt_<iter:07d>.pt     numbered backups (the newest N are kept)
```

Every checkpoint dict holds ``format_version`` and ``kind`` (``swap``, ``mask``, ``wsol``); every write goes to a
temporary file first and is moved into place with ``os.replace``, so a kill never leaves a broken file. Reading
checks the kind and the version with one rule: a newer format than this facelab knows is an error naming the file.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_path, atomic_write_text
from facelab.utils.torch_io import load_tensors

FORMAT_VERSION = 2  # 2: discriminators ("critics") stored apart from the swap model's weights
CONFIG_NAME = "config.json"
LAST_NAME = "ckpt_last.pt"
KINDS = ("swap", "mask", "wsol")
_BACKUP_RE = re.compile(r"^ckpt_(\d{7})\.pt$")


def now_iso() -> str:
    """The local time as ISO 8601 with its UTC offset, e.g. ``2026-12-01T20:22:43+00:00``."""
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


# -- paths --------------------------------------------------------------------------------------------------------
def last_path(folder: Path) -> Path:
    return Path(folder) / LAST_NAME


def backup_path(folder: Path, iteration: int) -> Path:
    return Path(folder) / f"ckpt_{iteration:07d}.pt"


def list_backups(folder: Path) -> list[tuple[int, Path]]:
    """Numbered backups as ``(iteration, path)``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _BACKUP_RE.match(p.name)) and p.is_file()]
    return sorted(found)


def has_checkpoint(folder: Path) -> bool:
    return last_path(folder).is_file()


# -- write --------------------------------------------------------------------------------------------------------
def save_checkpoint(folder: Path, ckpt: dict[str, Any], backups: int, iteration: int | None = None) -> Path:
    """Write ``ckpt_last.pt`` atomically, then (``backups`` > 0) a numbered backup of ``iteration`` (default
    ``ckpt["iteration"]``); keep the newest ``backups`` of those. Returns the path of ``ckpt_last.pt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    last = last_path(folder)
    with atomic_path(last) as tmp:
        try:
            torch.save(ckpt, tmp)
        except OSError as exc:
            raise FacelabError(f"cannot write checkpoint {last}: {exc.strerror}; check free disk space") from exc
    if backups > 0:
        target = backup_path(folder, int(ckpt.get("iteration", 0) if iteration is None else iteration))
        with atomic_path(target) as tmp:
            shutil.copyfile(last, tmp)
        for _, old in list_backups(folder)[:-backups]:
            old.unlink(missing_ok=True)
    return last


def write_config(folder: Path, doc: dict[str, Any]) -> Path:
    """Write ``config.json`` (atomic): ``doc`` plus ``format_version``, ``created`` (kept from an existing file)
    and ``updated``. An existing file that cannot be read is an error naming it (nothing is overwritten)."""
    path = Path(folder) / CONFIG_NAME
    now = now_iso()
    created = read_config(folder).get("created", now) if path.is_file() else now
    full = {"format_version": FORMAT_VERSION, **doc, "created": created, "updated": now}
    atomic_write_text(path, json.dumps(full, indent=2, sort_keys=False) + "\n")
    return path


# -- read ---------------------------------------------------------------------------------------------------------
def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of ``folder`` as a dict; an unreadable or non-object file raises FacelabError."""
    path = Path(folder) / CONFIG_NAME
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise FacelabError(f"{path} is missing; the folder holds no facelab model") from exc
    except (OSError, ValueError) as exc:
        raise FacelabError(f"{path} is not readable JSON ({exc}); fix it or move the folder away") from exc
    if not isinstance(doc, dict):
        raise FacelabError(f"{path} is not a JSON object; fix it or move the folder away")
    return doc


def config_kind(folder: Path) -> str:
    """The ``kind`` recorded in ``config.json`` (files written before kinds existed: ``swap``, or ``wsol`` when
    they say so)."""
    doc = read_config(folder)
    kind = doc.get("kind", "swap")
    if kind not in KINDS:
        raise FacelabError(f"{Path(folder) / CONFIG_NAME}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    return str(kind)


def check_folder_kind(folder: Path, kind: str) -> None:
    """Refuse to write a ``kind`` checkpoint into a folder whose config.json records another kind (an unreadable
    config.json is an error naming it); a folder without config.json is free."""
    path = Path(folder) / CONFIG_NAME
    if path.exists() and (found := config_kind(folder)) != kind:
        raise FacelabError(f"{path} says the folder holds a {found} model, not a {kind} one; choose another folder")


def backup_hint(folder: Path) -> str:
    backups = list_backups(folder)
    if backups:
        return f"copy the newest backup {backups[-1][1].name} over {LAST_NAME} to go back to it"
    return "delete it to start afresh"


def read_checkpoint(path: Path, kind: str, required: tuple[str, ...] = (),
                    map_location: str | torch.device = "cpu",
                    migrate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Load a checkpoint file safely and check it: a dict of ``kind`` (files without a kind are swap models) with
    every key of ``required``, of a format this facelab reads. ``migrate`` upgrades a loaded dict written by an
    older facelab (e.g. one from before kinds existed) before those checks."""
    path = Path(path)
    hint = backup_hint(path.parent)
    ckpt = load_tensors(path, "checkpoint", hint, map_location)
    if migrate is not None and isinstance(ckpt, dict):
        ckpt = migrate(ckpt)
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or any(k not in ckpt for k in required):
        raise FacelabError(f"{path} is not a facelab {kind} checkpoint; {hint}")
    found = ckpt.get("kind", "swap")
    if found != kind:
        raise FacelabError(f"{path} holds a {found} checkpoint, not a {kind} one; point to a {kind} folder")
    if int(ckpt["format_version"]) > FORMAT_VERSION:
        raise FacelabError(f"checkpoint {path} has format {ckpt['format_version']} (this facelab reads up to "
                           f"{FORMAT_VERSION}); upgrade facelab to load it")
    return ckpt
