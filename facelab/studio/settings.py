"""Merge settings in the studio: the control list made from :class:`MergeConfig`'s fields (so every new setting
appears by itself), and the settings file ``merge --config`` reads, written atomically with a revision check so two
tabs never overwrite each other unseen."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import types
import typing
from pathlib import Path
from typing import Any, Mapping

from facelab.errors import FacelabError
from facelab.merge.config import GLOBAL_KEYS, MergeConfig, MergeSettings, settings_from_dict
from facelab.utils.atomic import atomic_write_text
from facelab.utils.config import config_to_dict, load_config_file

#: The studio's settings file, in the workspace root; ``python main.py merge --config <this>`` reads it.
SETTINGS_FILE = "merge_settings.json"
_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


class Conflict(FacelabError):
    """The settings file changed since the client read it (answered 409 with the current document)."""


def _kind(hint: Any) -> tuple[str, bool]:
    """(control kind, may be empty) of a field's type; ``json`` for anything that is not a plain scalar."""
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else Any
    if typing.get_origin(hint) is typing.Literal:
        return "str", nullable
    return _KINDS.get(hint, "json"), nullable


def _text(value: Any) -> Any:
    return value() if callable(value) else value


def field_schema(cls: type = MergeConfig) -> list[dict[str, Any]]:
    """One control description per dataclass field: name, kind (bool, int, float, str, json), default, help,
    choices, range, and whether it acts on the whole run (then a frame range may not change it)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, nullable = _kind(hints.get(f.name, Any))
        choices = f.metadata.get("choices")
        if choices is None and typing.get_origin(hints.get(f.name)) is typing.Literal:
            choices = typing.get_args(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        out.append({"name": f.name, "kind": kind, "nullable": nullable,
                    "default": json.loads(json.dumps(default, default=str)),
                    "help": str(_text(f.metadata.get("help", ""))),
                    "choices": None if choices is None else [str(c) for c in _text(choices)],
                    "range": list(f.metadata["range"]) if "range" in f.metadata else None,
                    "global": f.name in GLOBAL_KEYS})
    return out


def settings_doc(settings: MergeSettings) -> dict[str, Any]:
    """The config-file document of ``settings``: ``{"defaults": {...}, "ranges": [{"frames": "a-b", ...}]}``."""
    ranges = [{"frames": f"{r.first}-{r.last}" if r.last != r.first else str(r.first), **dict(r.overrides)}
              for r in settings.ranges]
    return {"defaults": config_to_dict(settings.base), "ranges": ranges}


def parse_doc(doc: Any, where: str = "studio settings") -> MergeSettings:
    """Validate a document from the page exactly as ``merge --config`` validates a file."""
    if not isinstance(doc, Mapping):
        raise FacelabError(f"{where}: settings must be an object with defaults and ranges")
    return settings_from_dict(doc, None, where)


def revision_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class SettingsStore:
    """The workspace's settings file; one writer at a time, each write atomic and checked against the revision
    the writer last read."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / SETTINGS_FILE
        self.lock = threading.Lock()

    def _read(self) -> tuple[MergeSettings, str]:
        if not self.path.exists():
            return MergeSettings(), ""
        data = load_config_file(self.path)
        return parse_doc(data, str(self.path)), revision_of(self.path.read_bytes())

    def load(self) -> tuple[MergeSettings, str]:
        """(settings, revision); defaults and an empty revision when there is no file yet."""
        with self.lock:
            return self._read()

    def save(self, doc: Any, revision: str | None) -> tuple[MergeSettings, str]:
        """Validate ``doc`` and write it; :class:`Conflict` when the file's revision is not ``revision`` (None
        skips the check)."""
        settings = parse_doc(doc)
        text = json.dumps(settings_doc(settings), indent=2) + "\n"
        with self.lock:
            current = revision_of(self.path.read_bytes()) if self.path.exists() else ""
            if revision is not None and revision != current:
                raise Conflict(f"{self.path} was changed elsewhere since this page read it; reload to see it")
            atomic_write_text(self.path, text)
            return settings, revision_of(text.encode("utf-8"))
