"""Merge speed: frames/s on the man video (640x360) and on a 1280x720 upscale of it, split model vs the rest, and
the non-model work per 720p frame over the bare minimum (one warpAffine + one Gaussian blur + one alpha composite
of that frame), measured in the same run. Target: under 4x for overlay + rct.

    python benchmarks/bench_merge.py [--quick] [--device cuda]

The model is a randomly initialised default-size SAEHD (timing only). Frames come from the sample video when it is
present (fetched and cached like ``workspace samples``, or from ``$FACELAB_SAMPLES``), else from a clip made of the
astronaut. ``--device`` is where the model runs (default: the CPU).

Model files (``--model-files`` runs only this part): the cost per face of a face enhancer, the occluder and the face
parser at merge time (warp onto the template, onnxruntime, warp back), next to the swap model's own cost per face,
measured in the same run. The real files are used when ``models fetch`` has put them in place (``gfpgan_1.4``,
``xseg_1``, ``bisenet_resnet_34``, or ``--enhancer NAME|FILE``); otherwise a stand-in of the same signature and
input size (one 3x3 convolution) measures the overhead around the network only, and the row says so.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import device_name, print_rows, sample_videos

from facelab.align import face_transform, transform_points  # noqa: E402
from facelab.errors import FacelabError  # noqa: E402
from facelab.merge.config import MergeConfig, MergeSettings  # noqa: E402
from facelab.merge.plan import build_plan  # noqa: E402
from facelab.merge.predict import ModelPredictor  # noqa: E402
from facelab.merge.render import render_frame  # noqa: E402
from facelab.merge.stage import ColorStats, Prepared, crop_faces, face_inputs, merge_frames, predict_batches  # noqa
from facelab.workspace import FaceMeta, Workspace, list_images, read_image, write_face, write_image  # noqa: E402

TARGET = 4.0


def _videos() -> tuple[Path, Path] | None:
    try:
        return sample_videos()
    except FacelabError:
        return None


def make_frames(out: Path, n: int, size: tuple[int, int], video: Path | None = None) -> None:
    """``n`` frames of ``size`` (w, h) into ``out``: decoded from ``video`` (default: the man sample video), or the
    astronaut drifting when the samples cannot be had."""
    out.mkdir(parents=True, exist_ok=True)
    videos = _videos() if video is None else None
    video = video or (videos[1] if videos else None)
    if video is not None:
        import imageio_ffmpeg

        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-frames:v", str(n),
               "-vf", f"scale={size[0]}:{size[1]}:flags=bicubic", str(out / "%06d.png")]
        subprocess.run(cmd, check=True)
        return
    from skimage import data

    base = cv2.resize(data.astronaut(), (size[1], size[1]))
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    for i in range(n):
        frame = canvas.copy()
        x = (size[0] - size[1]) // 2 + i
        frame[:, x:x + size[1]] = base[:, :min(size[1], size[0] - x)]
        write_image(out / f"{i + 1:06d}.png", frame)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    import dlib
    import face_recognition_models as frm

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(frm.pose_predictor_model_location())


def landmarks_of(frame: np.ndarray) -> np.ndarray | None:
    """68 landmarks of the largest face (dlib HOG + shape predictor), None when there is no face."""
    detector, shape = _dlib_models()
    rects = sorted(detector(frame, 0), key=lambda r: -r.area())
    if not rects:
        return None
    return np.array([(p.x, p.y) for p in shape(frame, rects[0]).parts()], np.float64)


def add_face_files(ws: Workspace) -> int:
    """Detect and write a whole-face file per frame, as extract does."""
    count = 0
    for path in list_images(ws.frames("dst")):
        frame = read_image(path)
        lm = landmarks_of(frame)
        if lm is None:
            continue
        mat = face_transform(lm, 256, "whole_face")
        face = cv2.warpAffine(frame, mat, (256, 256), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
        meta = FaceMeta.create(source_frame=ws.relative(path), frame_size=(frame.shape[1], frame.shape[0]),
                               face_index=0, face_type="whole_face", size=256, box=(*lm.min(0), *lm.max(0)),
                               landmarks_frame=lm, landmarks_face=transform_points(lm, mat), matrix=mat,
                               detector="dlib-hog", landmarks_backend="dlib68")
        write_face(ws.aligned("dst") / f"{path.stem}_0.jpg", face, meta)
        count += 1
    return count


def minimal_seconds(frame: np.ndarray, reps: int) -> float:
    """One warpAffine + one GaussianBlur + one alpha composite of the whole frame (float32), best of ``reps``."""
    h, w = frame.shape[:2]
    f = frame.astype(np.float32) / 255.0
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.02)
    mask = np.zeros((h, w), np.float32)
    cv2.circle(mask, (w // 2, h // 2), h // 4, 1.0, -1)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        warped = cv2.warpAffine(f, mat, (w, h), flags=cv2.INTER_LINEAR)
        m = cv2.GaussianBlur(mask, (21, 21), 0)[..., None]
        out = f * (1.0 - m) + warped * m
        best = min(best, time.perf_counter() - t0)
    assert out.shape == f.shape
    return best


def render_seconds(ws: Workspace, predictor: ModelPredictor, cfg: MergeConfig, reps: int) -> float:
    """Median seconds of the in-memory non-model work of one frame: crop, colour statistics, and render_frame
    (mask, erode/blur, colour transfer, blend, paste back) -- without reading or writing files."""
    settings = MergeSettings(cfg)
    plan = build_plan(ws.frames("dst"), ws.aligned("dst"), settings)
    frame = next(f for f in plan.frames if f.faces)
    image = read_image(frame.path)
    stats = ColorStats(plan, predictor)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        mats, crops = crop_faces(image, frame, predictor)
        item = Prepared(frame, image, mats, crops, [])
        stats.add(item)
        t_model = time.perf_counter()
        predict_batches([item], predictor, 1)
        t_model = time.perf_counter() - t_model
        faces = face_inputs(item, predictor, stats, cfg.color_smooth)
        render_frame(image, faces, cfg)
        times.append(time.perf_counter() - t0 - t_model)
    return float(np.median(times))


def bench_size(root: Path, name: str, size: tuple[int, int], n: int, predictor: ModelPredictor,
               device: str) -> list[dict]:
    ws = Workspace(root / name)
    ws.init()
    make_frames(ws.frames("dst"), n, size)
    faces = add_face_files(ws)
    cfg = MergeConfig(mode="overlay", color="rct", batch=8)
    res = merge_frames(ws, None, cfg, predictor=predictor, force=True)
    fps = res.merged / res.seconds
    rest = (res.seconds - res.model_seconds) / max(res.merged, 1)
    rows = [
        {"name": f"merge_fps_{name}", "value": fps, "target": None, "unit": "frames/s",
         "detail": f"{res.merged} frames ({faces} faces), workers={os.cpu_count()}, model {res.model_seconds:.2f} s "
                   f"of {res.seconds:.2f} s wall, rest {rest * 1000:.1f} ms/frame", "device": device},
        {"name": f"merge_model_share_{name}", "value": res.model_seconds / res.seconds, "target": None,
         "unit": "fraction of wall time in the model", "detail": "", "device": device},
    ]
    if size[1] >= 720:
        frame = read_image(list_images(ws.frames("dst"))[0])
        base = minimal_seconds(frame, 20)
        compute = render_seconds(ws, predictor, cfg, 10)
        rows.append({"name": "merge_nonmodel_720p_over_minimal", "value": compute / base, "target": f"< {TARGET}",
                     "unit": "ratio", "detail": f"non-model {compute * 1000:.1f} ms vs warp+blur+composite "
                     f"{base * 1000:.1f} ms per 1280x720 frame (overlay + rct, in memory)", "device": device})
        inline = merge_frames(ws, None, MergeConfig(mode="overlay", color="rct", workers=0), predictor=predictor,
                              force=True)
        with_io = (inline.seconds - inline.model_seconds) / max(inline.merged, 1)
        rows.append({"name": "merge_nonmodel_with_png_io_720p_over_minimal", "value": with_io / base, "target": None,
                     "unit": "ratio", "detail": f"{with_io * 1000:.1f} ms per frame including PNG decode + two PNG "
                     "encodes, one process", "device": device})
    return rows


class SourceFaces:
    """Stand-in for a perfectly trained model: the source person's aligned faces in turn, whatever the input.
    It isolates what the merge settings do to the colour seam from what a model would learn."""

    def __init__(self, faces: list[np.ndarray], face_type: str) -> None:
        self.faces = faces
        self.resolution = faces[0].shape[0]
        self.face_type = face_type
        self.i = 0

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray | None = None, keys=()):
        out = [self.faces[(self.i + k) % len(self.faces)] for k in range(len(crops))]
        self.i += len(crops)
        ones = np.ones((len(crops), self.resolution, self.resolution), np.float32)
        return np.stack(out), ones, ones.copy()


def seam_delta_e(ws: Workspace) -> float:
    """Mean Lab distance between the bands just inside (mask > 0.9) and just outside (mask = 0) the face mask."""
    def lab(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)

    values = []
    kernel = np.ones((9, 9), np.uint8)
    for path in list_images(ws.merged):
        mask = read_image(ws.merged_mask / path.name, grey=True)
        if not mask.any():
            continue
        inner, outer = mask > 229, mask == 0
        inner_band = inner & (cv2.dilate((~inner).astype(np.uint8), kernel) > 0)
        outer_band = outer & (cv2.dilate((~outer).astype(np.uint8), kernel) > 0)
        img = lab(read_image(path))
        values.append(float(np.linalg.norm(img[inner_band].mean(0) - img[outer_band].mean(0))))
    return float(np.mean(values))


def bench_seam(root: Path, n: int, device: str) -> list[dict]:
    """Colour seam of the woman's face merged onto the man (overlay, dst mask): rct over none, in excess of the
    seam the original frames already have at the same place (skin vs surroundings)."""
    videos = _videos()
    if videos is None:
        return []
    ws = Workspace(root / "seam")
    ws.init()
    make_frames(ws.frames("dst"), n, (640, 360))
    add_face_files(ws)
    make_frames(ws.frames("src"), max(8, n // 3), (640, 360), videos[0])
    size, face_type = 192, "whole_face"
    faces = []
    for path in list_images(ws.frames("src")):
        img = read_image(path)
        lm = landmarks_of(img)
        if lm is not None:
            faces.append(cv2.warpAffine(img, face_transform(lm, size, face_type), (size, size),
                                        flags=cv2.INTER_CUBIC).astype(np.float32) / 255.0)
    excess = {}
    for color in ("none", "rct"):
        merge_frames(ws, None, MergeConfig(mode="original", color="none", workers=0), force=True,
                     predictor=SourceFaces(faces, face_type))
        base = seam_delta_e(ws)
        merge_frames(ws, None, MergeConfig(mode="overlay", color=color, workers=0), force=True,
                     predictor=SourceFaces(faces, face_type))
        excess[color] = seam_delta_e(ws) - base
    return [{"name": "merge_seam_excess_rct_over_none", "value": excess["rct"] / excess["none"], "target": "< 1",
             "unit": "ratio", "detail": f"seam Delta-E above the original's: rct {excess['rct']:.2f}, none "
             f"{excess['none']:.2f} (woman's faces on the man's frames)", "device": device}]


def _stand_in(path: Path, kind: str) -> Path:
    """An ONNX file with the published signature of ``kind`` and one 3x3 convolution: the overhead, not the net."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    size, shape_in, shape_out, c_out = {"enhancer": (512, ["N", 3, 512, 512], ["N", 3, 512, 512], 3),
                                        "occluder": (256, ["N", 3, 256, 256], ["N", 1, 256, 256], 1),
                                        "parser": (512, ["N", 3, 512, 512], ["N", 19, 512, 512], 19)}[kind]
    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.1, (c_out, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape_in)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape_out)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _per_face(fn, batch: int, reps: int) -> float:
    fn()  # warm-up (session set-up, allocations)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / (reps * batch)


def bench_model_files(root: Path, predictor, device: str, onnx_device: str, enhancer: str = "gfpgan_1.4",
                      batch: int = 8, reps: int = 2) -> list[dict]:
    """Cost per face of the enhancer, occluder and parser on real face crops at the model's resolution."""
    from skimage import data

    from facelab.masks.onnx_masks import FaceParser, Occluder, open_occluder, open_parser
    from facelab.merge.enhance import FaceEnhancer, open_enhancer

    image = data.astronaut()
    lm = landmarks_of(image)
    r = predictor.resolution
    mat = face_transform(lm, r, predictor.face_type)
    crop = cv2.warpAffine(image, mat, (r, r), flags=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    crops = np.repeat(crop[None], batch, 0)
    lms = np.repeat(transform_points(lm, mat)[None], batch, 0)
    model_s = _per_face(lambda: predictor(crops, lms), batch, reps)

    def opened(open_real, name, cls, kind):
        try:
            return open_real(name, onnx_device), f"{name} file"
        except FacelabError:
            return cls.open(_stand_in(root / f"{kind}.onnx", kind), onnx_device), f"stand-in for {name} (no file)"

    enh, enh_what = opened(open_enhancer, enhancer, FaceEnhancer, "enhancer")
    occ, occ_what = opened(open_occluder, "xseg_1", Occluder, "occluder")
    par, par_what = opened(open_parser, "bisenet_resnet_34", FaceParser, "parser")
    rows = [{"name": "merge_model_ms_per_face", "value": model_s * 1000, "target": None, "unit": "ms/face",
             "detail": f"swap model at {r} px, batch {batch}", "device": device}]
    for name, what, fn, size in (
            ("merge_enhancer_ms_per_face", enh_what, lambda: enh.enhance(crops, lms), enh.size),
            ("merge_occluder_ms_per_face", occ_what, lambda: occ.masks(crops), occ.size),
            ("merge_parser_ms_per_face", par_what, lambda: par.masks(crops, ["skin", "nose", "mouth"]), par.size)):
        sec = _per_face(fn, batch, reps)
        rows.append({"name": name, "value": sec * 1000, "target": None, "unit": "ms/face",
                     "detail": f"{what}, {size} px input, batch {batch}; {sec / model_s:.3g}x the swap model's cost "
                               f"per face", "device": f"{device}, onnxruntime {onnx_device}"})
    return rows


def run(quick: bool, device_choice: str = "cpu", model_files: bool = False, enhancer: str = "gfpgan_1.4"
        ) -> list[dict]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from facelab.models import create_model
    from facelab.utils.device import select_device

    torch.manual_seed(0)
    model_device = select_device(device_choice)
    predictor = ModelPredictor(create_model("saehd", None), model_device)
    device = device_name(model_device)
    n = 12 if quick else 72
    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmp:
        onnx_device = "cuda" if model_device.type == "cuda" else "cpu"
        files = bench_model_files(Path(tmp), predictor, device, onnx_device, enhancer, reps=1 if quick else 3)
        if model_files:
            return files
        rows = files + bench_size(Path(tmp), "360p", (640, 360), n, predictor, device)
        rows += bench_size(Path(tmp), "720p", (1280, 720), n, predictor, device)
        rows += bench_seam(Path(tmp), n, device)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 frames instead of 72")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda or auto")
    parser.add_argument("--model-files", action="store_true", help="only the enhancer / occluder / parser costs")
    parser.add_argument("--enhancer", default="gfpgan_1.4", help="enhancer to time: a catalogue name or .onnx file")
    args = parser.parse_args()
    print_rows(run(args.quick, args.device, args.model_files, args.enhancer))


if __name__ == "__main__":
    main()
