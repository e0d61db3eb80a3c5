"""The mask learners (learned mask sources) are listed by their registry and nothing else."""

from __future__ import annotations

import click
import pytest

from facelab.masks import MASK_LEARNERS, MASK_SOURCES
from facelab.masks.learner import MaskLearnConfig, create_learner, sat_backbone_names
from facelab.wsol.models import BasNet, SatNet
from facelab.wsol.sat_conv import CONV_SAT_BACKBONES, ConvSatNet
from facelab.wsol.vit import SAT_BACKBONES


def _choices(command: click.Command, name: str) -> list[str]:
    option = next(p for p in command.params if p.name == name)
    assert isinstance(option.type, click.Choice)
    return list(option.type.choices)


def test_cli_method_choices_are_the_registry_names():
    from facelab.cli.mask import mask

    assert MASK_LEARNERS.names() == ["bas", "sat"] and MASK_SOURCES.names() == ["hull"]
    for name in ("train", "apply"):
        assert _choices(mask.commands[name], "method") == MASK_LEARNERS.names()
    help_text = next(p for p in mask.commands["train"].params if p.name == "method").help
    assert all(e.help in help_text for e in MASK_LEARNERS)


def test_config_checks_against_the_registries():
    assert isinstance(create_learner(MaskLearnConfig(method="bas")), BasNet)
    assert isinstance(create_learner(MaskLearnConfig(method="sat")), ConvSatNet)  # the default: a CNN stem
    deit = create_learner(MaskLearnConfig(method="sat", sat_backbone="deit_tiny"))
    assert isinstance(deit, SatNet) and deit.backbone.spec.dim == 192
    assert sat_backbone_names() == CONV_SAT_BACKBONES.names() + SAT_BACKBONES.names()
    with pytest.raises(ValueError, match="method must be one of bas, sat, not 'cam'"):
        MaskLearnConfig(method="cam")
    with pytest.raises(ValueError, match=f"sat_backbone must be one of {', '.join(sat_backbone_names())}"):
        MaskLearnConfig(method="sat", sat_backbone="tiny")
