"""Extract-stage speed on the sample woman video: faces/s, and stage time over bare detector + landmark time.

Run: ``python benchmarks/bench_extract.py [--quick] [--device cuda]`` (quick = first 60 frames; ``--device`` is the
torch device of the s3fd / fan backends: the default dlib backends run on the CPU whatever it says). The stage is
timed whole (model loading, decoding, checks, alignment, pose, JPEG writing) with one process and with two; the bare
time is a plain loop of the detector and the landmark model over the same decoded frames, model loading included.
On a shared machine wall times drift with the load of others; the CPU-time ratio is the stable measure of our
overhead.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import device_name, print_rows, sample_videos

from facelab.extract import ExtractConfig, extract_faces  # noqa: E402
from facelab.workspace.images import list_images, read_image  # noqa: E402


def frames_of(video: Path, out: Path, limit: int) -> Path:
    import imageio_ffmpeg

    out.mkdir(parents=True, exist_ok=True)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(video)]
    if limit:
        cmd += ["-frames:v", str(limit)]
    subprocess.run(cmd + [str(out / "%06d.png")], check=True)
    return out


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (worker processes), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(frames: Path, cfg: ExtractConfig) -> tuple[float, float, int]:
    """Model loading plus detect + landmarks on every frame (decoding excluded): (wall s, CPU s, faces)."""
    from facelab.detect import create_detector
    from facelab.landmarks import create_landmarks

    images = [read_image(p) for p in list_images(frames)]
    t0, c0 = time.perf_counter(), cpu_seconds()
    det = create_detector(cfg.detector, min_face=cfg.min_face)
    lmk = create_landmarks(cfg.landmarks)
    faces = 0
    for img in images:
        for d in det.detect(img):
            lmk.landmarks(img, d.box)
            faces += 1
    return time.perf_counter() - t0, cpu_seconds() - c0, faces


def stage(frames: Path, out: Path, workers: int, interpolation: str = "cubic",
          device: str = "auto") -> tuple[float, float, int]:
    """The whole extract stage: (wall s, CPU s incl. worker processes, faces)."""
    c0 = cpu_seconds()
    res = extract_faces(frames, out, ExtractConfig(workers=workers, interpolation=interpolation, device=device))
    return res.seconds, cpu_seconds() - c0, res.faces


def run(quick: bool, device: str = "auto") -> list[dict]:
    """Bare runs before and after the stage runs are averaged, so a change of machine load in between evens out."""
    import cv2

    cv2.setNumThreads(1)
    dev = device_name()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        frames = frames_of(sample_videos()[0], tmp / "data_src", 60 if quick else 0)
        n = len(list_images(frames))
        b1 = bare(frames, ExtractConfig())
        s1 = stage(frames, tmp / "aligned_1", 1, device=device)
        s2 = stage(frames, tmp / "aligned_2", 2, device=device)
        s1l = stage(frames, tmp / "aligned_1l", 1, "lanczos4", device=device)
        b2 = bare(frames, ExtractConfig())
    b_wall, b_cpu = (b1[0] + b2[0]) / 2, (b1[1] + b2[1]) / 2
    base = f"{n} frames 640x360; bare detect+landmarks {b_wall:.1f}s wall / {b_cpu:.1f}s CPU ({b1[2]} faces)"
    return [
        {"name": "extract_stage_over_bare_cpu_workers1", "value": s1[1] / b_cpu, "target": "< 1.3", "unit": "x",
         "detail": f"{base}; stage {s1[1]:.1f}s CPU", "device": dev},
        {"name": "extract_stage_over_bare_cpu_workers1_lanczos4", "value": s1l[1] / b_cpu, "target": "info",
         "unit": "x", "detail": f"{base}; stage with --interpolation lanczos4 {s1l[1]:.1f}s CPU", "device": dev},
        {"name": "extract_stage_over_bare_wall_workers1", "value": s1[0] / b_wall, "target": "< 1.3", "unit": "x",
         "detail": f"{base}; stage {s1[0]:.1f}s wall, {s1[2] / s1[0]:.2f} faces/s", "device": dev},
        {"name": "extract_stage_over_bare_wall_workers2", "value": s2[0] / b_wall, "target": "< 1.3", "unit": "x",
         "detail": f"{base}; stage {s2[0]:.1f}s wall, {s2[2] / s2[0]:.2f} faces/s, {s2[1]:.1f}s CPU in all",
         "device": dev},
        {"name": "extract_faces_per_s_workers1", "value": s1[2] / s1[0], "target": "info", "unit": "faces/s",
         "detail": f"{s1[2]} faces", "device": dev},
        {"name": "extract_faces_per_s_workers2", "value": s2[2] / s2[0], "target": "info", "unit": "faces/s",
         "detail": f"{s2[2]} faces", "device": dev},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first 60 frames only")
    ap.add_argument("--device", default="auto", help="torch device of the s3fd / fan backends (auto|cpu|cuda)")
    args = ap.parse_args()
    print_rows(run(args.quick, args.device))


if __name__ == "__main__":
    main()
