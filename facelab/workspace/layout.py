"""Every path of the workspace layout is derived here (DeepFaceLab's names, so its users feel at home).

```
workspace/
  data_src.mp4  data_dst.mp4        inputs (any container ffmpeg reads)
  data_src/  data_dst/              frames 000001.png ...
  data_src/aligned/  data_dst/aligned/        aligned faces <frame_stem>_<face_index>.<ext>
  data_dst/aligned_debug/           frames with boxes and landmarks drawn
  model/<name>/                     config.json, checkpoints, previews
  data_dst/merged/  data_dst/merged_mask/
  result.mp4  result_mask.mp4
  workspace.json                    layout version
```
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal, Protocol

from facelab.errors import FaceFileError, FacelabError
from facelab.utils.atomic import atomic_write_text

LAYOUT_VERSION = 1
Side = Literal["src", "dst"]
SIDES: tuple[Side, ...] = ("src", "dst")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")

#: Stage outputs ``workspace clear`` may remove, by name. Inputs (data_src.*, data_dst.*) are never in this list.
CLEARABLE = ("frames_src", "frames_dst", "aligned_src", "aligned_dst", "debug", "model", "merged", "result")


class HasSourceFrame(Protocol):
    """Anything with a workspace-relative ``source_frame`` (a :class:`facelab.workspace.FaceMeta`)."""

    @property
    def source_frame(self) -> str: ...


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace folder. Creating the object touches nothing on disk."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- inputs and frames -------------------------------------------------------------------------------------
    def video(self, side: Side) -> Path:
        """The input video ``data_<side>.*`` (first video file with that stem); errors when there is none."""
        found = self.find_video(side)
        if found is None:
            raise FacelabError(
                f"no video data_{side}.* in {self.root}; put one there (e.g. data_{side}.mp4) "
                "or run `python main.py workspace samples`"
            )
        return found

    def find_video(self, side: Side) -> Path | None:
        if not self.root.is_dir():
            return None
        for ext in VIDEO_EXTS:
            for cand in sorted(self.root.glob(f"data_{side}*")):
                if cand.is_file() and cand.stem == f"data_{side}" and cand.suffix.lower() == ext:
                    return cand
        return None

    def frames(self, side: Side) -> Path:
        return self.root / f"data_{side}"

    def aligned(self, side: Side) -> Path:
        return self.frames(side) / "aligned"

    def aligned_debug(self, side: Side) -> Path:
        return self.frames(side) / "aligned_debug"

    # -- model, merge, result ----------------------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "model"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def merged(self) -> Path:
        return self.frames("dst") / "merged"

    @property
    def merged_mask(self) -> Path:
        return self.frames("dst") / "merged_mask"

    @property
    def result(self) -> Path:
        return self.root / "result.mp4"

    @property
    def result_mask(self) -> Path:
        return self.root / "result_mask.mp4"

    @property
    def manifest(self) -> Path:
        return self.root / "workspace.json"

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, POSIX style (how face files name their source frame)."""
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def resolve(self, rel: str, face_file: str | os.PathLike[str] | None = None) -> Path:
        """The real path of the workspace-relative name ``rel`` (a face file's source frame), symlinks and ``..``
        resolved. The one path guard of the face-file contract: a name that is absolute or leads outside the
        workspace (its root, or the real folders its ``data_src`` / ``data_dst`` link to) raises
        :class:`FaceFileError` naming ``face_file`` and the path."""
        who = f"{face_file}: " if face_file is not None else ""
        fix = "re-run extract or remove that face file"
        text = str(rel)
        if not text or "\0" in text or PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor:
            raise FaceFileError(f"{who}source frame {text[:200]!r} is not a workspace-relative path; {fix}")
        try:
            real = (self.root / text).resolve()
            allowed = {self.root.resolve(), *(self.frames(s).resolve() for s in SIDES)}
        except (OSError, RuntimeError, ValueError) as exc:
            raise FaceFileError(f"{who}source frame {text[:200]!r} cannot be resolved ({exc}); {fix}") from exc
        if not any(real.is_relative_to(base) for base in allowed):
            raise FaceFileError(f"{who}source frame {text[:200]!r} leads outside the workspace {self.root} "
                                f"(to {real}); {fix}")
        return real

    def frame_path(self, meta: HasSourceFrame, face_file: str | os.PathLike[str] | None = None) -> Path:
        """The frame a face file was cut from (``meta.source_frame`` through :meth:`resolve`, the path guard)."""
        return self.resolve(meta.source_frame, face_file)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def init(self) -> list[Path]:
        """Create the folders and ``workspace.json``; returns what was created. Existing content is kept."""
        created = []
        for folder in (self.root, self.frames("src"), self.frames("dst"), self.aligned("src"), self.aligned("dst"),
                       self.models):
            if not folder.exists():
                try:
                    folder.mkdir(parents=True)
                except OSError as exc:
                    raise FacelabError(f"cannot create {folder}: {exc.strerror}; check permissions") from exc
                created.append(folder)
        if not self.manifest.exists():
            atomic_write_text(self.manifest, json.dumps({"layout_version": LAYOUT_VERSION}, indent=2) + "\n")
            created.append(self.manifest)
        else:
            self.check_version()
        return created

    def check_version(self) -> int:
        """Read ``workspace.json``; error on a layout newer than this facelab understands."""
        if not self.manifest.exists():
            return LAYOUT_VERSION
        try:
            version = int(json.loads(self.manifest.read_text("utf-8"))["layout_version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FacelabError(f"{self.manifest} is unreadable ({exc}); delete it and run `workspace init`") from exc
        if version > LAYOUT_VERSION:
            raise FacelabError(f"{self.manifest} has layout version {version}; upgrade facelab to use it")
        return version

    def clear_targets(self, what: str) -> list[Path]:
        """The paths ``workspace clear <what>`` removes (stage outputs only, never input videos)."""
        targets = {
            "frames_src": [p for p in _frame_files(self.frames("src"))],
            "frames_dst": [p for p in _frame_files(self.frames("dst"))],
            "aligned_src": [self.aligned("src")],
            "aligned_dst": [self.aligned("dst")],
            "debug": [self.aligned_debug("src"), self.aligned_debug("dst")],
            "model": [self.models],
            "merged": [self.merged, self.merged_mask],
            "result": [self.result, self.result_mask],
        }
        if what not in targets:
            raise FacelabError(f"unknown clear target {what!r}; choose from {', '.join(CLEARABLE)}")
        return [p for p in targets[what] if p.exists()]

    def clear(self, what: str) -> list[Path]:
        removed = self.clear_targets(what)
        for p in removed:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        return removed


def _frame_files(folder: Path) -> list[Path]:
    from facelab.workspace.images import list_images

    return list_images(folder) if folder.is_dir() else []
