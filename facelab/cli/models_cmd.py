"""``models list|fetch|verify``: the optional weight files facelab can use, fetched and checked on request."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from facelab.cli.common import progress_callback
from facelab.errors import FacelabError
from facelab.weights.catalog import CATALOG, MODELS_ENV, WeightFile, get_weight, models_dir, search_dirs
from facelab.weights.fetch import check_file, fetch_weight, verify_weight


@click.group("models")
def models_group() -> None:
    """Optional weight files (S3FD, FAN, face enhancers, occluders, face parsers): list, fetch, verify.

    Files go to models/ or $FACELAB_MODELS. Nothing is downloaded unless you run `models fetch`.
    """


def _size(n: int | None) -> str:
    if n is None:
        return "unknown until fetched"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} B"


def list_rows(entries: tuple[WeightFile, ...] = CATALOG) -> list[dict]:
    """One record per catalogue entry: what ``models list`` shows (and prints as JSON)."""
    rows = []
    for w in entries:
        from facelab.weights.catalog import find_file

        path = find_file(w)
        rows.append({"name": w.name, "file": w.file, "kind": w.kind, "purpose": w.purpose,
                     "size": path.stat().st_size if path else w.size, "hash": w.check_text(), "url": w.url,
                     "hash_url": w.hash_url, "licence": w.licence, "present": path is not None,
                     "path": str(path) if path else None, "looked_for_in": [str(d) for d in search_dirs(w)]})
    return rows


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_cmd(as_json: bool) -> None:
    """Every optional weight file: purpose, size, hash, official URL, where it is looked for, present or not."""
    rows = list_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"weight folder: {models_dir()} (set ${MODELS_ENV} to change)")
    for r in rows:
        state = f"present: {r['path']}" if r["present"] else "missing"
        click.echo(f"{r['name']:<18} {r['kind']:<9} {state}")
        click.echo(f"    {r['purpose']}")
        click.echo(f"    file {r['file']}, size {_size(r['size'])}")
        click.echo(f"    {r['hash']}")
        click.echo(f"    url {r['url']}")
        click.echo(f"    licence {r['licence']}")
        click.echo(f"    looked for in {', '.join(r['looked_for_in'])}")


@models_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--mirror", default=None, metavar="URL",
              help="Base URL of a mirror holding the same file names, used instead of the official URLs.")
@click.option("--force", is_flag=True, help="Download again even when a checked file is present.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds to wait for the server.")
def fetch_cmd(names: tuple[str, ...], mirror: str | None, force: bool, timeout: float) -> None:
    """Download NAME... (or `all`) into the weight folder, check it, and move it into place.

    An interrupted download resumes; a file that fails its check is deleted and the old one kept.
    """
    entries = list(CATALOG) if names == ("all",) else [get_weight(n) for n in names]
    failed = []
    for entry in entries:
        with tqdm(total=None, desc=entry.file, unit="B", unit_scale=True, unit_divisor=1024,
                  dynamic_ncols=True, leave=False) as bar:
            try:
                result = fetch_weight(entry, mirror=mirror, progress=progress_callback(bar), timeout=timeout,
                                      force=force)
            except FacelabError as exc:
                if len(entries) == 1:
                    raise
                failed.append(entry.name)
                click.echo(f"error: {exc}", err=True)
                continue
        click.echo(f"{entry.name}: {result.status} {result.path} ({_size(result.size)}; {result.check.detail})")
    if failed:
        raise FacelabError(f"could not fetch {', '.join(failed)} (see above)")


@models_group.command("verify")
@click.argument("names", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check this file as the (single) NAME given, wherever it is.")
def verify_cmd(names: tuple[str, ...], files: tuple[Path, ...]) -> None:
    """Check every present weight file (or NAME...) against its published hash; exit 1 on a mismatch."""
    entries = [get_weight(n) for n in names] if names else list(CATALOG)
    if files and len(entries) != 1:
        raise FacelabError("--file needs exactly one NAME, e.g. `models verify s3fd --file ./s3fd.pth`")
    bad, checked = [], 0
    for entry in entries:
        if files:
            path, check = files[0], check_file(entry, files[0])
        else:
            path, check = verify_weight(entry)
        if path is None or check is None:
            if names:
                click.echo(f"{entry.name}: missing ({entry.file} not in "
                           f"{', '.join(str(d) for d in search_dirs(entry))})")
            continue
        checked += 1
        word = {True: "ok", False: "MISMATCH", None: "unchecked"}[check.ok]
        click.echo(f"{entry.name}: {word} {path} ({check.detail}; sha256 {check.sha256})")
        if check.ok is False:
            bad.append(entry.name)
    if not checked and not names:
        click.echo(f"no weight files present in {models_dir()}; `python main.py models list` shows what can be "
                   f"fetched")
    if bad:
        raise FacelabError(f"{', '.join(bad)} failed the check; run `python main.py models fetch --force "
                           f"{' '.join(bad)}` or copy good files into {models_dir()}")


COMMANDS = [models_group]
