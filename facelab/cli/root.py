"""The root click group: ``--debug``, ``--version``, and one-line errors for user mistakes."""

from __future__ import annotations

import logging
import sys

import click

from facelab import __version__
from facelab.errors import FacelabError


class FacelabGroup(click.Group):
    """A group that turns :class:`FacelabError` and ``OSError`` into one-line errors (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FacelabError, OSError) as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            if isinstance(exc, FacelabError):
                msg = str(exc)
            else:
                where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
                msg = f"{where}{exc.strerror or exc}"
            raise click.ClickException(msg) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None


@click.group(cls=FacelabGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="facelab")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """facelab: extract faces, train a swap model, merge it back into video. Offline first, scriptable."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s", stream=sys.stderr,
                        force=True)


def _add_commands() -> None:
    # Explicit imports: every command group is visible here, never discovered.
    from facelab.cli import demo, evaluate, extract, mask, merge, models_cmd, studio, train, video, workspace_cmd, wsol

    for module in (workspace_cmd, video, extract, train, merge, mask, wsol, evaluate, demo, models_cmd, studio):
        for command in module.COMMANDS:
            cli.add_command(command)


_add_commands()


def main() -> None:
    cli(obj={})
