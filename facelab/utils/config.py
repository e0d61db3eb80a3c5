"""Dataclass configs: defaults live in the dataclass; a config file overrides them; explicit flags override both.

Flags default to ``None`` in the CLI so an unset flag never overrides a value by accident; they are made from the
fields' metadata (:func:`setting`, :mod:`facelab.cli.options`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from facelab.errors import FacelabError

C = TypeVar("C")


def setting(default: Any, help: str | Callable[[], str], **meta: Any) -> Any:
    """A dataclass field with its default, one line of ``help`` (or a callable making it from a registry) and more
    metadata for its flag (``choices``, ``range``, ``flag``, ``cli``; see :mod:`facelab.cli.options`)."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def load_config_file(path: str | Path | None) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict (empty when ``path`` is None)."""
    if path is None:
        return {}
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FacelabError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FacelabError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise FacelabError(f"config file {path} must hold a table/object at the top level")
    return data


def build_config(cls: type[C], *layers: Mapping[str, Any] | None, source: str = "config") -> C:
    """Build dataclass ``cls`` from defaults overridden by each layer in turn; ``None`` values are skipped.

    Unknown keys are an error naming them, so a typo in a config file is never silently ignored.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        unknown = sorted(set(layer) - names)
        if unknown:
            noun = source if source.endswith("option") else f"{source} option"
            raise FacelabError(f"unknown {noun}(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values.update({k: v for k, v in layer.items() if v is not None})
    try:
        return cls(**values)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"invalid {source}: {exc}") from exc


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
