"""``evaluate``: how good is the swap (identity, expression, pose, sharpness, structure, stability), beside the
workspace's other swaps and the training-free one."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import config_option, device_option, echo_summary, get_workspace, progress, progress_callback
from facelab.evaluate.report import EvaluateConfig, check_sources, evaluate_swap, find_pairs, merged_model, write_report
from facelab.utils.config import build_config, load_config_file


def row_lines(report: dict) -> dict[str, str]:
    """One summary line per measure, a value per compared swap (``a | b | ...``)."""
    rows = report["rows"]

    def each(fmt) -> str:
        return " | ".join(fmt(r) for r in rows.values())

    def held(r: dict) -> str:
        return "n/a" if r["held_out"]["ssim"] is None else f"{r['held_out']['ssim']:.3f}"

    def stab(r: dict, key: str, digits: int) -> str:
        s = r.get("stability") or {}
        return f"{s[f'{key}_swap']:.{digits}f}" if s else "n/a"

    first = next(iter(rows.values())).get("stability") or {}
    return {
        "swaps compared": " | ".join(rows),
        "sharpness (swap / dst, median)": each(lambda r: f"{r['sharpness']['ratio']:.3f}"),
        "resolution ceiling / share of it": each(lambda r: f"{r['sharpness']['ceiling']:.3f} / "
                                                           f"{r['sharpness']['of_ceiling']:.0%}"),
        "identity swapped->src / ->dst": each(lambda r: f"{r['identity']['swap_to_src']:.3f} / "
                                                        f"{r['identity']['swap_to_dst']:.3f}"),
        "frames closer to source": each(lambda r: f"{r['identity']['fraction_closer_to_src']:.0%}"),
        "landmark NME": each(lambda r: f"{r['expression']['landmark_nme']:.4f}"),
        "pose error (deg)": each(lambda r: f"{r['pose']['pose_error_deg']:.2f}"),
        "SSIM swap vs dst": each(lambda r: f"{r['structure']['ssim_swap_vs_dst']:.3f}"),
        f"held-out src->src SSIM ({next(iter(rows.values()))['held_out']['faces']} faces)": each(held),
        "texture jitter (input " + (f"{first['texture_jitter_orig']:.2f}" if first else "n/a") + ")":
            each(lambda r: stab(r, "texture_jitter", 2)),
        "landmark jitter (input " + (f"{first['landmark_jitter_orig']:.4f}" if first else "n/a") + ")":
            each(lambda r: stab(r, "landmark_jitter", 4)),
    }


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
def evaluate_cmd(workspace: Path, model: str | None, samples: int | None, stability_frames: int | None,
                 compare: bool | None, output: Path | None, device: str | None, config_file: Path | None) -> None:
    """Measure the swap: identity, expression, pose, sharpness, structure, stability -> evaluation.json / .png."""
    ws = get_workspace(workspace)
    cfg = build_config(EvaluateConfig, load_config_file(config_file),
                       {"model": model, "samples": samples, "stability_frames": stability_frames, "device": device,
                        "compare": compare})
    json_path = output or ws.root / "evaluation.json"
    check_sources(ws), find_pairs(ws), merged_model(ws, cfg.model)  # say which stage to run before any work
    with progress(None, "evaluate", "frame") as bar:
        evaluation = evaluate_swap(ws, cfg, progress_callback(bar))
    write_report(evaluation, json_path, json_path.with_suffix(".png"))
    report = evaluation.report
    echo_summary("evaluation", {"frames sampled": report["frames_sampled"], **row_lines(report),
                                **{f"note {i + 1}": n for i, n in enumerate(report["notes"])},
                                "report": f"{json_path} and {json_path.with_suffix('.png')}"})


COMMANDS = [evaluate_cmd]
