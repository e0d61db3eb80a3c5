"""The command line: a thin door over the stage functions. tqdm and user messages live only here."""

from facelab.cli.root import cli, main

__all__ = ["cli", "main"]
