"""The catalogue of optional weight files: what each does, where it comes from, how it is checked, where it lives.

Every entry names the official URL its authors (or the project that converted it) publish and says honestly what
check is possible offline:

- ``sha256``: the full SHA-256 hex digest, where upstream publishes one;
- ``sha256_prefix``: the leading hex digits of the SHA-256 that torch hub's naming convention puts into the file
  name (``s3fd-619a316812.pth``); face-alignment's own download checks exactly this prefix;
- ``hash_url``: a small text file beside the weights holding their CRC32 (FaceFusion's ``.hash`` files). It is
  fetched with the weights and kept next to them, so ``models verify`` can check again offline.

An entry with none of these is fetched unchecked and says so. No digest here was computed from a guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from facelab.errors import FacelabError

#: Environment variable naming the folder weight files are fetched into and looked for first.
MODELS_ENV = "FACELAB_MODELS"
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"

_FA = "https://www.adrianbulat.com/downloads/python-fan/"
_FF = "https://github.com/facefusion/facefusion-assets/releases/download/"


@dataclass(frozen=True)
class WeightFile:
    """One optional weight file. ``kind``: detector | landmarks | enhancer | occluder | parser."""

    name: str
    file: str
    kind: str
    purpose: str
    url: str
    licence: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    hash_url: str | None = None
    size: int | None = None  # bytes, where upstream states it
    torch_hub: bool = False  # also looked for in $TORCH_HOME/hub/checkpoints (face-alignment's own cache)

    @property
    def hash_file(self) -> str | None:
        """Name of the kept CRC32 file beside the weights (``gfpgan_1.4.hash``), if upstream publishes one."""
        return self.hash_url.rsplit("/", 1)[-1] if self.hash_url else None

    def check_text(self) -> str:
        """What ``models list`` shows in the hash column."""
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 {self.sha256_prefix}... (prefix in the file name; full digest not published)"
        if self.hash_url:
            return f"sha256 not published; crc32 from upstream {self.hash_file}"
        return "no published hash: fetched unchecked"


def _ff(name: str, tag: str, kind: str, purpose: str, licence: str) -> WeightFile:
    return WeightFile(name, f"{name}.onnx", kind, purpose, f"{_FF}{tag}/{name}.onnx", licence,
                      hash_url=f"{_FF}{tag}/{name}.hash")


CATALOG: tuple[WeightFile, ...] = (
    WeightFile("s3fd", "s3fd-619a316812.pth", "detector", "S3FD face detector (extract --detector s3fd)",
               _FA + "s3fd-619a316812.pth", "BSD-3-Clause (face-alignment, Adrian Bulat)",
               sha256_prefix="619a316812", torch_hub=True),
    WeightFile("fan", "2DFAN4-11f355bf06.pth.tar", "landmarks", "2DFAN-4 68-point landmarks (extract --landmarks fan)",
               _FA + "2DFAN4-11f355bf06.pth.tar", "BSD-3-Clause (face-alignment, Adrian Bulat)",
               sha256_prefix="11f355bf06", torch_hub=True),
    _ff("gfpgan_1.4", "models-3.0.0", "enhancer", "GFPGAN 1.4 face restoration (merge --enhancer gfpgan_1.4)",
        "Apache-2.0 (TencentARC)"),
    _ff("codeformer", "models-3.0.0", "enhancer", "CodeFormer face restoration (merge --enhancer codeformer)",
        "S-Lab License 1.0, non-commercial (sczhou)"),
    _ff("gpen_bfr_512", "models-3.0.0", "enhancer", "GPEN-BFR 512 face restoration (merge --enhancer gpen_bfr_512)",
        "non-commercial (yangxy, as FaceFusion's model table states)"),
    _ff("xseg_1", "models-3.1.0", "occluder", "XSeg-style occlusion mask (merge --mask-mode occluder)",
        "not stated in FaceFusion's model table: ask upstream before commercial use"),
    _ff("xseg_2", "models-3.1.0", "occluder", "XSeg-style occlusion mask, second release",
        "not stated in FaceFusion's model table: ask upstream before commercial use"),
    _ff("bisenet_resnet_34", "models-3.0.0", "parser", "BiSeNet face parser, 19 regions (--mask-mode region:...)",
        "MIT (zllrunning/face-parsing.PyTorch)"),
)

_BY_NAME = {w.name: w for w in CATALOG}


def get_weight(name: str) -> WeightFile:
    """The catalogue entry ``name``; a :class:`FacelabError` listing the names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise FacelabError(f"unknown weight file {name!r}; choose one of: {', '.join(_BY_NAME)} "
                           "(`python main.py models list`)") from None


def weights_of(kind: str) -> list[WeightFile]:
    return [w for w in CATALOG if w.kind == kind]


def models_dir() -> Path:
    """Where weight files are fetched into: ``$FACELAB_MODELS`` if set, else the repository's ``models/``."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else REPO_MODELS


def torch_hub_dir() -> Path:
    """face-alignment's own cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``)."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(torch_home) / "hub" / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(xdg) / "torch" / "hub" / "checkpoints"


def search_dirs(entry: WeightFile | None = None) -> list[Path]:
    """Folders a weight file is looked for in, first match wins: the models folder, then (for face-alignment's
    files) torch hub's cache, then the repository's ``models/`` when ``$FACELAB_MODELS`` points elsewhere."""
    dirs = [models_dir()]
    if entry is None or entry.torch_hub:
        dirs.append(torch_hub_dir())
    if REPO_MODELS not in dirs:
        dirs.append(REPO_MODELS)
    return dirs


def find_file(entry: WeightFile) -> Path | None:
    for folder in search_dirs(entry):
        cand = folder / entry.file
        if cand.is_file():
            return cand
    return None


def resolve_onnx(name_or_path: str, kind: str) -> tuple[Path, WeightFile | None]:
    """A catalogue name of ``kind`` (looked up in the weight folders) or a path to an ``.onnx`` file.

    Raises :class:`FacelabError` naming ``models fetch`` and the folder to copy the file into when it is missing.
    """
    if name_or_path in _BY_NAME:
        entry = _BY_NAME[name_or_path]
        if entry.kind != kind:
            raise FacelabError(f"{name_or_path} is listed as {entry.kind}, not {kind}; choose one of: "
                               + ", ".join(w.name for w in weights_of(kind)))
        path = find_file(entry)
        if path is None:
            raise FacelabError(f"{entry.file} is not in {models_dir()}; run `python main.py models fetch "
                               f"{entry.name}` or download {entry.url} and copy it there")
        return path, entry
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() != ".onnx":
        raise FacelabError(f"{kind} {name_or_path!r} is neither a catalogue name ("
                           + ", ".join(w.name for w in weights_of(kind)) + ") nor an .onnx file")
    if not path.is_file():
        raise FacelabError(f"{kind} file {path} does not exist; give an existing .onnx file or a catalogue name")
    return path, None
