"""``train`` (create or resume a swap model; also under torchrun) and ``export --format onnx``."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable

import click

from facelab.cli.common import (
    config_option,
    device_option,
    echo_summary,
    get_workspace,
    progress,
    progress_callback,
    workspace_option,
)
from facelab.errors import FacelabError
from facelab.models import MODELS, TRAINING_FREE, model_kind
from facelab.models.store import find_swap_model
from facelab.train.options import TrainOptions
from facelab.utils.config import build_config, load_config_file

ARCH_FLAGS = ("resolution", "face_type", "archi", "ae_dims", "e_dims", "d_dims", "d_mask_dims", "inter_dims")

#: One line of help per TrainOptions field (the flag is the field name with dashes).
OPTION_HELP = {
    "batch_size": "Batch size (per process under torchrun) [8].",
    "lr": "Learning rate [5e-5].",
    "optimizer": "Optimizer [adabelief].",
    "lr_dropout": "Learning-rate dropout: n, y, or cpu [n].",
    "clipgrad": "Clip gradients to global norm 1.0.",
    "random_warp": "Random warp of the inputs [on].",
    "random_src_flip": "Random horizontal flip of src faces [off].",
    "random_dst_flip": "Random horizontal flip of dst faces [on].",
    "masked_training": "Restrict losses to the (blurred) face mask [on].",
    "eyes_mouth_prio": "Extra weight on eyes and mouth [off].",
    "uniform_yaw": "Sample src faces uniformly over yaw [off].",
    "blur_out_mask": "Blur the background outside the mask in targets [off].",
    "random_hsv_power": "Random HSV shift of src inputs, 0-0.3 [0].",
    "ct_mode": "Colour transfer of src samples toward dst [none].",
    "gan_power": "GAN power, 0-5 (typ. 0.1) [0].",
    "gan_patch_size": "GAN patch size; 0 = resolution/8 [0].",
    "gan_dims": "GAN discriminator dims [16].",
    "true_face_power": "True-face power, df only (typ. 0.01) [0].",
    "face_style_power": "Face style power [0].",
    "bg_style_power": "Background style power [0].",
    "morph_factor": "AMP morph factor, 0.1-0.5 [0.5].",
    "pretrain": "Pretraining mode (forces DeepFaceLab's pretrain settings).",
    "mixed_precision": "Mixed precision on CUDA [on].",
    "target_iter": "Stop (and save) at this iteration; 0 = never [0].",
    "autosave_minutes": "Save every this many minutes [25].",
    "max_minutes": "Stop (and save) after this many minutes of training; 0 = no limit [0].",
    "backups": "Numbered checkpoint backups to keep [3].",
    "preview_history": "Also keep previews/<iter>.png at every save.",
    "seed": "Random seed [0].",
    "workers": "Data loader processes; -1 = automatic, 0 = in the training process [-1].",
    "holdout": "Share of source faces (in blocks of frames) kept out of training for evaluate's held-out "
               "score; fixed when the model is created [0.05].",
}
ARCH_HELP = {
    "resolution": "Face resolution (multiple of 16; 32 with -d). Fixed at creation.",
    "face_type": "Face type: h, mf, f, wf, head (or half, mid_full, full, whole_face). Fixed at creation.",
    "archi": "SAEHD archi: df or liae with any of -u -d -t, e.g. liae-ud. Fixed at creation.",
    "ae_dims": "Autoencoder dims. Fixed at creation.",
    "e_dims": "Encoder dims. Fixed at creation.",
    "d_dims": "Decoder dims. Fixed at creation.",
    "d_mask_dims": "Mask decoder dims. Fixed at creation.",
    "inter_dims": "AMP inter dims. Fixed at creation.",
}
ARCH_TYPES: dict[str, type] = {"resolution": int, "face_type": str, "archi": str, "ae_dims": int, "e_dims": int,
                               "d_dims": int, "d_mask_dims": int, "inter_dims": int}


def _option_for_field(name: str, hint: Any) -> Callable:
    flag = "--" + name.replace("_", "-")
    help_text = OPTION_HELP.get(name, "")
    if hint is bool:
        return click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)
    if typing.get_origin(hint) is typing.Literal:
        return click.option(flag, name, type=click.Choice(typing.get_args(hint)), default=None, help=help_text)
    return click.option(flag, name, type=hint, default=None, help=help_text)


def train_option_flags(func: Callable) -> Callable:
    """Decorate ``func`` with one flag per TrainOptions field (default None: never overrides a config file)."""
    hints = typing.get_type_hints(TrainOptions)
    for f in reversed(dataclasses.fields(TrainOptions)):
        func = _option_for_field(f.name, hints[f.name])(func)
    return func


def arch_flags(func: Callable) -> Callable:
    for name in reversed(ARCH_FLAGS):
        func = click.option("--" + name.replace("_", "-"), name, type=ARCH_TYPES[name], default=None,
                            help=ARCH_HELP[name])(func)
    return func


def split_config(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file holds ``[train]`` and ``[arch]`` tables, or train options at its top level."""
    if "train" in data or "arch" in data:
        unknown = sorted(set(data) - {"train", "arch"})
        if unknown:
            raise FacelabError(f"config file: unknown table(s) {', '.join(unknown)}; use [train] and [arch]")
        return dict(data.get("train") or {}), dict(data.get("arch") or {})
    return dict(data), {}


class _TrainReporter:
    """The tqdm bar and messages of a train run (rank 0 only)."""

    def __init__(self, opts: TrainOptions, quiet: bool) -> None:
        self.opts = opts
        self.quiet = quiet
        self.bar = None

    def on_ready(self, model, run) -> None:
        if self.quiet:
            return
        from facelab.models import describe

        if run.created:
            desc = {k: f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else v
                    for k, v in describe(model, self.opts.knobs(), self.opts.batch_size).items()}
            echo_summary(f"new {model.name} model in {run.model_dir}", desc)
        else:
            click.echo(f"resuming {model.name} model in {run.model_dir} at iteration {run.iteration}")
        total = self.opts.target_iter or None
        self.bar = progress(total, desc="train", unit="it")
        self.bar.update(min(run.iteration, total) if total else run.iteration)

    def __call__(self, n: int = 1, **info) -> None:
        if self.bar is not None:
            self.bar.set_postfix(info, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("train")
@click.option("--model", "model_type", type=click.Choice(MODELS.names()), default="saehd", show_default=True,
              help="Model type (taken from the checkpoint when resuming).")
@click.option("--name", default=None, help="Model folder name under workspace/model/ [the model type].")
@workspace_option
@device_option
@config_option
@arch_flags
@train_option_flags
@click.option("--src-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Source faces [workspace/data_src/aligned].")
@click.option("--dst-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Destination faces [workspace/data_dst/aligned].")
@click.option("--no-preview", is_flag=True, help="Do not write preview.png / loss.png.")
def train_cmd(model_type: str, name: str | None, workspace: Path, device: str | None, config_file: Path | None,
              src_dir: Path | None, dst_dir: Path | None, no_preview: bool, **flags: Any) -> None:
    """Train (or resume) a swap model on data_src/aligned -> data_dst/aligned; Ctrl-C saves and stops.

    The same command under `torchrun --nproc_per_node N` trains with DistributedDataParallel.
    """
    from facelab.train import distributed as dd
    from facelab.train.loop import train
    from facelab.utils.device import select_device
    from facelab.utils.runtime import keep_freed_memory

    file_train, file_arch = split_config(load_config_file(config_file))
    arch = {**file_arch, **{k: flags.pop(k) for k in ARCH_FLAGS if flags.get(k) is not None}}
    for k in ARCH_FLAGS:
        flags.pop(k, None)
    opts = build_config(TrainOptions, file_train, flags, source="train option")
    ws = get_workspace(workspace)
    if model_kind(model_type) == TRAINING_FREE:
        _index_cmd(ws, name, model_type, arch, opts, src_dir, dst_dir, no_preview)
        return
    ctx, dev = dd.init_distributed(select_device(device or "auto"))
    if dev.type == "cpu":
        keep_freed_memory()
    reporter = _TrainReporter(opts, quiet=not ctx.is_main)
    try:
        result = train(ws, name, model_type, arch, opts, dev, progress=reporter, src_dir=src_dir, dst_dir=dst_dir,
                       preview=not no_preview, ctx=ctx, on_ready=reporter.on_ready)
    finally:
        reporter.close()
        dd.shutdown(ctx)
    if ctx.is_main:
        echo_summary("train", {
            "model": str(result.model_dir), "stopped by": result.stopped_by,
            "iterations": f"{result.start_iteration} -> {result.iteration}",
            "time": f"{result.seconds:.1f} s", "ms/iter": f"{result.ms_per_iter:.0f}",
            "src loss": f"{result.src_loss:.4f}", "dst loss": f"{result.dst_loss:.4f}",
            "skipped steps": result.skipped_steps, "rollbacks": result.rollbacks, "saves": result.saves,
        })


def _index_cmd(ws, name: str | None, model_type: str, arch: dict[str, Any], opts: TrainOptions,
               src_dir: Path | None, dst_dir: Path | None, no_preview: bool) -> None:
    """``train`` of a training-free model: index the source faces."""
    from facelab.train.loop import train

    with progress(None, "index", "face") as bar:
        result = train(ws, name, model_type, arch, opts, torch_cpu(), progress=progress_callback(bar),
                       src_dir=src_dir, dst_dir=dst_dir, preview=not no_preview)
    echo_summary("train", {"model": str(result.model_dir), "stopped by": result.stopped_by,
                           "time": f"{result.seconds:.1f} s", "preview": str(result.model_dir / "preview.png")})


def torch_cpu():
    import torch

    return torch.device("cpu")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("--name", default=None, help="Model folder name under workspace/model/ [the only one there].")
@workspace_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file [workspace/model/<name>/<name>.onnx].")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def export_cmd(fmt: str, name: str | None, workspace: Path, output: Path | None, opset: int) -> None:
    """Export the swap predictor (face in; swapped face and masks out), checked against PyTorch."""
    from facelab.models.export import export_onnx
    from facelab.models.store import load_model

    ws = get_workspace(workspace)
    model_dir = find_swap_model(ws, name)
    model = load_model(model_dir, "cpu")
    output = output or model_dir / f"{model_dir.name}.{fmt}"
    diff = export_onnx(model, output, opset=opset)
    echo_summary("export", {"model": str(model_dir), "output": str(output), "format": fmt,
                            "max abs diff vs PyTorch": f"{diff:.2e}"})


COMMANDS = [train_cmd, export_cmd]
