"""``merge``: swap every destination face back into its frame; ``merge preview``: a labelled grid of settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from facelab.cli.common import (
    config_option,
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
from facelab.cli.options import config_options, pop_flags
from facelab.merge.config import MergeConfig
from facelab.utils.lock import stage_folders

_PATH_DIR = click.Path(file_okay=False, path_type=Path)

#: One flag per MergeConfig field (default None: only a given flag overrides the config file).
setting_options = config_options(MergeConfig)


def _common(func: Callable) -> Callable:
    for opt in reversed([
        workspace_option, config_option, device_option,
        click.option("--name", default=None, help="Model folder under workspace/model/ [the only trained one]."),
        click.option("--model-dir", type=_PATH_DIR, default=None, help="Model folder (overrides --name)."),
        click.option("--input", "frames_dir", type=_PATH_DIR, default=None, help="Frames [data_dst]."),
        click.option("--aligned", "aligned_dir", type=_PATH_DIR, default=None, help="Face files [data_dst/aligned]."),
    ]):
        func = opt(func)
    return setting_options(func)


def _prepare(kw: dict[str, Any]):
    from facelab.merge.config import settings_from_file
    from facelab.models.store import find_swap_model
    from facelab.utils.device import select_device

    flags = pop_flags(kw, MergeConfig)
    ws = get_workspace(kw.pop("workspace"))
    settings = settings_from_file(kw.pop("config_file"), flags)
    device = select_device(kw.pop("device") or "auto")
    modes = {settings.base.mode, *(r.overrides.get("mode", settings.base.mode) for r in settings.ranges)}
    name = kw.pop("name")
    model_dir = kw.pop("model_dir") or (find_swap_model(ws, name) if modes != {"original"} else None)
    return ws, settings, device, model_dir


@click.group("merge", invoke_without_command=True)
@_common
@force_option
@keep_going_option
@click.option("--output", "merged_dir", type=_PATH_DIR, default=None, help="Merged frames [data_dst/merged].")
@click.option("--output-mask", "mask_dir", type=_PATH_DIR, default=None, help="Masks [data_dst/merged_mask].")
@click.pass_context
def merge_cmd(ctx: click.Context, **kw: Any) -> None:
    """Merge the trained model's faces into the destination frames (flags override --config)."""
    if ctx.invoked_subcommand is not None:
        return
    from facelab.merge.predict import IdentityPredictor
    from facelab.merge.stage import MergePaths, merge_frames

    force, merged_dir, mask_dir = kw.pop("force"), kw.pop("merged_dir"), kw.pop("mask_dir")
    keep_going = kw.pop("keep_going")
    frames_dir, aligned_dir = kw.pop("frames_dir"), kw.pop("aligned_dir")
    ws, settings, device, model_dir = _prepare(kw)
    paths = MergePaths.of(ws, frames_dir, aligned_dir, merged_dir, mask_dir)
    predictor = IdentityPredictor(256, "whole_face") if model_dir is None else None
    with stage_folders("merge", paths.merged, paths.merged_mask), progress(None, "merge", unit="frame") as bar:
        result = merge_frames(ws, model_dir, settings, device, force=force, progress=progress_callback(bar),
                              predictor=predictor, paths=paths)
    echo_summary(f"merged into {paths.merged}", result.summary())
    finish_items("merge", result.failures, keep_going)


@merge_cmd.command("preview")
@_common
@click.option("--frames", "frames_text", required=True, help="Frame numbers, e.g. 10,50,90.")
@click.option("--vary", "varies", multiple=True, help="name=v1,v2 (repeatable); columns are all combinations.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("merge_preview.png"),
              show_default=True, help="Grid PNG to write.")
@click.option("--cell-width", type=click.IntRange(64, 2048), default=360, show_default=True, help="Pixels per cell.")
def preview_cmd(frames_text: str, varies: tuple[str, ...], out_path: Path, cell_width: int, **kw: Any) -> None:
    """Render chosen frames under combinations of settings into one labelled grid PNG."""
    from facelab.merge.config import parse_frames
    from facelab.merge.predict import IdentityPredictor
    from facelab.merge.preview import parse_vary, render_preview
    from facelab.merge.stage import MergePaths
    from facelab.workspace import write_image

    frames_dir, aligned_dir = kw.pop("frames_dir"), kw.pop("aligned_dir")
    numbers = []
    for part in frames_text.split(","):
        if part.strip():
            first, last = parse_frames(part.strip(), "--frames")
            numbers.extend(range(first, last + 1))
    ws, settings, device, model_dir = _prepare(kw)
    parsed = [parse_vary(v) for v in varies]
    if model_dir is None and any(k == "mode" and any(m != "original" for m in v) for k, v in parsed):
        from facelab.models.store import find_swap_model

        model_dir = find_swap_model(ws, None)
    predictor = IdentityPredictor(256, "whole_face") if model_dir is None else None
    grid = render_preview(ws, model_dir, settings, numbers, parsed, device, predictor=predictor,
                          paths=MergePaths.of(ws, frames_dir, aligned_dir), cell_width=cell_width)
    write_image(out_path, grid)
    click.echo(f"wrote {out_path} ({grid.shape[1]}x{grid.shape[0]}, {len(numbers)} rows)")


COMMANDS = [merge_cmd]
