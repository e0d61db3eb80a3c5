"""Options and helpers shared by command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from facelab.utils.device import DEVICE_CHOICES
from facelab.utils.progress import Progress
from facelab.workspace import Workspace

workspace_option = click.option(
    "--workspace", "-w", "workspace", type=click.Path(file_okay=False, path_type=Path), default=Path("workspace"),
    show_default=True, help="Workspace folder; every path is derived from it.",
)
config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="JSON or TOML file of settings (flags override it).",
)
device_option = click.option(
    "--device", type=click.Choice(DEVICE_CHOICES), default=None, help="Compute device [auto].",
)
force_option = click.option("--force", is_flag=True, help="Redo finished items instead of resuming.")


def get_workspace(path: Path) -> Workspace:
    ws = Workspace(path)
    ws.check_version()
    return ws


def progress(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; library code reports to it through :func:`progress_callback`."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)


def progress_callback(bar: tqdm) -> Progress:
    """The one adapter of :data:`facelab.utils.progress.Progress` to a bar: ``cb(n=1, total=None, **info)``
    advances by ``n``, sets the total when given and shows ``info`` beside the bar."""

    def cb(n: int = 1, **info: Any) -> None:
        total = info.pop("total", None)
        if total is not None:
            bar.total = total
            bar.refresh()
        if info:
            bar.set_postfix(info, refresh=False)
        bar.update(n)

    return cb


def echo_summary(title: str, items: dict) -> None:
    """Print a stage's result record as aligned ``key: value`` lines."""
    click.echo(title)
    width = max((len(k) for k in items), default=0)
    for key, value in items.items():
        click.echo(f"  {key:<{width}}  {value}")
