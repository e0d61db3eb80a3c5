"""``evaluate``: how good is the swap (identity, expression, pose, structure, stability)."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import config_option, device_option, echo_summary, get_workspace, progress, progress_callback
from facelab.evaluate.report import EvaluateConfig, evaluate_swap, find_pairs, write_report
from facelab.models.store import find_swap_model
from facelab.utils.config import build_config, load_config_file


@click.command("evaluate")
@click.option("--workspace", "-w", "workspace", type=click.Path(file_okay=False, path_type=Path),
              default=Path("workspace"), show_default=True, help="Workspace folder.")
@click.option("--model", "model", default=None, help="Model name under model/ (default: the only one).")
@click.option("--samples", type=int, default=None, help="Frames sampled for identity/expression/pose/SSIM [24].")
@click.option("--stability-frames", type=int, default=None, help="Consecutive frames for jitter [60].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON report path [workspace/evaluation.json]; the PNG goes beside it.")
@device_option
@config_option
def evaluate_cmd(workspace: Path, model: str | None, samples: int | None, stability_frames: int | None,
                 output: Path | None, device: str | None, config_file: Path | None) -> None:
    """Measure the swap: identity, expression, pose, structure, stability -> evaluation.json / .png."""
    ws = get_workspace(workspace)
    cfg = build_config(EvaluateConfig, load_config_file(config_file),
                       {"model": model, "samples": samples, "stability_frames": stability_frames, "device": device})
    json_path = output or ws.root / "evaluation.json"
    find_pairs(ws), find_swap_model(ws, cfg.model)  # say which stage to run first before any work starts
    with progress(cfg.samples, "evaluate", "frame") as bar:
        report = evaluate_swap(ws, cfg, progress_callback(bar))
    write_report(report, json_path, json_path.with_suffix(".png"))
    ident, stab = report["identity"], report.get("stability", {})
    echo_summary("evaluation", {
        "frames sampled": report["frames_sampled"],
        "identity swapped->src / ->dst": f"{ident['swap_to_src']:.3f} / {ident['swap_to_dst']:.3f}",
        "identity original->src / ->dst": f"{ident['orig_to_src']:.3f} / {ident['orig_to_dst']:.3f}",
        "frames closer to source": f"{ident['fraction_closer_to_src']:.0%}",
        "landmark NME": f"{report['expression']['landmark_nme']:.4f}",
        "pose error (deg)": f"{report['pose']['pose_error_deg']:.2f}",
        "SSIM swap vs dst": f"{report['structure']['ssim_swap_vs_dst']:.3f}",
        "SSIM dst->dst reconstruction": f"{report['structure']['reconstruction_ssim_dst']:.3f}",
        "landmark jitter input -> swap": (f"{stab['landmark_jitter_orig']:.4f} -> {stab['landmark_jitter_swap']:.4f}"
                                          if stab else "n/a"),
        "colour jitter input -> swap": (f"{stab['colour_jitter_orig']:.2f} -> {stab['colour_jitter_swap']:.2f}"
                                        if stab else "n/a"),
        "report": f"{json_path} and {json_path.with_suffix('.png')}",
    })


COMMANDS = [evaluate_cmd]
