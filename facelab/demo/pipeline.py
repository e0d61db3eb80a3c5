"""The demo: the whole job on the two sample videos, each step a stage function, each resumable.

``DEMO_STEPS`` is the ordered list the CLI walks; every step takes ``(ws, cfg, progress)`` and returns a small
summary dict. Rerunning the demo resumes: finished frames and faces are skipped and training continues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.utils.device import select_device
from facelab.utils.progress import Progress
from facelab.workspace import Workspace, list_images, read_face, read_image, read_meta, write_image
from facelab.workspace.faces import list_faces, readable

#: The CPU configuration that gave the sharpest swap for ten minutes of two cores in benchmarks/bench_quality.py
#: (full face at 96 px: its resolution ceiling on the sample clip is 5x that of a 64 px whole face).
CPU_ARCH: dict[str, Any] = {"resolution": 96, "face_type": "full", "archi": "df-ud", "ae_dims": 128,
                            "e_dims": 24, "d_dims": 24, "d_mask_dims": 12}
#: On a GPU, DeepFaceLab's default SAEHD (liae-ud, 128 px) with the demo's face type.
GPU_ARCH: dict[str, Any] = {"face_type": "whole_face"}


@dataclass(frozen=True)
class DemoConfig:
    minutes: float = 10.0  # training time budget
    device: str = "auto"
    model_name: str = "demo"
    warp_name: str = "demo_warp"  # the training-free model shown beside the trained one
    batch_size: int = 8
    lr: float = 0.0  # 0 = the model's default schedule (raised on CPU for the short budget)
    grid_frames: int = 4
    samples_from: str | None = None  # folder or .whl with the sample videos (offline)

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError("minutes must be > 0")


def step_samples(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Put the two sample videos into the workspace (kept when already there)."""
    from facelab.workspace.samples import fetch_samples

    ws.init()
    res = fetch_samples(ws, Path(cfg.samples_from) if cfg.samples_from else None)
    progress(1)
    return {"written": len(res.written), "kept": len(res.kept)}


def step_frames(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Every frame of both videos into data_src/ and data_dst/."""
    from facelab.video.extract import extract_frames

    out = {}
    for side in ("src", "dst"):
        res = extract_frames(ws.video(side), ws.frames(side), fps=0, fmt="png", progress=progress)
        out[side] = f"{res.total} frames ({res.skipped} already there)"
    return out


def step_faces(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Aligned whole faces of both sides (destination landmarks smoothed over time)."""
    from facelab.extract.config import ExtractConfig
    from facelab.extract.stage import extract_faces

    out = {}
    for side in ("src", "dst"):
        ecfg = ExtractConfig(size=256, max_faces=1, smooth=(side == "dst"))
        res = extract_faces(ws.frames(side), ws.aligned(side), ecfg, progress, source_root=ws.root)
        out[side] = f"{res.faces} faces from {res.frames} frames ({res.no_face} without a face, {res.errors} failed)"
        if res.faces + res.skipped == 0:
            raise FacelabError(f"no face found in {ws.frames(side)}; check the video data_{side}.*")
    return out


def demo_train_options(cfg: DemoConfig, device: torch.device):
    """Training schedule for the time budget: a higher learning rate on CPU, where iterations are few."""
    from facelab.train.options import TrainOptions

    cpu = device.type == "cpu"
    lr = cfg.lr or (2e-4 if cpu else 5e-5)
    return TrainOptions(batch_size=cfg.batch_size, lr=lr, max_minutes=cfg.minutes, autosave_minutes=5.0,
                        random_src_flip=True, backups=1, workers=-1)


def step_train(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Train (or continue) the demo model for the time budget (--minutes)."""
    from facelab.train.loop import train

    device = select_device(cfg.device)
    arch = CPU_ARCH if device.type == "cpu" else GPU_ARCH
    opts = demo_train_options(cfg, device)
    res = train(ws, cfg.model_name, "saehd", arch if not ws.model(cfg.model_name).exists() else {}, opts, device,
                progress=progress)
    return {"iterations": res.iteration, "ms/iter": round(res.ms_per_iter, 1), "src loss": round(res.src_loss, 4),
            "dst loss": round(res.dst_loss, 4), "device": str(device)}


def step_index(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Index the source faces for the training-free swap (seconds; shown beside the trained one)."""
    from facelab.train.loop import train
    from facelab.train.options import TrainOptions

    try:
        res = train(ws, cfg.warp_name, "warp", {}, TrainOptions(), torch.device("cpu"), progress=progress)
    except FacelabError as exc:  # a clip with too few usable source faces: the demo goes on without it
        return {"training-free model": f"skipped: {exc}"}
    return {"training-free model": str(res.model_dir), "seconds": round(res.seconds, 1)}


def step_merge(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Swap every destination frame with the trained model (overlay, landmark hull mask, rct colour)."""
    from facelab.merge.config import MergeConfig
    from facelab.merge.stage import merge_frames

    res = merge_frames(ws, ws.model(cfg.model_name), MergeConfig(), select_device(cfg.device), force=True,
                       progress=progress)
    return {"merged": res.merged, "copied (no face)": res.copied_no_face, "failed": len(res.failures)}


def step_encode(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """result.mp4 with the destination's audio and frame rate."""
    from facelab.video.encode import encode_frames

    encode_frames(ws.merged, ws.result, reference_video=ws.video("dst"), progress=progress)
    return {"result": str(ws.result)}


def step_evaluate(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """Measure both swaps: sharpness, identity, expression, held-out reconstruction (evaluation.json / .png)."""
    from facelab.evaluate.report import EvaluateConfig, evaluate_swap, write_report
    from facelab.evaluate.summary import row_lines

    evaluation = evaluate_swap(ws, EvaluateConfig(model=cfg.model_name, device=cfg.device), progress)
    write_report(evaluation, ws.root / "evaluation.json", ws.root / "evaluation.png")
    return {**row_lines(evaluation.report), "report": str(ws.root / "evaluation.png")}


def step_picture(ws: Workspace, cfg: DemoConfig, progress: Progress) -> dict:
    """demo.png: the destination beside the trained and the training-free swap, faces close up."""
    from facelab.demo.grid import demo_grid

    merged = list_images(ws.merged)
    if not merged:
        raise FacelabError(f"no merged frames in {ws.merged}; the merge step did not run")
    boxes = _face_boxes(ws)
    with_face = [p for p in merged if p.stem in boxes] or merged
    picks = [with_face[i] for i in np.linspace(0, len(with_face) - 1, cfg.grid_frames).round().astype(int)]
    originals = [read_image(_frame_for(ws, p.stem)) for p in picks]
    swaps = {"trained": [read_image(p) for p in picks]}
    warp = _training_free_frames(ws, cfg, [p.stem for p in picks])
    if warp is not None:
        swaps["training-free"] = warp
    src_faces = list_faces(ws.aligned("src"))
    source = read_face(src_faces[len(src_faces) // 2]).image
    path = ws.root / "demo.png"
    close = [boxes[p.stem] for p in picks] if all(p.stem in boxes for p in picks) else None
    write_image(path, demo_grid(originals, swaps, source, close))
    progress(1)
    return {"picture": str(path)}


def _training_free_frames(ws: Workspace, cfg: DemoConfig, stems: list[str]) -> list[np.ndarray] | None:
    """The picked frames swapped by the training-free model (rendered in memory), or None without one."""
    from facelab.merge.config import MergeConfig, MergeSettings
    from facelab.merge.predict import load_predictor
    from facelab.merge.preview import render_frames
    from facelab.merge.stage import MergePaths
    from facelab.utils.checkpoint import has_checkpoint

    if not has_checkpoint(ws.model(cfg.warp_name)):
        return None
    predictor = load_predictor(ws.model(cfg.warp_name), torch.device("cpu"))
    out = render_frames(MergePaths.of(ws), predictor, MergeSettings(MergeConfig()), stems)
    return [out[s] for s in stems]


def _face_boxes(ws: Workspace) -> dict[str, tuple[float, float, float, float]]:
    """Detector box of the first face of each destination frame, by frame stem."""
    boxes = {}
    for _, meta in readable(list_faces(ws.aligned("dst")), read_meta):
        if meta.face_index == 0:
            boxes[meta.frame_stem] = meta.box
    return boxes


def _frame_for(ws: Workspace, stem: str) -> Path:
    for p in list_images(ws.frames("dst")):
        if p.stem == stem:
            return p
    raise FacelabError(f"frame {stem} of {ws.merged} is missing from {ws.frames('dst')}")


DEMO_STEPS: tuple[tuple[str, Callable[[Workspace, DemoConfig, Progress], dict]], ...] = (
    ("samples", step_samples),
    ("frames", step_frames),
    ("faces", step_faces),
    ("train", step_train),
    ("index", step_index),
    ("merge", step_merge),
    ("encode", step_encode),
    ("evaluate", step_evaluate),
    ("picture", step_picture),
)
