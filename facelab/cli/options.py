"""Click options generated from dataclass fields: the one place a config field becomes a flag.

The flag is the field's name with dashes, its type comes from the annotation (``bool`` -> ``--x/--no-x``,
``Literal`` -> a choice, else int / float / str), its default is None (an unset flag never overrides a config
file) and its help is the field's ``metadata["help"]`` with the field's default shown. Metadata keys:

``help``          one line of help (every flag needs one), or a callable returning it (made from a registry)
``choices``       allowed values: a sequence, or a callable returning one (a registry's ``names``)
``range``         ``(lo, hi)`` inclusive bounds of a number (None: open)
``flag``          the flag's name when it is not the field's (``image_format`` -> ``--format``)
``cli``           False: no flag (set by a config file or by the command itself)
``default_text``  what ``[default: ...]`` shows instead of the field's own default
``path``          True: the value is the path of an existing file
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_CLICK_TYPES: dict[type, Any] = {int: click.INT, float: click.FLOAT, str: click.STRING}
MAX_LISTED_CHOICES = 12  # a longer choice list is left to the help text and the error message


@dataclass(frozen=True)
class FlagSpec:
    """One generated flag: the parameter ``name`` (a field name), its ``flag`` and click ``type``, its help."""

    name: str
    flag: str
    hint: Any
    help: str
    metadata: Mapping[str, Any]

    @property
    def is_bool(self) -> bool:
        return self.hint is bool

    def click_type(self) -> Any:
        """The click parameter type: a Choice, a bounded number, a file path or the plain type."""
        meta = self.metadata
        if "choices" in meta:
            return click.Choice([str(c) for c in resolve_choices(meta["choices"])])
        if typing.get_origin(self.hint) is typing.Literal:
            return click.Choice([str(c) for c in typing.get_args(self.hint)])
        if meta.get("path"):
            return click.Path(exists=True, dir_okay=False)
        if "range" in meta and self.hint in (int, float):
            lo, hi = meta["range"]
            return (click.IntRange if self.hint is int else click.FloatRange)(lo, hi)
        if self.hint not in _CLICK_TYPES:
            raise TypeError(f"field {self.name!r} ({self.hint}) cannot be a flag; give it choices or cli=False")
        return _CLICK_TYPES[self.hint]

    def decorator(self) -> Callable[[F], F]:
        """The ``click.option`` of this flag (default None)."""
        if self.is_bool:
            return click.option(f"--{self.flag}/--no-{self.flag}", self.name, default=None, help=self.help)
        kind = self.click_type()
        long_list = isinstance(kind, click.Choice) and len(kind.choices) > MAX_LISTED_CHOICES
        return click.option(f"--{self.flag}", self.name, type=kind, default=None, help=self.help,
                            metavar="NAME" if long_list else None)


def resolve_choices(choices: Sequence[Any] | Callable[[], Sequence[Any]]) -> tuple[Any, ...]:
    """A ``choices`` metadata value as a tuple (callables, e.g. a registry's ``names``, are called now)."""
    return tuple(choices() if callable(choices) else choices)


def help_text(f: dataclasses.Field) -> str:
    """The field's ``metadata["help"]`` (called when it is a callable); empty when it has none."""
    text = f.metadata.get("help", "")
    return str(text() if callable(text) else text)


def is_flag_field(f: dataclasses.Field) -> bool:
    """Whether field ``f`` becomes a flag (every field does unless its metadata says ``cli: False``)."""
    return f.metadata.get("cli", True) is not False


def show_value(value: Any) -> str:
    """A default as the help shows it: bools as on / off, others as written."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def field_help(f: dataclasses.Field, defaults: Mapping[str, Any] | None = None) -> str:
    """``metadata["help"]`` plus ``[default: ...]``: the field's default, its ``default_text``, or, given
    ``defaults`` (label -> default, for a field several classes share), ``label value`` pairs."""
    text = help_text(f)  # a field without help still gets its flag; tests/cli/test_cli_options.py asks for one
    if "default_text" in f.metadata:
        shown = str(f.metadata["default_text"])
    elif defaults is not None:
        shown = ", ".join(f"{label} {show_value(v)}" for label, v in defaults.items())
    else:
        shown = "" if _default(f) is None else show_value(_default(f))
    return " ".join(part for part in (text, f"[default: {shown}]" if shown else "") if part)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _hint(cls: type, name: str) -> Any:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]  # Optional[X] -> X
    return hint


def flag_specs(*classes: type, labels: Mapping[type, str] | None = None) -> list[FlagSpec]:
    """One :class:`FlagSpec` per flag field of ``classes``, in field order; a field several classes share is
    one flag (same type required; the help is the first class's). With ``labels`` (class -> name) the help shows
    each class's default, e.g. ``[default: saehd 128, amp 224]``."""
    seen: dict[str, tuple[dataclasses.Field, Any, dict[str, Any]]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not is_flag_field(f):
                continue
            hint = _hint(cls, f.name)
            if f.name not in seen:
                seen[f.name] = (f, hint, {})
            first, first_hint, _ = seen[f.name]
            if first_hint != hint:
                raise TypeError(f"field {f.name!r} of {cls.__name__} has another type than an earlier one")
            if labels is not None:
                seen[f.name][2][labels[cls]] = _default(f)
    return [FlagSpec(f.name, f.metadata.get("flag", f.name.replace("_", "-")), hint,
                     field_help(f, defaults if labels is not None else None), f.metadata)
            for f, hint, defaults in seen.values()]


def config_options(*classes: type, labels: Mapping[type, str] | None = None) -> Callable[[F], F]:
    """Decorate a click command with one option per flag field of ``classes`` (see :func:`flag_specs`)."""
    specs = flag_specs(*classes, labels=labels)

    def decorate(func: F) -> F:
        for spec in reversed(specs):
            func = spec.decorator()(func)
        return func

    return decorate


def flag_names(*classes: type) -> tuple[str, ...]:
    """The parameter names of the flags :func:`config_options` adds for ``classes``."""
    return tuple(dict.fromkeys(f.name for cls in classes for f in dataclasses.fields(cls) if is_flag_field(f)))


def pop_flags(kw: dict[str, Any], *classes: type) -> dict[str, Any]:
    """Remove the generated flags of ``classes`` from a command's keyword arguments; the given ones (not None)."""
    popped = {name: kw.pop(name) for name in flag_names(*classes) if name in kw}
    return {k: v for k, v in popped.items() if v is not None}
