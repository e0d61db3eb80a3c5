"""``wsol train|eval|make-toy``: BAS and SAT as stand-alone localisers on CUB-format folders."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facelab.cli.common import config_option, device_option, echo_summary, force_option, progress, progress_callback
from facelab.cli.options import config_options, pop_flags
from facelab.errors import FacelabError
from facelab.utils.config import build_config, load_config_file
from facelab.utils.device import select_device
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import DEFAULT_BACKBONE, METHODS, WsolArch
from facelab.wsol.protocol import EvalProtocol
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
    from facelab.wsol.trainer import resolve_train, train_wsol

    cfg = train_settings(load_config_file(config_file), flags)
    records = load_split(data, "train")
    arch_flags = pop_flags(flags, WsolArch)
    method = arch_flags.get("method", WsolArch().method)
    arch = build_config(WsolArch, {"backbone": DEFAULT_BACKBONE[method]}, arch_flags,
                        {"num_classes": max((r.label for r in records), default=0) + 1}, source="wsol model")
    full = resolve_train(cfg, arch)
    steps = full.epochs * max(1, len(records) // full.batch_size)
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
@config_options(EvalProtocol)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the metrics, the protocol and the run's arch to this JSON file.")
@device_option
def eval_cmd(data, out, method, split, json_path, device, **flags) -> None:
    """Print the localisation metrics of a trained model, each saying which protocol it follows."""
    from facelab.wsol.data import load_split
    from facelab.wsol.metrics import format_table
    from facelab.wsol.protocol import evaluate_protocol, resolve_protocol
    from facelab.wsol.recipes import parse_thresholds
    from facelab.wsol.trainer import load_wsol

    dev = select_device(device or "auto")
    model, arch, cfg, _ = load_wsol(out, dev)
    if method is not None and method != arch.method:
        raise FacelabError(f"{out} holds a {arch.method} model, not {method}; drop --method or pick its folder")
    proto, text = resolve_protocol(build_config(EvalProtocol, pop_flags(flags, EvalProtocol), source="wsol eval"),
                                   arch.method, arch.backbone, cfg.recipe)
    train = load_split(data, "train") if parse_thresholds(proto.thresholds or "") == () else None
    records = load_split(data, split)
    with progress(len(records), f"wsol eval {arch.method}", "img") as bar:
        metrics = evaluate_protocol(model, records, cfg.input_size, dev, proto, cfg.crop_ratio, train,
                                    progress_callback(bar))
    click.echo(f"{arch.method}/{arch.backbone} on {data} ({split})")
    click.echo(format_table(metrics, text))
    if json_path is not None:
        doc = {"method": arch.method, "backbone": arch.backbone, "split": split, "protocol": text,
               "recipe": proto.recipe, "metrics": metrics}
        json_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


@wsol.command("table")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def table_cmd(results) -> None:
    """Print results written by `wsol eval --json` beside the papers' published CUB numbers."""
    from facelab.wsol.published import compare_table

    docs = []
    for path in results:
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise FacelabError(f"cannot read results {path}: {exc}") from exc
    click.echo(compare_table(docs))


@wsol.command("reproduce")
@_DATA
@click.option("--pretrained-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of the ImageNet weight files the official code loads: vgg16.pth, "
                   "resnet50-19c8e357.pth, inception_v3_google-1a9a5a14.pth, mobilenet_v1_with_relu_69_5.pth, "
                   "deit_tiny_patch16_224-a1311bcf.pth, deit_small_patch16_224-cd65a155.pth.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/wsol_cub"),
              show_default=True, help="Folder of the runs (one model folder each; a stopped run resumes).")
@click.option("--only", default=None, help="Comma-separated runs to do, e.g. bas:vgg16,sat:deit_small [all].")
@config_options(WsolTrainConfig)
@config_option
@device_option
def reproduce_cmd(data, pretrained_dir, out, only, config_file, device, **flags) -> None:
    """Train and evaluate BAS (VGG16, ResNet50, InceptionV3, MobileNetV1) and SAT (DeiT-Tiny, DeiT-Small) under
    their papers' CUB recipes and protocols; print the results beside the published numbers. Settings given here
    (e.g. --epochs) replace the recipe's for every run."""
    from facelab.wsol.published import compare_table
    from facelab.wsol.reproduce import PAPER_RUNS, reproduce

    runs = PAPER_RUNS
    if only:
        wanted = {tuple(item.split(":", 1)) for item in only.split(",") if item.strip()}
        runs = tuple(r for r in PAPER_RUNS if (r[0], r[1]) in wanted)
        if len(runs) != len(wanted):
            known = ",".join(f"{m}:{b}" for m, b, _ in PAPER_RUNS)
            raise FacelabError(f"--only {only!r} names runs that do not exist; known: {known}")
    cfg = train_settings(load_config_file(config_file), flags)
    with progress(None, "wsol reproduce", "step") as bar:
        results = reproduce(data, pretrained_dir, out, cfg, select_device(device or "auto"), runs,
                            progress_callback(bar))
    click.echo(compare_table(results))


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
