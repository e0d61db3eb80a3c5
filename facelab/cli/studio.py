"""``studio``: serve the local web workbench (merge tuning, training monitor, face sets, workspace overview)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from facelab.cli.common import device_option, get_workspace, workspace_option

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("studio")
@workspace_option
@device_option
@click.option("--name", default=None, help="Model folder under workspace/model/ [the only trained one].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but a loopback address exposes the workspace to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free).")
def studio_cmd(workspace: Path, device: str | None, name: str | None, host: str, port: int) -> None:
    """Serve the studio on HOST:PORT and print the one URL to open (it holds the access token)."""
    from facelab.errors import FacelabError
    from facelab.models.store import find_swap_model
    from facelab.studio.server import make_server
    from facelab.utils.device import select_device

    ws = get_workspace(workspace)
    if not ws.root.is_dir():
        raise FacelabError(f"workspace {ws.root} does not exist; run `python main.py workspace init`")
    try:
        model_dir = find_swap_model(ws, name)
    except FacelabError as exc:
        if name:
            raise
        model_dir = None
        click.echo(f"note: {exc}; merge tuning shows the destination faces unchanged", err=True)
    if not is_loopback(host):
        click.echo(f"WARNING: binding to {host}: anyone who can reach this machine and learns the URL can read "
                   "and change this workspace. Prefer the default 127.0.0.1 with an SSH port-forward.", err=True)
    server = make_server(ws, model_dir, host=host, port=port, device=select_device(device or "auto"))
    click.echo(f"facelab studio on {ws.root} (model: {model_dir.name if model_dir else 'none'})")
    click.echo(f"open {server.url}")
    click.echo("Ctrl-C stops it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("studio stopped", err=True)
    finally:
        server.server_close()


COMMANDS = [studio_cmd]
