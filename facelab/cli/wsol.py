"""``wsol train|eval|make-toy``: BAS and SAT as stand-alone localisers on CUB-format folders."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import config_option, device_option, echo_summary, force_option, progress, progress_callback
from facelab.cli.options import config_options, pop_flags
from facelab.errors import FacelabError
from facelab.utils.config import build_config, load_config_file
from facelab.utils.device import select_device
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import DEFAULT_BACKBONE, METHODS, WsolArch
from facelab.wsol.trainer import WsolTrainConfig

_DATA = click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                     help="CUB_200_2011 folder (images.txt ...) or a folder of <split>_list.txt files.")
_OUT = click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                    help="Model folder (config.json, ckpt_last.pt).")


@click.group("wsol")
def wsol() -> None:
    """Weakly supervised object localisation (BAS, SAT) on CUB-format data."""


def train_settings(file: dict, flags: dict) -> WsolTrainConfig:
    """The run's train config: defaults < config file (its ``weights`` table too) < flags (loss weights included)."""
    weights = {**file.get("weights", {}), **pop_flags(flags, LossWeights)}
    layers = {**file, **pop_flags(flags, WsolTrainConfig), "weights": build_config(LossWeights, weights,
                                                                                   source="wsol loss weight")}
    return build_config(WsolTrainConfig, layers, source="wsol train option")


@wsol.command("train")
@_DATA
@_OUT
@config_options(WsolArch, WsolTrainConfig, LossWeights)
@click.option("--pretrained", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Local ImageNet state dict (torchvision / timm / DeiT file) for the backbone.")
@config_option
@device_option
@force_option
def train_cmd(data, out, pretrained, config_file, device, force, **flags) -> None:
    """Train BAS or SAT on the train split; resumes from OUT/ckpt_last.pt unless --force."""
    from facelab.wsol.data import load_split
    from facelab.wsol.trainer import train_wsol

    cfg = train_settings(load_config_file(config_file), flags)
    records = load_split(data, "train")
    arch_flags = pop_flags(flags, WsolArch)
    method = arch_flags.get("method", WsolArch().method)
    arch = build_config(WsolArch, {"backbone": DEFAULT_BACKBONE[method]}, arch_flags,
                        {"num_classes": max((r.label for r in records), default=0) + 1}, source="wsol model")
    steps = cfg.epochs * max(1, len(records) // cfg.batch_size)
    with progress(steps, f"wsol train {method}", "step") as bar:
        result = train_wsol(data, out, arch, cfg, select_device(device or "auto"), pretrained, force,
                            progress_callback(bar), records=records)
    echo_summary(f"trained {arch.method}/{arch.backbone} -> {out}", {k: (f"{v:.4f}" if isinstance(v, float) else v)
                                                                    for k, v in result.items()})


@wsol.command("eval")
@_DATA
@_OUT
@click.option("--method", type=click.Choice(list(METHODS)), default=None,
              help="Expected method (the model folder records it; a mismatch is an error).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--threshold", "tau", type=float, default=None, help="CAM threshold for Top-1/5 and GT-known "
              "[picked on the train split when not given].")
@click.option("--topk", type=int, default=None, help="BAS: mean of the top-k class maps [all classes].")
@device_option
def eval_cmd(data, out, method, split, tau, topk, device) -> None:
    """Print the papers' localisation metrics (Top-1/Top-5/GT-known Loc, MaxBoxAccV2) of a trained model."""
    from facelab.wsol.data import load_split
    from facelab.wsol.metrics import format_table
    from facelab.wsol.trainer import evaluate, load_wsol, pick_threshold

    dev = select_device(device or "auto")
    model, arch, cfg, _ = load_wsol(out, dev)
    if method is not None and method != arch.method:
        raise FacelabError(f"{out} holds a {arch.method} model, not {method}; drop --method or pick its folder")
    if tau is None:
        tau = pick_threshold(model, load_split(data, "train"), cfg.input_size, dev, topk)
        click.echo(f"threshold {tau} (best GT-known Loc on the train split)")
    records = load_split(data, split)
    with progress(len(records), f"wsol eval {arch.method}", "img") as bar:
        metrics = evaluate(model, records, cfg.input_size, dev, tau, topk, crop_ratio=cfg.crop_ratio,
                           progress=progress_callback(bar))
    click.echo(f"{arch.method}/{arch.backbone} on {data} ({split}), threshold {tau}")
    click.echo(format_table(metrics))


@wsol.command("make-toy")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", type=int, default=6, show_default=True)
@click.option("--per-class", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def make_toy_cmd(folder, classes, per_class, seed) -> None:
    """Write a toy CUB-format dataset (coloured shapes on clutter with exact boxes)."""
    from facelab.wsol.data import make_toy_cub

    recs = make_toy_cub(folder, classes, per_class, seed=seed)
    click.echo(f"wrote {len(recs)} images in {classes} classes to {folder}")


COMMANDS = [wsol]
