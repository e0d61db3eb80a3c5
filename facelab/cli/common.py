"""Options and helpers shared by command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import click
from tqdm import tqdm

from facelab.utils.device import DEVICE_CHOICES
from facelab.utils.items import failure_summary
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
keep_going_option = click.option(
    "--keep-going", is_flag=True,
    help="Exit 0 even when some items failed (they are skipped and named); without it such a run exits 1.",
)


def get_workspace(path: Path) -> Workspace:
    ws = Workspace(path)
    ws.check_version()
    return ws


def progress(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; library code reports to it through :func:`progress_callback`."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)


def progress_callback(bar: tqdm) -> Progress:
    """The one adapter of :data:`facelab.utils.progress.Progress` to a bar: ``cb(n=1, total=None, **info)``
    advances by ``n``, sets the total when given (``cb(0, total=N)`` starts the count again, so a step that runs a
    stage twice shows each run from zero) and shows ``info`` beside the bar."""

    def cb(n: int = 1, **info: Any) -> None:
        total = info.pop("total", None)
        if total is not None and n == 0:
            bar.reset(total=total)
        elif total is not None:
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


def finish_items(what: str, failures: Sequence[str], keep_going: bool) -> None:
    """End a stage run that skipped failed items: one line naming them; exit 1 unless ``keep_going``."""
    if not failures:
        return
    line = f"{what}: {failure_summary(failures)}"
    if keep_going:
        click.echo(f"warning: {line}", err=True)
        return
    raise click.ClickException(f"{line}; fix or remove them and rerun, or pass --keep-going to accept the skips")
