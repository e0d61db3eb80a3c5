"""``mask train|apply|remove``: weakly supervised face masks (landmark hull minus a BAS/SAT occluder map), and
masks from occluder / face-parser model files."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import (
    device_option,
    echo_summary,
    finish_items,
    force_option,
    get_workspace,
    keep_going_option,
    progress,
    progress_callback,
    workspace_option,
)
from facelab.cli.options import config_options
from facelab.masks import MASK_LEARNERS
from facelab.masks.learner import MaskLearnConfig
from facelab.utils.device import select_device
from facelab.utils.lock import stage_folders
from facelab.workspace.faces import list_faces

_SIDE = click.option("--side", type=click.Choice(["src", "dst"]), default="dst", show_default=True)
_METHOD = click.option("--method", type=click.Choice(MASK_LEARNERS.names()), default=MaskLearnConfig.method,
                       show_default=True,
                       help="Occluder learner; " + "; ".join(f"{e.name}: {e.help}" for e in MASK_LEARNERS) + ".")


@click.group("mask")
def mask() -> None:
    """Learn, store and remove face masks (named masks inside the face files)."""


@mask.command("train")
@workspace_option
@_SIDE
@config_options(MaskLearnConfig)
@click.option("--occluded-list", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Text file of face names (one a line) you tagged as occluded, e.g. a hand over the face.")
@device_option
@keep_going_option
def train_cmd(workspace, side, device, occluded_list, keep_going, **flags) -> None:
    """Train an occluder learner on SIDE's aligned faces from free labels (clean vs pasted occluders), plus
    optional yes/no tags of really occluded faces."""
    from facelab.masks.workspace_masks import train_mask_model
    from facelab.train.distributed import MODEL_TEMPS
    from facelab.utils.config import build_config

    ws = get_workspace(workspace)
    cfg = build_config(MaskLearnConfig, flags, source="mask train option")
    with stage_folders("mask train", ws.model(f"mask_{cfg.method}"), temps=MODEL_TEMPS), \
            progress(cfg.steps + cfg.refine_steps, f"mask train {cfg.method}", "step") as bar:
        result = train_mask_model(ws, side, cfg, select_device(device or "auto"), progress_callback(bar),
                                  occluded_list)
    failures = result.pop("failures", ())
    echo_summary(f"mask model ({cfg.method}) trained on data_{side}/aligned", result)
    finish_items("mask train", failures, keep_going)


@mask.command("apply")
@workspace_option
@_SIDE
@_METHOD
@click.option("--source", type=click.Choice(["learner", "occluder", "parser"]), default="learner", show_default=True,
              help="learner: the BAS/SAT learner trained here (--method); occluder / parser: a model file (see "
                   "`models list`).")
@click.option("--model", "model_file", default=None,
              help="Catalogue name or .onnx file for --source occluder|parser [xseg_1 | bisenet_resnet_34].")
@click.option("--regions", default=None, help="Face-parser regions to keep, comma-separated [skin, brows, eyes, "
              "glasses, nose, mouth, lips].")
@click.option("--name", default=None, help="Name of the mask stored in each face file [wsol, occluder or parser].")
@device_option
@force_option
@keep_going_option
def apply_cmd(workspace, side, method, source, model_file, regions, name, device, force, keep_going) -> None:
    """Store a visible-face mask in every face file of SIDE (pixels untouched): the BAS/SAT learner trained with
    `mask train`, or an occluder / face-parser model file (`models fetch xseg_1`, `models fetch bisenet_resnet_34`)."""
    from facelab.masks.workspace_masks import apply_masks

    ws = get_workspace(workspace)
    name = name or {"learner": "wsol"}.get(source, source)
    with stage_folders("mask apply", ws.aligned(side)), \
            progress(len(list_faces(ws.aligned(side))), f"mask apply {name}", "face") as bar:
        dev = select_device(device or "auto")
        if source == "learner":
            result = apply_masks(ws, side, method, name, dev, force, progress_callback(bar))
        else:
            from facelab.masks.onnx_masks import DEFAULT_REGIONS, apply_model_masks

            keep = tuple(r.strip() for r in regions.split(",") if r.strip()) if regions else DEFAULT_REGIONS
            result = apply_model_masks(ws, side, source, name, model_file, keep, str(dev), force,
                                       progress_callback(bar))
    failures = result.pop("failures", ())
    echo_summary(f"mask {name!r} on data_{side}/aligned", result)
    finish_items("mask apply", failures, keep_going)


@mask.command("remove")
@workspace_option
@_SIDE
@click.option("--name", default="wsol", show_default=True)
@keep_going_option
def remove_cmd(workspace, side, name, keep_going) -> None:
    """Remove the named mask from every face file of SIDE."""
    from facelab.masks.workspace_masks import remove_masks

    ws = get_workspace(workspace)
    with stage_folders("mask remove", ws.aligned(side)), \
            progress(len(list_faces(ws.aligned(side))), f"mask remove {name}", "face") as bar:
        result = remove_masks(ws, side, name, progress_callback(bar))
    failures = result.pop("failures", ())
    echo_summary(f"mask {name!r} on data_{side}/aligned", result)
    finish_items("mask remove", failures, keep_going)


COMMANDS = [mask]
