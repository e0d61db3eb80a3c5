"""The BAS and SAT backbones (and so the methods) are listed by their registries and nothing else."""

from __future__ import annotations

import click
import pytest

from facelab.wsol import BACKBONES, BAS_BACKBONES, METHODS, SAT_BACKBONES, VIT_SPECS, WsolArch


def _option(command: click.Command, name: str) -> click.Option:
    return next(p for p in command.params if p.name == name)


def test_cli_choices_are_the_registry_names():
    from facelab.cli.wsol import wsol

    train, evaluate = wsol.commands["train"], wsol.commands["eval"]
    assert list(METHODS) == list(BACKBONES) == ["bas", "sat"]
    assert list(_option(train, "method").type.choices) == list(METHODS)
    assert list(_option(evaluate, "method").type.choices) == list(METHODS)
    assert list(_option(train, "backbone").type.choices) == BAS_BACKBONES.names() + SAT_BACKBONES.names()
    help_text = _option(train, "backbone").help
    assert f"bas: {'|'.join(BAS_BACKBONES.names())}" in help_text
    assert f"sat: {'|'.join(SAT_BACKBONES.names())}" in help_text


def test_registries_hold_every_backbone():
    assert BAS_BACKBONES.names() == ["tiny", "vgg16", "resnet50", "mobilenetv1", "inceptionv3"]
    assert SAT_BACKBONES.names() == ["deit_tiny", "deit_small", "vit_tiny_scratch"]
    assert list(VIT_SPECS) == SAT_BACKBONES.names()  # a read-only view of the registry
    assert all(VIT_SPECS[e.name] == e.factory() for e in SAT_BACKBONES)
    assert all(e.help for e in BAS_BACKBONES) and all(e.help for e in SAT_BACKBONES)


def test_arch_checks_the_backbone_against_its_method_registry():
    for method, registry in BACKBONES.items():
        for name in registry.names():
            assert WsolArch(method, name).backbone == name
    with pytest.raises(ValueError, match=r"backbone 'deit_tiny' is not one of \['tiny', 'vgg16'"):
        WsolArch("bas", "deit_tiny")
    with pytest.raises(ValueError, match="backbone 'tiny' is not one of"):
        WsolArch("sat", "tiny")
