"""Fetch and verify weight files: resumable download into ``<name>.part``, hash check, atomic rename.

Nothing is lost on failure: the file already in place stays until a new one has passed its check; a transfer cut
short (network gone, process killed) leaves ``<file>.part`` that the next fetch resumes with an HTTP ``Range``
request (or restarts when the server ignores it); a download that fails its check is deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_write_text
from facelab.utils.lock import folder_lock
from facelab.utils.progress import Progress, no_progress
from facelab.weights.catalog import WeightFile, find_file, models_dir

CHUNK = 1 << 16
PART_SUFFIX = ".part"
MAX_HASH_BYTES = 256  # a .hash file holds one short hex digest
USER_AGENT = "facelab-models-fetch"


@dataclass(frozen=True)
class Check:
    """Outcome of checking one file: ``ok`` True / False, or None when no published hash allows a check."""

    ok: bool | None
    detail: str
    sha256: str


@dataclass(frozen=True)
class FetchResult:
    path: Path
    status: str  # fetched | resumed | present
    size: int
    check: Check


def digests(path: Path) -> tuple[str, str]:
    """(SHA-256 hex, CRC32 as 8 hex digits) of a file, in one pass."""
    sha = hashlib.sha256()
    crc = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
                crc = zlib.crc32(chunk, crc)
    except OSError as exc:
        raise FacelabError(f"cannot read {path}: {exc.strerror}") from exc
    return sha.hexdigest(), f"{crc & 0xFFFFFFFF:08x}"


def parse_crc(text: str, where: str) -> str:
    """The CRC32 of a FaceFusion ``.hash`` file: 8 hex digits."""
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8}", value):
        raise FacelabError(f"{where} does not hold a CRC32 (8 hex digits): {value[:40]!r}")
    return value


def check_file(entry: WeightFile, path: Path, crc: str | None = None) -> Check:
    """Check ``path`` against what is published for ``entry``: the full SHA-256, its prefix, or the CRC32
    (``crc``, or read from the kept ``.hash`` file beside ``path``)."""
    sha, got_crc = digests(path)
    if entry.sha256:
        ok = sha == entry.sha256.lower()
        return Check(ok, "sha256 " + ("matches" if ok else f"is {sha}, expected {entry.sha256}"), sha)
    if entry.sha256_prefix:
        ok = sha.startswith(entry.sha256_prefix.lower())
        what = "matches" if ok else f"is {sha[:len(entry.sha256_prefix)]}..., expected {entry.sha256_prefix}..."
        return Check(ok, f"sha256 prefix {what}", sha)
    if entry.hash_file:
        if crc is None:
            kept = path.parent / entry.hash_file
            if not kept.is_file():
                return Check(None, f"unchecked: no {entry.hash_file} beside it (fetch again, or download "
                                   f"{entry.hash_url} into {path.parent})", sha)
            crc = parse_crc(kept.read_text(encoding="ascii", errors="replace")[:MAX_HASH_BYTES], str(kept))
        ok = got_crc == crc
        return Check(ok, "crc32 " + ("matches upstream .hash" if ok else f"is {got_crc}, upstream .hash says {crc}"),
                     sha)
    return Check(None, "unchecked: upstream publishes no hash", sha)


def _offline(url: str, why: object, entry: WeightFile, folder: Path) -> FacelabError:
    return FacelabError(f"cannot fetch {url} ({why}); offline? download it elsewhere and copy it into {folder} "
                        f"as {entry.file}")


def _open(url: str, timeout: float, start: int = 0):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def fetch_text(url: str, timeout: float, entry: WeightFile, folder: Path) -> str:
    try:
        with _open(url, timeout) as resp:
            return resp.read(MAX_HASH_BYTES).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _offline(url, getattr(exc, "reason", exc), entry, folder) from exc


def _resume_offset(resp, have: int) -> int:
    """Where the body of ``resp`` starts in the file: ``have`` for a matching 206, else 0 (a full 200 body)."""
    if not have or resp.status != 206:
        return 0
    m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return have if m and int(m.group(1)) == have else -1


def download(url: str, part: Path, timeout: float, progress: Progress, entry: WeightFile, folder: Path) -> bool:
    """Download ``url`` into ``part``, resuming what it holds; True when it resumed. Raises on a short transfer
    (``part`` kept for the next try)."""
    have = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, timeout, have)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole; the check decides
            return True
        raise _offline(url, f"HTTP {exc.code} {exc.reason}", entry, folder) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _offline(url, getattr(exc, "reason", exc), entry, folder) from exc
    with resp:
        start = _resume_offset(resp, have)
        if start < 0:
            raise FacelabError(f"{url} answered a resume with the wrong range; delete {part} and fetch again")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        got = start
        progress(0, total=total)
        progress(start)
        try:
            with open(part, "ab" if start else "wb") as fh:
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    progress(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
        except (http.client.HTTPException, OSError) as exc:
            if isinstance(exc, OSError) and exc.filename:
                raise FacelabError(f"cannot write {part}: {exc.strerror}") from exc
            got = part.stat().st_size if part.is_file() else got
    if total is not None and got < total:
        raise FacelabError(f"download of {url} stopped at {got:,} of {total:,} bytes ({part.name} kept in {folder}); "
                           f"run `python main.py models fetch {entry.name}` again to resume")
    return bool(start)


def fetch_weight(entry: WeightFile, folder: Path | None = None, *, mirror: str | None = None,
                 progress: Progress | None = None, timeout: float = 30.0, force: bool = False) -> FetchResult:
    """Fetch ``entry`` into ``folder`` (default :func:`models_dir`) unless a file there already passes its check.

    ``mirror``: a base URL holding the same file names (the weights and their ``.hash``), used instead of the
    official URL. Raises :class:`FacelabError` with one line naming the URL and the folder on any failure.
    """
    folder = Path(folder) if folder is not None else models_dir()
    report = progress or no_progress
    dest = folder / entry.file
    existing = find_file(entry) if folder == models_dir() else (dest if dest.is_file() else None)
    if existing is not None and not force:
        check = check_file(entry, existing)
        if check.ok is not False:
            return FetchResult(existing, "present", existing.stat().st_size, check)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacelabError(f"cannot create {folder}: {exc.strerror}; set $FACELAB_MODELS to a writable folder") \
            from exc
    base = mirror.rstrip("/") + "/" if mirror else None
    with folder_lock(folder, "models fetch"):  # two fetches never write one .part at once
        return _fetch_locked(entry, folder, dest, base, timeout, report)


def _fetch_locked(entry: WeightFile, folder: Path, dest: Path, base: str | None, timeout: float,
                  report: Progress) -> FetchResult:
    url = base + entry.file if base else entry.url
    crc = None
    if entry.hash_url and not (entry.sha256 or entry.sha256_prefix):
        hash_url = base + entry.hash_file if base else entry.hash_url  # type: ignore[operator]
        crc = parse_crc(fetch_text(hash_url, timeout, entry, folder), hash_url)
    part = folder / (entry.file + PART_SUFFIX)
    resumed = download(url, part, timeout, report, entry, folder)
    check = check_file(entry, part, crc)
    if check.ok is False:
        part.unlink(missing_ok=True)
        kept = f"; {dest.name} already there is kept" if dest.is_file() else ""
        raise FacelabError(f"{url}: {check.detail}; the download was deleted{kept}. Fetch again, or copy a good "
                           f"copy into {folder}")
    if crc is not None:
        atomic_write_text(folder / entry.hash_file, crc + "\n")  # type: ignore[operator]
    os.replace(part, dest)
    return FetchResult(dest, "resumed" if resumed else "fetched", dest.stat().st_size, check)


def verify_weight(entry: WeightFile) -> tuple[Path | None, Check | None]:
    """(path, check) of ``entry`` where it is found, (None, None) when it is not."""
    path = find_file(entry)
    return (path, check_file(entry, path)) if path is not None else (None, None)
