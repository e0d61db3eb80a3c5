"""CLI of the extract stage: `extract`, `backends`, `sort` and the `faces` tools (sheet, recover-names, info)."""

from __future__ import annotations

from pathlib import Path

import click

from facelab.cli.common import (
    config_option,
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
from facelab.detect import DETECTORS, detector_available, weight_dirs
from facelab.errors import FacelabError
from facelab.extract import ExtractConfig, extract_faces
from facelab.landmarks import LANDMARKS, landmarks_available
from facelab.sort import SORT_METHODS, contact_sheet, recover_names, sort_faces
from facelab.utils.config import build_config, load_config_file
from facelab.utils.items import ItemErrors
from facelab.utils.lock import stage_folders
from facelab.workspace.faces import read_meta

_TARGETS = {"src": "src", "dst": "dst", "data_src": "src", "data_dst": "dst", "both": "both"}


def _sides(target: str | None, side: str | None) -> list[str]:
    if target is not None and side is not None and _TARGETS[target] != side:
        raise FacelabError(f"`extract {target}` and --side {side} disagree; give one of them")
    chosen = side or (_TARGETS[target] if target else "both")
    return ["src", "dst"] if chosen == "both" else [chosen]


def _run_extract(frames: Path, aligned: Path, root: Path, cfg: ExtractConfig, force: bool,
                 title: str) -> tuple[str, ...]:
    """Extract one frames folder and print its summary; returns the frames that failed."""
    # no frames folder: nothing to lock (nor to create); the stage says what is missing
    with stage_folders("extract", aligned if frames.is_dir() else None), \
            progress(None, f"extract {title}", unit="frame") as bar:
        result = extract_faces(frames, aligned, cfg, progress_callback(bar), source_root=root, force=force)
    echo_summary(f"extract {title}: {aligned}", result.summary())
    return result.failures


@click.command("extract")
@click.argument("target", required=False, type=click.Choice(list(_TARGETS)))
@workspace_option
@click.option("--side", type=click.Choice(["src", "dst", "both"]), default=None, help="Side(s) to extract [both].")
@click.option("--input", "input_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Frames folder (instead of the workspace's data_<side>).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Aligned faces folder [<input>/aligned].")
@config_option
@config_options(ExtractConfig)
@force_option
@keep_going_option
def extract_cmd(target, workspace, side, input_dir, output_dir, config_file, force, keep_going, **flags) -> None:
    """Detect faces, 68 landmarks and write aligned face files (resumes unless --force)."""
    file_cfg = load_config_file(config_file)
    cfg = build_config(ExtractConfig, file_cfg.get("extract", file_cfg), flags, source="extract option")
    if input_dir is not None:
        out = output_dir or input_dir / "aligned"
        finish_items("extract", _run_extract(input_dir, out, input_dir.parent, cfg, force, input_dir.name),
                     keep_going)
        return
    if output_dir is not None:
        raise FacelabError("--output needs --input (the workspace decides both paths otherwise)")
    ws = get_workspace(workspace)
    failed: list[str] = []
    for s in _sides(target, side):
        failed += _run_extract(ws.frames(s), ws.aligned(s), ws.root, cfg, force, f"data_{s}")
    finish_items("extract", failed, keep_going)


@click.command("backends")
def backends_cmd() -> None:
    """List detectors and landmark backends, and why unavailable ones are not usable here."""
    for title, reg, check in (("detectors", DETECTORS, detector_available),
                              ("landmarks", LANDMARKS, landmarks_available)):
        click.echo(f"{title}:")
        for entry in reg:
            ok, why = check(entry.name)
            click.echo(f"  {entry.name:<10} {'yes' if ok else 'no ':<4} {entry.help if ok else why}")
    click.echo("weights are looked up in: " + ", ".join(str(d) for d in weight_dirs()))


@click.command("sort")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@workspace_option
@click.option("--side", type=click.Choice(["src", "dst"]), default="src", show_default=True,
              help="Workspace side whose aligned faces are sorted when FOLDER is not given.")
@click.option("--by", "method", type=click.Choice(SORT_METHODS.names()), required=True, help="Sort method.")
@click.option("--count", type=int, default=2000, show_default=True, help="Faces to keep with --by final.")
@keep_going_option
def sort_cmd(folder, workspace, side, method, count, keep_going) -> None:
    """Sort face files (renamed 00001...); rejected faces move to <folder>_trash, never deleted."""
    folder = folder or get_workspace(workspace).aligned(side)
    with progress(None, f"sort --by {method}", unit="face") as bar:
        res = sort_faces(folder, method, count=count, progress=progress_callback(bar))
    echo_summary(f"sort --by {method}: {folder}", {"kept": res.kept, "trashed": res.trashed,
                                                  "skipped (unusable, left in place)": res.skipped,
                                                  "trash folder": res.trash_dir or "-"})
    finish_items("sort", res.failures, keep_going)


@click.group("faces")
def faces_group() -> None:
    """Tools for folders of face files."""


@faces_group.command("sheet")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [<folder>_sheet.png beside the folder].")
@click.option("--landmarks", is_flag=True, help="Draw the 68 landmarks.")
@click.option("--masks", is_flag=True, help="Tint the stored mask (or the landmark hull).")
@click.option("--cols", type=int, default=8, show_default=True)
@click.option("--max", "max_faces", type=int, default=64, show_default=True, help="Faces shown, 0 = all.")
@click.option("--thumb", type=int, default=128, show_default=True, help="Tile size in pixels.")
@click.option("--mark-poor/--no-mark-poor", default=True, show_default=True,
              help="Doubtful landmark fits first, framed and labelled (!interp, !shape, !fit).")
@keep_going_option
def sheet_cmd(folder, out, landmarks, masks, cols, max_faces, thumb, mark_poor, keep_going) -> None:
    """Write a contact-sheet PNG of the faces in FOLDER."""
    errors = ItemErrors()
    path = contact_sheet(folder, out, cols=cols, max_faces=max_faces, thumb=thumb, landmarks=landmarks, masks=masks,
                         errors=errors, mark_poor=mark_poor)
    click.echo(f"wrote {path}")
    finish_items("faces sheet", errors.as_tuple(), keep_going)


@faces_group.command("recover-names")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def recover_cmd(folder) -> None:
    """Rename face files back to <frame_stem>_<index> from their metadata."""
    click.echo(f"renamed {recover_names(folder)} file(s) in {folder}")


@faces_group.command("info")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def info_cmd(file) -> None:
    """Show the metadata of one face file."""
    m = read_meta(file)
    items = {"source frame": m.source_frame, "frame size": f"{m.frame_size[0]}x{m.frame_size[1]}",
             "face index": m.face_index, "face type": m.face_type, "size": m.size,
             "box": ", ".join(f"{v:.1f}" for v in m.box), "detector": m.detector, "landmarks": m.landmarks_backend,
             "masks": ", ".join(f"{r.name} ({r.source})" for r in m.masks) or "-",
             "schema": m.schema_version}
    items.update({k: v for k, v in m.extra.items()})
    echo_summary(str(file), items)


COMMANDS = [extract_cmd, backends_cmd, sort_cmd, faces_group]
