"""Options and helpers shared by command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click
from tqdm import tqdm

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
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None, help="Compute device [auto].",
)
force_option = click.option("--force", is_flag=True, help="Redo finished items instead of resuming.")


def get_workspace(path: Path) -> Workspace:
    ws = Workspace(path)
    ws.check_version()
    return ws


def progress(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; library code reports through a callback that calls ``bar.update``."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)


def progress_callback(bar: tqdm) -> Callable[..., None]:
    def cb(n: int = 1, **postfix) -> None:
        total = postfix.pop("total", None)
        if total is not None:
            bar.total = total
            bar.refresh()
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.update(n)

    return cb


def echo_summary(title: str, items: dict) -> None:
    """Print a stage's result record as aligned ``key: value`` lines."""
    click.echo(title)
    width = max((len(k) for k in items), default=0)
    for key, value in items.items():
        click.echo(f"  {key:<{width}}  {value}")
