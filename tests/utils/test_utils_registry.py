"""The generic registry: registration order, help lines, duplicate and unknown names."""

from __future__ import annotations

import pytest

from facelab.errors import FacelabError
from facelab.utils.registry import Registry


def _registry() -> Registry[str]:
    reg: Registry[str] = Registry("colour transfer")

    @reg.register("rct", "Reinhard colour transfer")
    def rct(x: str) -> str:
        return f"rct:{x}"

    @reg.register("lct")
    def lct(x: str) -> str:
        """Linear colour transfer.

        More text that is not the help line."""
        return f"lct:{x}"

    @reg.register("none")
    def none(x: str) -> str:
        return x

    return reg


def test_register_create_and_names_in_registration_order():
    reg = _registry()
    assert reg.names() == ["rct", "lct", "none"] and len(reg) == 3
    assert reg.create("lct", "img") == "lct:img" and reg.create("rct", x="a") == "rct:a"
    assert "rct" in reg and "mkl" not in reg
    assert reg.get("none").name == "none"


def test_help_lines_from_the_argument_or_the_docstring():
    assert [(e.name, e.help) for e in _registry()] == [
        ("rct", "Reinhard colour transfer"), ("lct", "Linear colour transfer."), ("none", "")]


def test_a_name_registered_twice_is_an_error():
    reg = _registry()
    with pytest.raises(ValueError, match="colour transfer 'rct' is registered twice"):
        reg.register("rct")(lambda x: x)
    assert reg.names() == ["rct", "lct", "none"]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(FacelabError, match="unknown colour transfer 'mkl'; choose one of: rct, lct, none"):
        _registry().create("mkl", "img")
