"""``train`` (create or resume a swap model; also under torchrun) and ``export --format onnx|dfm``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from facelab.cli.options import config_options, flag_names, pop_flags
from facelab.errors import FacelabError
from facelab.models import MODELS, TRAINING_FREE, arch_class, model_kind
from facelab.models.export import ExportOptions
from facelab.models.store import find_swap_model
from facelab.train.options import TrainOptions
from facelab.utils.config import build_config, load_config_file


def arch_labels() -> dict[type, str]:
    """Each model type's arch dataclass -> its name, in registry order: their fields are the arch flags."""
    labels: dict[type, str] = {}
    for name in MODELS.names():
        labels.setdefault(arch_class(name), name)
    return labels


ARCH_LABELS = arch_labels()
#: The arch flags: the union of every arch dataclass's fields (help and per-model defaults from the fields).
ARCH_FLAGS = flag_names(*ARCH_LABELS)


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
        self.report = None

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
        self.report = progress_callback(self.bar)

    def __call__(self, n: int = 1, **info: Any) -> None:
        if self.report is not None:
            self.report(n, **info)

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
@config_options(*ARCH_LABELS, labels=ARCH_LABELS)
@config_options(TrainOptions)
@click.option("--src-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Source faces [workspace/data_src/aligned].")
@click.option("--dst-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Destination faces [workspace/data_dst/aligned].")
@click.option("--pretraining-data-dir", "pretraining_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Faces both sides train on while --pretrain is on [the src and dst faces].")
@click.option("--pretrained-model", "pretrained", type=click.Path(exists=True, path_type=Path), default=None,
              help="Start a new model from this pretrained model (a model folder or checkpoint; same model type, "
                   "its architecture). Ignored when resuming.")
@click.option("--no-preview", is_flag=True, help="Do not write preview.png / loss.png.")
@click.option("--tensorboard/--no-tensorboard", default=None,
              help="Write losses, iteration time and previews to model/<name>/tensorboard/ [on when installed].")
def train_cmd(model_type: str, name: str | None, workspace: Path, device: str | None, config_file: Path | None,
              src_dir: Path | None, dst_dir: Path | None, pretraining_dir: Path | None, pretrained: Path | None,
              no_preview: bool, tensorboard: bool | None, **flags: Any) -> None:
    """Train (or resume) a swap model on data_src/aligned -> data_dst/aligned; Ctrl-C saves and stops.

    The same command under `torchrun --nproc_per_node N` trains with DistributedDataParallel.
    """
    from facelab.train import distributed as dd
    from facelab.train.loop import train
    from facelab.utils.device import select_device
    from facelab.utils.runtime import keep_freed_memory

    file_train, file_arch = split_config(load_config_file(config_file))
    arch = {**file_arch, **pop_flags(flags, *ARCH_LABELS)}
    opts = build_config(TrainOptions, file_train, flags, source="train option")
    ws = get_workspace(workspace)
    if model_kind(model_type) == TRAINING_FREE:
        _index_cmd(ws, name, model_type, arch, opts, src_dir, dst_dir, no_preview)
        return
    ctx, dev = dd.init_distributed(select_device(device or "auto"))
    if dev.type == "cpu":
        keep_freed_memory()
    reporter = _TrainReporter(opts, quiet=not ctx.is_main)
    tb = None
    from facelab.train.tensorboard import open_tensorboard, tee

    try:
        with dd.main_rank_lock(ws.model(name or model_type), ctx, dev):
            if ctx.is_main:
                tb, hint = open_tensorboard(ws.model(name or model_type), tensorboard)
                if hint:
                    click.echo(hint, err=True)
            result = train(ws, name, model_type, arch, opts, dev, progress=tee(reporter, tb), src_dir=src_dir,
                           dst_dir=dst_dir, preview=not no_preview, ctx=ctx, on_ready=reporter.on_ready,
                           pretraining_dir=pretraining_dir, pretrained=pretrained)
    finally:
        reporter.close()
        if tb is not None:
            tb.close()
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
    from facelab.train.distributed import model_folder_lock
    from facelab.train.loop import train

    with model_folder_lock(ws.model(name or model_type)), progress(None, "index", "face") as bar:
        result = train(ws, name, model_type, arch, opts, torch_cpu(), progress=progress_callback(bar),
                       src_dir=src_dir, dst_dir=dst_dir, preview=not no_preview)
    echo_summary("train", {"model": str(result.model_dir), "stopped by": result.stopped_by,
                           "time": f"{result.seconds:.1f} s", "preview": str(result.model_dir / "preview.png")})


def torch_cpu():
    import torch

    return torch.device("cpu")


@click.command("export")
@click.option("--name", default=None, help="Model folder name under workspace/model/ [the only one there].")
@workspace_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file [workspace/model/<name>/<name>.onnx or .dfm].")
@config_options(ExportOptions)
def export_cmd(name: str | None, workspace: Path, output: Path | None, **flags: Any) -> None:
    """Export the swap predictor (face in; swapped face and masks out), checked against PyTorch.

    --format dfm writes DeepFaceLab's DFM file for DeepFaceLive and FaceFusion's deep swapper.
    """
    from facelab.models.dfm import check_dfm_path, export_dfm
    from facelab.models.export import check_new_file, export_onnx
    from facelab.models.store import load_model

    opts = build_config(ExportOptions, flags, source="export option")
    ws = get_workspace(workspace)
    model_dir = find_swap_model(ws, name)
    output = output or model_dir / f"{model_dir.name}.{opts.format}"
    check_new_file(output, opts.overwrite)  # before loading the model
    if opts.format == "dfm":
        check_dfm_path(output)
    model = load_model(model_dir, "cpu")
    if model.kind == TRAINING_FREE:
        raise FacelabError(f"{model_dir} holds a {model.name} model (an index of source faces, no network); "
                           "export a trained model (saehd, quick96, amp) instead")
    diff = (export_dfm if opts.format == "dfm" else export_onnx)(model, output, opts)
    echo_summary("export", {"model": str(model_dir), "output": str(output), "format": opts.format,
                            "precision": "float16" if opts.fp16 else "float32",
                            "max abs diff vs PyTorch": f"{diff:.2e}"})


COMMANDS = [train_cmd, export_cmd]
