"""``video extract | encode | info``: frames out of a video, and frames back into one with the original audio."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facelab.cli.common import echo_summary, force_option, get_workspace, progress, progress_callback, workspace_option
from facelab.errors import FacelabError
from facelab.utils.lock import stage_folders
from facelab.video import encode_frames, extract_frames, list_frames, probe
from facelab.workspace import Workspace, list_images

SIDE_NAMES = {"data_src": "src", "data_dst": "dst"}


@click.group("video")
def video_group() -> None:
    """Extract frames from videos and encode frames into videos (ffmpeg)."""


def _extract_jobs(ws: Workspace, target: str | None, output: Path | None) -> list[tuple[Path, Path]]:
    """(video, frames folder) pairs for ``target``: data_src, data_dst, a path, or both inputs when None."""
    if target is None:
        jobs = [(v, ws.frames(side)) for side in ("src", "dst") if (v := ws.find_video(side)) is not None]  # type: ignore[arg-type]
        if not jobs:
            ws.video("src")  # raises the message that says where to put the videos
        if output is not None and len(jobs) > 1:
            raise FacelabError("--output needs one video; name data_src, data_dst or a path")
    elif target in SIDE_NAMES:
        side = SIDE_NAMES[target]
        jobs = [(ws.video(side), ws.frames(side))]  # type: ignore[arg-type]
    else:
        video = Path(target)
        jobs = [(video, ws.root / video.stem)]
    return [(video, output or out) for video, out in jobs]


@video_group.command("extract")
@click.argument("target", required=False)
@workspace_option
@click.option("--fps", type=float, default=0.0, show_default=True, help="Frames per second to keep; 0 keeps all.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Frames folder [workspace/data_src or data_dst, or workspace/<video name>].")
@force_option
def extract_cmd(target: str | None, workspace: Path, fps: float, fmt: str, output: Path | None, force: bool) -> None:
    """Extract the frames of TARGET (data_src, data_dst or a video path; default both inputs) as 000001.png ...

    A rerun skips frames already there.
    """
    ws = get_workspace(workspace)
    for video, out in _extract_jobs(ws, target, output):
        info = probe(video)
        expected = info.frame_count if fps == 0 else max(1, round(info.duration * fps))
        with stage_folders("video extract", out), progress(expected, f"extract {video.name}", unit="frame") as bar:
            result = extract_frames(video, out, fps=fps, fmt=fmt, progress=progress_callback(bar), force=force,
                                    info=info)
        echo_summary(f"extracted {video}", {
            "frames": result.total, "written": result.written, "kept": result.skipped,
            "folder": result.out_dir, "seconds": f"{result.seconds:.1f}",
        })


@video_group.command("encode")
@workspace_option
@click.option("--input", "input_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Frames folder [workspace/data_dst/merged].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Video file [workspace/result.mp4].")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Video giving frame rate and audio [workspace/data_dst.* when present].")
@click.option("--fps", type=str, default=None, help="Frame rate (e.g. 25 or 30000/1001) [the reference's].")
@click.option("--crf", type=int, default=None, help="x264 quality, 0 best .. 51 worst [18].")
@click.option("--bitrate", type=str, default=None, help="Target bitrate such as 8M (replaces --crf).")
@click.option("--lossless", is_flag=True, default=None, help="Lossless H.264 (qp 0, yuv444p).")
def encode_cmd(workspace: Path, input_dir: Path | None, output: Path | None, reference: Path | None,
               fps: str | None, crf: int | None, bitrate: str | None, lossless: bool | None) -> None:
    """Encode frames into an H.264 video with the reference's frame rate and first audio track.

    Without --input, also encodes data_dst/merged_mask into result_mask.mp4 when it holds frames.
    """
    ws = get_workspace(workspace)
    if reference is None:
        reference = ws.find_video("dst")
    jobs = [(input_dir or ws.merged, output or ws.result)]
    if input_dir is None and list_images(ws.merged_mask):
        mask_out = output.with_name(output.stem + "_mask" + output.suffix) if output else ws.result_mask
        jobs.append((ws.merged_mask, mask_out))
    for frames_dir, out in jobs:
        with stage_folders("video encode", out.parent, temps=(out.suffix,)), \
                progress(len(list_frames(frames_dir)), f"encode {out.name}", unit="frame") as bar:
            result = encode_frames(frames_dir, out, reference, fps, crf, bitrate, lossless or None,
                                   progress_callback(bar))
        echo_summary(f"encoded {result.out_path}", {
            "frames": result.frames, "size": f"{result.width}x{result.height}", "fps": result.fps_fraction,
            "audio": result.audio, "seconds": f"{result.seconds:.1f}",
        })


@video_group.command("info")
@click.argument("target")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info_cmd(target: str, workspace: Path, as_json: bool) -> None:
    """Size, exact frame rate, exact frame count, duration and audio of TARGET (data_src, data_dst or a path)."""
    video = get_workspace(workspace).video(SIDE_NAMES[target]) if target in SIDE_NAMES else Path(target)  # type: ignore[arg-type]
    info = probe(video).as_dict()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        echo_summary(str(video), {k: v for k, v in info.items() if k != "path"})


COMMANDS = [video_group]
