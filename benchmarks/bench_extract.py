"""Extract-stage speed on the sample woman video: faces/s, and stage time over bare detector + landmark time.

Run: ``python benchmarks/bench_extract.py [--quick]`` (quick = first 60 frames). The stage is timed whole (model
loading, decoding, checks, alignment, pose, JPEG writing) with one process and with two; the bare time is a plain
loop of the detector and the landmark model over the same decoded frames, model loading included.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facelab.extract import ExtractConfig, extract_faces  # noqa: E402
from facelab.workspace.images import list_images, read_image  # noqa: E402

SAMPLE = Path("/work/samples/WolfgangLanger_Pexels.mp4")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip().replace(" ", "_")
    except OSError:
        pass
    return platform.processor().replace(" ", "_") or "cpu"


def sample_video(tmp: Path) -> Path:
    """The woman video: the unpacked sample when present, else fetched like `workspace samples` does."""
    if SAMPLE.is_file():
        return SAMPLE
    from facelab.workspace import Workspace
    from facelab.workspace.samples import fetch_samples

    ws = Workspace(tmp / "ws")
    ws.root.mkdir(parents=True, exist_ok=True)
    fetch_samples(ws)
    return ws.video("src")


def frames_of(video: Path, out: Path, limit: int) -> Path:
    import imageio_ffmpeg

    out.mkdir(parents=True, exist_ok=True)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(video)]
    if limit:
        cmd += ["-frames:v", str(limit)]
    subprocess.run(cmd + [str(out / "%06d.png")], check=True)
    return out


def bare_seconds(frames: Path, cfg: ExtractConfig) -> tuple[float, int]:
    """Model loading plus detect + landmarks on every frame (decoding excluded); returns (seconds, faces)."""
    from facelab.detect import create_detector
    from facelab.landmarks import create_landmarks

    images = [read_image(p) for p in list_images(frames)]
    t0 = time.perf_counter()
    det = create_detector(cfg.detector, min_face=cfg.min_face)
    lmk = create_landmarks(cfg.landmarks)
    faces = 0
    for img in images:
        for d in det.detect(img):
            lmk.landmarks(img, d.box)
            faces += 1
    return time.perf_counter() - t0, faces


def run(quick: bool) -> list[dict]:
    import cv2

    cv2.setNumThreads(1)
    dev = cpu_name()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        frames = frames_of(sample_video(tmp), tmp / "data_src", 60 if quick else 0)
        n = len(list_images(frames))
        bare, bare_faces = bare_seconds(frames, ExtractConfig())
        rows = []
        for workers in (1, 2):
            res = extract_faces(frames, tmp / f"aligned_{workers}", ExtractConfig(workers=workers))
            rows.append({"name": f"extract_stage_over_bare_workers{workers}", "value": res.seconds / bare,
                         "target": "< 1.3", "unit": "x",
                         "detail": f"{n} frames 640x360, stage {res.seconds:.1f}s ({res.faces / res.seconds:.2f} "
                                   f"faces/s, {res.faces} faces), bare detect+landmarks {bare:.1f}s "
                                   f"({bare_faces} faces)", "device": dev})
            rows.append({"name": f"extract_faces_per_s_workers{workers}", "value": res.faces / res.seconds,
                         "target": "info", "unit": "faces/s", "detail": f"{n} frames", "device": dev})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first 60 frames only")
    args = ap.parse_args()
    for r in run(args.quick):
        target = r["target"] if r["target"] == "info" else r["target"].replace(" ", "")
        print(f"RATIO {r['name']} {r['value']:.3f} (target {target}) device={r['device']}  # {r['detail']}")


if __name__ == "__main__":
    main()
