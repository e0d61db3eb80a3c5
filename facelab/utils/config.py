"""Dataclass configs: defaults live in the dataclass; a config file overrides them; explicit flags override both.

Flags default to ``None`` in the CLI so an unset flag never overrides a value by accident; they are made from the
fields' metadata (:func:`setting`, :mod:`facelab.cli.options`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from facelab.errors import FacelabError

C = TypeVar("C")


def setting(default: Any, help: str | Callable[[], str], **meta: Any) -> Any:
    """A dataclass field with its default, one line of ``help`` (or a callable making it from a registry) and more
    metadata for its flag (``choices``, ``range``, ``flag``, ``cli``; see :mod:`facelab.cli.options`).

    ``range=(lo, hi)`` (inclusive, None for an open end) bounds a number: :func:`build_config` refuses a value
    outside it, and the flag takes only values inside it."""
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
    values = check_values(cls, values, source)
    try:
        return cls(**values)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"invalid {source}: {exc}") from exc


class _Bad(Exception):
    """A value that does not fit a type: ``kind`` says what it must be ("an integer", ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved here is left unchecked
        return {}


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` as type ``hint`` (int to float, integral float to int, mapping to a nested config); raises
    :class:`_Bad` when it does not fit."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is None:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        kinds = []
        for arg in args:
            try:
                return _coerce(arg, value, where)
            except _Bad as bad:
                kinds.append(bad.kind)
        raise _Bad(" or ".join(kinds) + (" (or empty)" if value is None else ""))
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value in choices and not isinstance(value, bool):
            return value
        raise _Bad("one of " + ", ".join(map(str, choices)))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Bad("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Bad("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise _Bad("a finite number")
        raise _Bad("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Bad("a string")
    if origin is tuple:
        return _coerce_tuple(hint, value, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return build_config(hint, value, source=where)
        raise _Bad(f"a table of {hint.__name__} settings")
    return value


def _coerce_tuple(hint: Any, value: Any, where: str) -> tuple:
    args = typing.get_args(hint)
    if not isinstance(value, (list, tuple)):
        raise _Bad("a list")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(args[0], v, where) for v in value)
    if args and len(args) != len(value):
        raise _Bad(f"a list of {len(args)} values")
    return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True)) if args else tuple(value)


def _range_text(bounds: tuple[Any, Any]) -> str:
    lo, hi = bounds
    if lo is None:
        return f"<= {hi}"
    return f">= {lo}" if hi is None else f"in {lo}..{hi}"


def check_value(f: dataclasses.Field, hint: Any, value: Any, source: str) -> Any:
    """``value`` of field ``f`` checked against its type ``hint`` and its ``range`` metadata (and normalised);
    :class:`FacelabError` naming the field, the value and what it must be when it does not fit."""
    bounds = f.metadata.get("range")
    try:
        out = _coerce(hint, value, f"{source} {f.name}")  # a nested config names its own field
    except _Bad as bad:
        kind = bad.kind + (f" {_range_text(bounds)}" if bounds is not None else "")
        raise FacelabError(f"invalid {source}: {f.name} = {value!r} must be {kind}; fix the config file or flag") \
            from None
    if bounds is not None and isinstance(out, (int, float)) and not isinstance(out, bool):
        lo, hi = bounds
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            raise FacelabError(f"invalid {source}: {f.name} = {value!r} must be {_range_text(bounds)}; fix the "
                               "config file or flag")
    if "choices" in f.metadata and isinstance(out, str):
        choices = f.metadata["choices"]
        choices = tuple(choices() if callable(choices) else choices)  # a registry's names are read when asked
        if out not in choices:
            raise FacelabError(f"invalid {source}: {f.name} = {value!r} must be one of {', '.join(map(str, choices))}"
                               "; fix the config file or flag")
    return out


def check_values(cls: type, values: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """``values`` (field name -> value) of dataclass ``cls``, each checked by :func:`check_value`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _hints(cls)
    return {k: check_value(fields[k], hints.get(k, Any), v, source) if k in fields else v
            for k, v in values.items()}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
