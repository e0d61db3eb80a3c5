"""``evaluate``: how good is the swap (identity, expression, pose, sharpness, structure, stability), beside the
workspace's other swaps and the training-free one."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import (
    config_option,
    device_option,
    echo_summary,
    finish_items,
    get_workspace,
    keep_going_option,
    progress,
    progress_callback,
)
from facelab.evaluate.report import EvaluateConfig, check_sources, evaluate_swap, find_pairs, merged_model, write_report
from facelab.evaluate.summary import row_lines
from facelab.utils.config import build_config, load_config_file


@click.command("evaluate")
@click.option("--workspace", "-w", "workspace", type=click.Path(file_okay=False, path_type=Path),
              default=Path("workspace"), show_default=True, help="Workspace folder.")
@click.option("--model", "model", default=None,
              help="Model under model/ that made the merged frames (default: the one merge recorded).")
@click.option("--samples", type=int, default=None, help="Frames sampled for identity/expression/pose/SSIM [24].")
@click.option("--stability-frames", type=int, default=None, help="Consecutive frames for jitter [60].")
@click.option("--compare/--no-compare", default=None,
              help="Also measure the workspace's other swap models and the training-free swap [on].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON report path [workspace/evaluation.json]; the PNG goes beside it.")
@device_option
@config_option
@keep_going_option
def evaluate_cmd(workspace: Path, model: str | None, samples: int | None, stability_frames: int | None,
                 compare: bool | None, output: Path | None, device: str | None, config_file: Path | None,
                 keep_going: bool) -> None:
    """Measure the swap: identity, expression, pose, sharpness, structure, stability -> evaluation.json / .png."""
    ws = get_workspace(workspace)
    cfg = build_config(EvaluateConfig, load_config_file(config_file),
                       {"model": model, "samples": samples, "stability_frames": stability_frames, "device": device,
                        "compare": compare})
    json_path = output or ws.root / "evaluation.json"
    find_pairs(ws), check_sources(ws), merged_model(ws, cfg.model)  # say which stage to run before any work
    with progress(None, "evaluate", "frame") as bar:
        evaluation = evaluate_swap(ws, cfg, progress_callback(bar))
    write_report(evaluation, json_path, json_path.with_suffix(".png"))
    report = evaluation.report
    echo_summary("evaluation", {"frames sampled": report["frames_sampled"], **row_lines(report),
                                **{f"note {i + 1}": n for i, n in enumerate(report["notes"])},
                                "report": f"{json_path} and {json_path.with_suffix('.png')}"})
    finish_items("evaluate", report["failures"], keep_going)


COMMANDS = [evaluate_cmd]
