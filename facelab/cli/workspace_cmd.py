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


COMMANDS = [workspace_group]
