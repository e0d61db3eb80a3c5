"""Extract-stage speed on the sample woman video (faces/s, stage time over bare detector + landmark time), recall
on photos from packages (benchmarks/photo_set.py), landmark consistency NME and the tracked share of a clip.

Run: ``python benchmarks/bench_extract.py [--quick] [--device cuda]`` (quick = first 60 frames; ``--device`` is the
torch device of the s3fd / fan backends: the default dlib backends run on the CPU whatever it says). The stage is
timed whole (model loading, decoding, checks, alignment, pose, JPEG writing) with one process and with two; the bare
time is a plain loop of the detector and the landmark model over the same decoded frames, model loading included.
On a shared machine wall times drift with the load of others; the CPU-time ratio is the stable measure of our
overhead.

Quality rows (``--quality-only`` runs just these; ``--quick`` leaves out the dlib-cnn run, several minutes):
recall counts, per photo, the accepted faces up to the number it holds (counted by eye, benchmarks/photo_set.py);
consistency NME lands each HOG-found face on its image rolled -30, -15, 15, 30 degrees and mirrored (with and
without roll), maps the points back and compares them with the points on the image itself, over the outer-eye
distance; the turning clip is made from the sample man's frames (turned, squeezed, covered, blanked); the video row
compares the default stage with a dlib-hog one-pass stage (no second look, no refine, no gap filling).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
    """Model loading plus detect + landmarks on every frame (decoding excluded): (wall s, CPU s, faces). With
    ``cfg.refine`` the landmark work is the refined fit's (three rolled starts rated by HOG on the aligned crop,
    one second pass), so the stage's ratio to it stays the stage's own overhead."""
    import cv2

    from facelab.align.geometry import face_transform, warp_to_face
    from facelab.detect import create_detector
    from facelab.landmarks import create_landmarks
    from facelab.landmarks.refine import fit_landmarks

    images = [read_image(p) for p in list_images(frames)]
    t0, c0 = time.perf_counter(), cpu_seconds()
    det = create_detector(cfg.detector, min_face=cfg.min_face)
    lmk = create_landmarks(cfg.landmarks)

    def score(img, lm):
        crop = warp_to_face(img, face_transform(lm, 160, "full"), 160, cv2.INTER_LINEAR)
        return max(det.hog.run(crop, 0, -2.0)[1], default=-2.0)

    faces = 0
    for img in images:
        for d in det.detect(img):
            if cfg.refine:
                fit_landmarks(lmk, img, d.box, lambda lm, img=img: score(img, lm))
            else:
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


# --- recall, landmark consistency and tracking ------------------------------------------------------------------

def photo_recall(photos, cfg: ExtractConfig, second_look: bool) -> tuple[int, int, float]:
    """(faces found, at most the number each photo holds; extra faces; seconds incl. model loading)."""
    from facelab.extract import FaceFinder

    t0 = time.perf_counter()
    finder = FaceFinder(cfg)
    found = extra = 0
    for _, image, n in photos:
        k = len(finder.find(image, second_look=second_look).faces)
        found, extra = found + min(k, n), extra + max(0, k - n)
    return found, extra, time.perf_counter() - t0


def consistency_nme(photos, refine: bool) -> tuple[float, float, float, int]:
    """(mean NME over every roll and mirror, worst per-variant mean, mirror-only NME, faces) on the photo set's
    HOG-found faces: each face is landmarked on its image rolled -30..+30 degrees and mirrored, mapped back."""
    from facelab.detect import create_detector
    from facelab.extract import FaceFinder
    from facelab.landmarks.consistency import consistency

    finder = FaceFinder(ExtractConfig(refine=refine, second_look=False))
    hog = create_detector("dlib-hog")
    results = []
    for _, image, _ in photos:
        for det in hog.detect(image):
            lm = finder.landmarks(image, det.box)
            if finder._check(image, det, lm, det.box)[0] is None:  # a real face, not a false positive
                results.append(consistency(finder.landmarks, image, det.box))
    per = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
    return float(np.mean(list(per.values()))), max(per.values()), per["m+0"], len(results)


def turning_clip(video: Path, out: Path, frames: int = 72) -> Path:
    """A clip where the face turns away and back: the sample man's frames rolled up to 45 degrees and back,
    squeezed sideways (a head turning away, seen from the camera) on frames 8-13 and 58-61, a hand-sized block
    over the face on frames 20-22 and frames 35-37 blanked (a fade)."""
    import cv2

    from facelab.workspace.images import write_image

    src = frames_of(video, out.parent / "src_frames", frames)
    out.mkdir(parents=True, exist_ok=True)
    hand = np.clip(np.random.default_rng(0).normal((200, 160, 140), 25, (150, 150, 3)), 0, 255).astype(np.uint8)
    for i, p in enumerate(list_images(src)):
        img = read_image(p)
        h, w = img.shape[:2]
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), 45.0 * np.sin(np.pi * i / (frames - 1)), 1.0)
        squeeze = 0.3 if 8 <= i <= 13 or 58 <= i <= 61 else 1.0
        mat[0] = mat[0] * squeeze
        mat[0, 2] += w / 2 * (1 - squeeze)  # keep the centre in place
        img = cv2.warpAffine(img, mat, (w, h), borderMode=cv2.BORDER_REFLECT101)
        if i in (20, 21, 22):  # skin-toned and textured like a hand, not a flat patch
            img[h // 4: h // 4 + 150, w // 2 - 75: w // 2 + 75] = hand
        if i in (35, 36, 37):
            img[:] = 0
        write_image(out / f"{i + 1:06d}.png", img)
    return out


def track_run(frames: Path, out: Path, cfg: ExtractConfig) -> tuple[float, int, int, float, str]:
    """(share of frames with a face file, found again, interpolated, seconds, frames without one) of one run."""
    res = extract_faces(frames, out, cfg)
    from facelab.workspace.faces import list_faces, read_meta

    with_face = {Path(read_meta(p).source_frame).stem for p in list_faces(out)}
    missing = [int(p.stem) - 1 for p in list_images(frames) if p.stem not in with_face]
    return len(with_face) / res.frames, res.found_again, res.interpolated, res.seconds, _runs(missing)


def _runs(values: list[int]) -> str:
    """``[8, 9, 10, 35]`` -> ``"8-10,35"``."""
    out: list[list[int]] = []
    for v in values:
        if out and v == out[-1][-1] + 1:
            out[-1].append(v)
        else:
            out.append([v])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in out) or "none"


def quality_rows(quick: bool) -> list[dict]:
    """Recall on the photo set, consistency NME, and the tracked share on a turning clip."""
    from photo_set import load_photos

    dev = device_name()
    rows = []
    try:
        photos = load_photos()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"SKIP photo rows: the photo set could not be fetched ({exc}); run once with network")
        photos = []
    if photos:
        total = sum(n for _, _, n in photos)
        hog = photo_recall(photos, ExtractConfig(second_look=False, refine=False), False)
        default = photo_recall(photos, ExtractConfig(), True)
        cnn = None if quick else photo_recall(photos, ExtractConfig(detector="dlib-cnn", refine=False), False)
        for name, r in (("dlib-hog", hog), ("default", default), ("dlib-cnn", cnn)):
            if r is None:
                continue
            rows.append({"name": f"extract_photo_recall_{name}", "value": r[0] / total, "target": "info",
                         "unit": "share", "device": dev, "detail": f"{r[0]}/{total} faces in {len(photos)} photos, "
                         f"{r[1]} extra, {r[2]:.1f}s"})
        if cnn is not None:
            rows.append({"name": "extract_photo_time_default_over_cnn", "value": default[2] / cnn[2],
                         "target": "< 0.333", "unit": "x", "device": dev,
                         "detail": f"default {default[2]:.1f}s ({default[0]} faces), dlib-cnn {cnn[2]:.1f}s "
                                   f"({cnn[0]} faces)"})
        for refine in (False, True):
            mean, worst, mirror, n = consistency_nme(photos, refine)
            label = "refined" if refine else "one_pass"
            rows.append({"name": f"landmark_consistency_nme_{label}", "value": mean, "target": "<= 0.03",
                         "unit": "NME", "device": dev, "detail": f"{n} faces, rolls -30..+30 and mirror; worst "
                         f"variant {worst:.4f}, mirror only (frontal) {mirror:.4f}"})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = turning_clip(sample_videos()[1], tmp / "turning" / "data_dst", 40 if quick else 72)
        share_hog = track_run(clip, tmp / "a_hog", ExtractConfig(second_look=False, refine=False, max_gap=0))
        share = track_run(clip, tmp / "a_def", ExtractConfig())
        rows.append({"name": "extract_turning_clip_tracked_share", "value": share[0], "target": "info",
                     "unit": "share", "device": dev, "detail": f"default: {share[1]} found again, {share[2]} "
                     f"interpolated, frames without a face file {share[4]}, {share[3]:.1f}s; dlib-hog alone "
                     f"{share_hog[0]:.3f} (without: {share_hog[4]}) in {share_hog[3]:.1f}s"})
        man = track_run(frames_of(sample_videos()[1], tmp / "man", 0), tmp / "m_def", ExtractConfig())
        rows.append({"name": "extract_sample_man_share", "value": man[0], "target": "1.0", "unit": "share",
                     "device": dev, "detail": f"single_face.mp4, default: frames without a face file {man[4]}, "
                     f"{man[2]} interpolated, {man[3]:.1f}s"})
        frames = frames_of(sample_videos()[0], tmp / "woman", 60 if quick else 0)
        hog_v = track_run(frames, tmp / "w_hog", ExtractConfig(second_look=False, refine=False, max_gap=0))
        def_v = track_run(frames, tmp / "w_def", ExtractConfig())
        rows.append({"name": "extract_video_default_over_hog_wall", "value": def_v[3] / hog_v[3], "target": "< 1.5",
                     "unit": "x", "device": dev, "detail": f"sample woman video: default {def_v[3]:.1f}s, share "
                     f"{def_v[0]:.3f}; dlib-hog one pass {hog_v[3]:.1f}s, share {hog_v[0]:.3f}"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first 60 frames only")
    ap.add_argument("--device", default="auto", help="torch device of the s3fd / fan backends (auto|cpu|cuda)")
    ap.add_argument("--quality-only", action="store_true", help="recall, consistency and tracking rows only")
    args = ap.parse_args()
    if not args.quality_only:
        print_rows(run(args.quick, args.device))
    print_rows(quality_rows(args.quick))


if __name__ == "__main__":
    main()
