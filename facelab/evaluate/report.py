"""The swap report: identity, expression, pose, sharpness, structure and stability measured on sampled frames, for
the merged frames in the workspace and, on the same frames, for every other swap model beside them.

Rows: ``merged`` (the frames in ``data_dst/merged``, from the model merge recorded, else ``--model``), then each
other swap model of the workspace rendered in memory with the default merge settings; the training-free model is
always a row (built in memory from the source faces when the workspace has none), so a report always shows what
the pipeline does without training beside what training adds. Each row also gets the sharpness a perfect model of
its resolution could reach (the resolution ceiling) and its score on source faces it never saw (held out).
``write_report`` stores the dict as ``evaluation.json`` plus ``evaluation.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelab.align import estimate_pose, face_transform, transform_points
from facelab.errors import FacelabError
from facelab.evaluate import metrics as M
from facelab.utils.items import ItemErrors, run_items
from facelab.utils.progress import Progress
from facelab.workspace import FaceMeta, Workspace, list_images, read_face, read_image, read_meta
from facelab.workspace.faces import list_faces

log = logging.getLogger(__name__)
MERGE_RECORD = "merge.json"  # facelab.merge.stage.MERGE_RECORD: which model made the merged frames


@dataclass(frozen=True)
class EvaluateConfig:
    samples: int = 24  # frames sampled for identity, expression, pose, sharpness and structure
    stability_frames: int = 60  # consecutive frames for the jitter measures
    src_faces: int = 16  # source faces averaged into the source identity
    crop_size: int = 256  # face crop size for SSIM
    held_out_faces: int = 24  # held-out source faces scored per model (at most)
    model: str | None = None  # the model that made the merged frames; None = the one merge recorded
    compare: bool = True  # also measure the workspace's other swap models and the training-free swap
    device: str = "cpu"


@dataclass(frozen=True)
class FramePair:
    """One destination frame with its (first) face file and merged counterpart (None when swaps are rendered in
    memory only)."""

    meta: FaceMeta
    original: Path
    merged: Path | None


class _Tools:
    """dlib landmarks and identity, loaded once."""

    def __init__(self) -> None:
        from facelab.landmarks import DlibIdentity, create_landmarks

        self.landmarks = create_landmarks("dlib68")
        self.identity = DlibIdentity()


# -- what to measure ----------------------------------------------------------------------------------------------
def _usable_meta(ws: Workspace, path: Path) -> tuple[FaceMeta, Path]:
    """A destination face file's metadata and its frame (inside the workspace, landmarks usable)."""
    from facelab.workspace.usable import check_usable

    meta = read_meta(path)
    return meta, check_usable(meta, path, ws)


def find_pairs(ws: Workspace, need_merged: bool = True, errors: ItemErrors | None = None) -> list[FramePair]:
    """Destination frames that have a face file (face index 0) and (``need_merged``) a merged frame, in order.
    Face files that cannot be used are left out and recorded in ``errors``."""
    merged = {p.stem: p for p in list_images(ws.merged)}
    if need_merged and not merged:
        raise FacelabError(f"no merged frames in {ws.merged}; run `python main.py merge` first")
    found: dict[str, tuple[FaceMeta, Path]] = {}
    usable = run_items(list_faces(ws.aligned("dst")), lambda p: _usable_meta(ws, p),
                       errors if errors is not None else ItemErrors())
    for _, (meta, frame) in usable:
        if meta.frame_stem not in found or meta.face_index < found[meta.frame_stem][0].face_index:
            found[meta.frame_stem] = (meta, frame)
    pairs = [FramePair(m, frame, merged.get(stem)) for stem, (m, frame) in sorted(found.items())
             if stem in merged or not need_merged]
    if not pairs and not need_merged:
        raise FacelabError(f"no face files in {ws.aligned('dst')}; run `python main.py extract --side dst` first")
    if not pairs:
        raise FacelabError(f"no merged frame in {ws.merged} has a face file in {ws.aligned('dst')}; "
                           "run `python main.py extract` and `python main.py merge` first")
    return pairs


def check_sources(ws: Workspace) -> None:
    """Evaluation needs source faces (the identity the swap should have)."""
    if not list_faces(ws.aligned("src")):
        raise FacelabError(f"no source faces in {ws.aligned('src')}; run `python main.py extract --side src` first")


def merged_model(ws: Workspace, name: str | None) -> Path:
    """The model folder behind the merged frames: ``name``, else the one merge recorded, else the only one."""
    from facelab.models.store import find_swap_model

    if name is None:
        record = ws.merged / MERGE_RECORD
        try:
            name = json.loads(record.read_text("utf-8")).get("model") if record.is_file() else None
        except (OSError, ValueError, AttributeError):
            log.warning("%s is unreadable; give --model", record)
            name = None
        if name is not None and not ws.model(name).is_dir():
            name = None
    return find_swap_model(ws, name)


def _evenly(items: list, n: int) -> list:
    if n <= 0 or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx))]


def source_identity(ws: Workspace, tools: _Tools, count: int, errors: ItemErrors | None = None) -> np.ndarray:
    """Mean dlib embedding of ``count`` source faces spread over the source set (unusable ones recorded in
    ``errors`` and left out)."""
    paths = _evenly(list_faces(ws.aligned("src")), count)

    def embed(path: Path) -> np.ndarray:
        face = read_face(path)
        return tools.identity.embed(face.image, face.meta.lm_face)

    embs = [e for _, e in run_items(paths, embed, errors if errors is not None else ItemErrors())]
    if not embs:
        raise FacelabError(f"no readable source faces in {ws.aligned('src')}; run `python main.py extract` first")
    return np.mean(embs, axis=0)


def _crop(image: np.ndarray, lm_frame: np.ndarray, size: int, face_type: str = "full") -> np.ndarray:
    mat = face_transform(lm_frame, size, face_type)
    return cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


# -- per frame ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What each swapped frame is measured against: the original frame, its dlib landmarks and embedding."""

    pair: FramePair
    image: np.ndarray
    landmarks: np.ndarray
    embedding: np.ndarray


def reference(pair: FramePair, tools: _Tools) -> Reference:
    orig = read_image(pair.original)
    lm = tools.landmarks.landmarks(orig, pair.meta.box)
    return Reference(pair, orig, lm, tools.identity.embed(orig, lm))


def measure_frame(ref: Reference, swap: np.ndarray, tools: _Tools, src_id: np.ndarray, crop: int,
                  resolution: int, face_type: str) -> dict:
    """Per-frame measures of one swapped frame against its original; ``resolution`` / ``face_type`` are the
    swapping model's (for the ceiling)."""
    meta = ref.pair.meta
    lm_s = tools.landmarks.landmarks(swap, meta.box)
    emb_s = tools.identity.embed(swap, lm_s)
    pose_o = estimate_pose(transform_points(ref.landmarks, meta.mat), meta.size)
    pose_s = estimate_pose(transform_points(lm_s, meta.mat), meta.size)
    crop_o = _crop(ref.image, meta.lm_frame, crop).astype(np.float32) / 255
    crop_s = _crop(swap, meta.lm_frame, crop).astype(np.float32) / 255
    side = M.crop_side_in_frame(meta.lm_frame, resolution, face_type)
    return {
        "frame": meta.frame_stem, "emb_swap": emb_s, "emb_orig": ref.embedding,
        "swap_to_src": M.embedding_distance(emb_s, src_id), "orig_to_src": M.embedding_distance(ref.embedding, src_id),
        "landmark_nme": M.landmark_nme(lm_s, ref.landmarks), "pose_error_deg": M.pose_error_deg(pose_s, pose_o),
        "ssim": M.image_ssim(crop_s, crop_o),
        "sharpness": M.sharpness_ratio(swap, ref.image, ref.landmarks),
        "ceiling": M.resolution_ceiling(ref.image, ref.landmarks, side, resolution),
    }


def summarise(rows: list[dict]) -> dict:
    """Identity, expression, pose, structure and sharpness of one swap over its sampled frames."""
    dst_id = np.mean([r["emb_orig"] for r in rows], axis=0)
    for r in rows:
        r["swap_to_dst"] = M.embedding_distance(r.pop("emb_swap"), dst_id)
        r["orig_to_dst"] = M.embedding_distance(r.pop("emb_orig"), dst_id)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "frame"}
    sharp = float(np.median([r["sharpness"] for r in rows]))
    ceiling = float(np.median([r["ceiling"] for r in rows]))
    return {
        "identity": {
            "swap_to_src": mean["swap_to_src"], "swap_to_dst": mean["swap_to_dst"],
            "orig_to_src": mean["orig_to_src"], "orig_to_dst": mean["orig_to_dst"],
            "fraction_closer_to_src": float(np.mean([r["swap_to_src"] < r["swap_to_dst"] for r in rows])),
            "moved_toward_src": mean["orig_to_src"] - mean["swap_to_src"],
        },
        "expression": {"landmark_nme": mean["landmark_nme"]},
        "pose": {"pose_error_deg": mean["pose_error_deg"]},
        "sharpness": {"ratio": sharp, "ceiling": ceiling, "of_ceiling": sharp / ceiling if ceiling > 0 else 0.0},
        "structure": {"ssim_swap_vs_dst": mean["ssim"]},
        "per_frame": rows,
    }


def stability(refs: list[Reference], swaps: list[np.ndarray], tools: _Tools, size: int = 128) -> dict:
    """Landmark, face-colour and texture jitter over consecutive frames, swapped vs input."""
    tracks: dict[str, list] = {"orig": [], "swap": []}
    colours: dict[str, list] = {"orig": [], "swap": []}
    crops: dict[str, list] = {"orig": [], "swap": []}
    from facelab.align import hull_mask

    for ref, swap in zip(refs, swaps, strict=True):
        mask = np.zeros(ref.image.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(ref.landmarks).astype(np.int32)), 1)
        for key, img in (("orig", ref.image), ("swap", swap)):
            lm = ref.landmarks if key == "orig" else tools.landmarks.landmarks(swap, ref.pair.meta.box)
            tracks[key].append(lm)
            colours[key].append(M.masked_mean_colour(img.astype(np.float32) / 255, mask))
            crops[key].append(_crop(img, ref.pair.meta.lm_frame, size, "whole_face").astype(np.float32) / 255)
    hull = np.stack([hull_mask(transform_points(r.pair.meta.lm_frame, face_transform(
        r.pair.meta.lm_frame, size, "whole_face")), size) > 0.5 for r in refs])
    out: dict = {"frames": len(refs)}
    for key in ("orig", "swap"):
        out[f"landmark_jitter_{key}"] = M.landmark_jitter(np.asarray(tracks[key]))
        out[f"colour_jitter_{key}"] = M.colour_jitter(np.asarray(colours[key]))
        out[f"texture_jitter_{key}"] = M.texture_jitter(np.stack(crops[key]), hull)
        out[f"colour_track_{key}"] = np.asarray(colours[key]).mean(axis=1).tolist()
    return out


# -- the swaps compared -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwapSource:
    """One row of the report: a swap model and how to get its swapped frames."""

    label: str
    model_type: str
    kind: str
    resolution: int
    face_type: str
    predictor: object  # a facelab.merge.predict.Predictor
    merged: bool  # True: the frames in data_dst/merged; False: rendered in memory


def recorded_holdout(model_dir: Path) -> float:
    """The held-out share a model was created with (0 for models that trained on every face)."""
    from facelab.utils.checkpoint import read_config

    if not (model_dir / "config.json").is_file():
        return 0.0
    value = read_config(model_dir).get("data", {}).get("holdout", 0.0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _source(ws: Workspace, model_dir: Path, merged: bool, device: str) -> SwapSource:
    from facelab.merge.predict import load_predictor
    from facelab.utils.device import select_device

    predictor = load_predictor(model_dir, select_device(device))
    model = predictor.model  # type: ignore[attr-defined]
    label = f"{model_dir.name} ({model.name}, {'merged' if merged else 'rendered'})"
    return SwapSource(label, model.name, model.kind, model.resolution, model.face_type, predictor, merged)


def swap_sources(ws: Workspace, primary: Path, cfg: EvaluateConfig, held: set[str]) -> tuple[list[SwapSource],
                                                                                           list[str]]:
    """The rows: the merged frames' model first, then (``cfg.compare``) every other swap model of the workspace,
    then a training-free model built in memory when the workspace has none. Returns the rows and notes on rows
    that could not be made."""
    from facelab.models import TRAINING_FREE
    from facelab.models.store import is_swap_model

    rows = [_source(ws, primary, True, cfg.device)]
    notes: list[str] = []
    if not cfg.compare:
        return rows, notes
    others = sorted(p for p in ws.models.iterdir() if p.is_dir() and p != primary and is_swap_model(p))
    rows += [_source(ws, p, False, cfg.device) for p in others]
    if not any(r.kind == TRAINING_FREE for r in rows):
        from facelab.merge.predict import TrainingFreePredictor
        from facelab.models.warp import build_index

        try:
            model = build_index(ws.aligned("src"), exclude=held)
        except FacelabError as exc:
            notes.append(f"training-free row skipped: {exc}")
        else:
            rows.append(SwapSource("training-free (warp, built for this report)", model.name, model.kind,
                                   model.resolution, model.face_type, TrainingFreePredictor(model), False))
    return rows, notes


def swapped_frames(ws: Workspace, source: SwapSource, pairs: list[FramePair]) -> dict[str, np.ndarray]:
    """Swapped frames of ``pairs`` by stem: read from data_dst/merged, or rendered in memory (default merge)."""
    if source.merged:
        return {p.meta.frame_stem: read_image(p.merged) for p in pairs}
    from facelab.merge.config import MergeConfig, MergeSettings
    from facelab.merge.preview import render_frames
    from facelab.merge.stage import MergePaths

    stems = [p.original.stem for p in pairs]
    out = render_frames(MergePaths.of(ws), source.predictor, MergeSettings(MergeConfig()), stems)
    return {p.meta.frame_stem: out[p.original.stem] for p in pairs}


def _held_crop(path: Path, resolution: int, face_type: str) -> tuple[np.ndarray, np.ndarray]:
    """A held-out face cropped to the model: (crop float32 (R,R,3), landmarks in the crop)."""
    from facelab.imageops.crop import crop_face, face_to_model_matrix

    face = read_face(path)
    mat = face_to_model_matrix(face.meta, resolution, face_type)
    return crop_face(face.image, mat, resolution).astype(np.float32) / 255.0, transform_points(face.meta.lm_face, mat)


def held_out_score(source: SwapSource, held: list[Path], errors: ItemErrors | None = None) -> dict:
    """src->src SSIM inside the face hull of held-out source faces (never trained on / not in the index), each
    cropped to the model (cubic, from its frame landmarks when the face type differs) and swapped as merge would
    swap it."""
    if not held:
        return {"faces": 0, "ssim": None}
    r = source.resolution
    done = [c for _, c in run_items(held, lambda p: _held_crop(p, r, source.face_type),
                                    errors if errors is not None else ItemErrors())]
    crops, lms = [c for c, _ in done], [lm for _, lm in done]
    if not crops:
        return {"faces": 0, "ssim": None}
    x, lm = np.stack(crops), np.stack(lms)
    predictor = source.predictor
    predictor.begin({-1: [(i, lm[i]) for i in range(len(lm))]})
    faces = np.concatenate([predictor(x[i:i + 8], lm[i:i + 8], [(-1, j) for j in range(i, min(i + 8, len(x)))])[0]
                            for i in range(0, len(x), 8)])
    from facelab.align import hull_mask

    scores = [M.masked_ssim(f, c, hull_mask(m, r)) for f, c, m in zip(faces, x, lm, strict=True)]
    return {"faces": len(crops), "ssim": float(np.mean(scores))}


@dataclass(frozen=True)
class Evaluation:
    """The report (JSON-ready) and the close-ups of one sampled frame: ``destination`` and one per row."""

    report: dict
    closeups: dict[str, np.ndarray]


def closeup(image: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.25) -> np.ndarray:
    """The face of ``image`` around ``box``, square, at its size in the frame (uint8 RGB)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image.shape[:2]
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return image[b:int(min(h, cy + side / 2)), a:int(min(w, cx + side / 2))].copy()


@dataclass
class Bench:
    """What every row is measured against: the tools, the source identity, the frames and the held-out faces."""

    tools: _Tools
    src_id: np.ndarray
    sampled: list[FramePair]
    run: list[FramePair]
    held: list[Path]
    refs: dict[str, Reference]


def prepare(ws: Workspace, cfg: EvaluateConfig, pairs: list[FramePair], share: float,
            errors: ItemErrors | None = None) -> tuple[Bench, set[str]]:
    """The frames sampled, the consecutive run for stability, the references and the held-out faces
    (``share`` of the source set, the rule of :mod:`facelab.workspace.holdout`). A frame whose reference cannot
    be made is left out and recorded in ``errors``."""
    from facelab.workspace.holdout import held_out_paths

    tools = _Tools()
    sampled = _evenly(pairs, cfg.samples)
    run = pairs[: cfg.stability_frames] if len(pairs) >= 3 else []
    src_paths = list_faces(ws.aligned("src"))
    held_set = held_out_paths(src_paths, share)
    held = _evenly([p for p in src_paths if str(p) in held_set], cfg.held_out_faces)
    wanted = list({id(p): p for p in sampled + run}.values())
    refs = {p.meta.frame_stem: ref for p, ref in run_items(wanted, lambda p: reference(p, tools),
                                                           errors if errors is not None else ItemErrors(),
                                                           name=lambda p: p.original.name)}
    sampled = [p for p in sampled if p.meta.frame_stem in refs]
    run = [p for p in run if p.meta.frame_stem in refs]
    if not sampled:
        raise FacelabError(f"none of the sampled frames of {ws.frames('dst')} could be read; see the log")
    return Bench(tools, source_identity(ws, tools, cfg.src_faces, errors), sampled, run, held, refs), held_set


def measure_source(ws: Workspace, source: SwapSource, bench: Bench, cfg: EvaluateConfig,
                   progress: Progress, errors: ItemErrors | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """One row: every measure of ``source`` on the bench's frames, and its swapped frames by stem."""
    images = swapped_frames(ws, source, list({id(p): p for p in bench.sampled + bench.run}.values()))
    measured = []
    for p in bench.sampled:
        measured.append(measure_frame(bench.refs[p.meta.frame_stem], images[p.meta.frame_stem], bench.tools,
                                      bench.src_id, cfg.crop_size, source.resolution, source.face_type))
        progress(1)
    row = summarise(measured)
    row["stability"] = stability([bench.refs[p.meta.frame_stem] for p in bench.run],
                                 [images[p.meta.frame_stem] for p in bench.run], bench.tools) if bench.run else {}
    progress(len(bench.run))
    row["held_out"] = held_out_score(source, bench.held, errors)
    row |= {"model_type": source.model_type, "kind": source.kind, "resolution": source.resolution,
            "face_type": source.face_type}
    return row, images


def evaluate_swap(ws: Workspace, cfg: EvaluateConfig, progress: Progress | None = None) -> Evaluation:
    """Measure the swaps in ``ws`` (see module doc). The first row's measures are also at the top level of the
    report (``identity``, ``expression``, ``pose``, ``sharpness``, ``structure``, ``stability``, ``held_out``)."""
    report_progress = progress or (lambda n=1, **kw: None)
    check_sources(ws)
    errors = ItemErrors()
    pairs = find_pairs(ws, errors=errors)
    primary = merged_model(ws, cfg.model)
    share = recorded_holdout(primary)
    bench, held_set = prepare(ws, cfg, pairs, share, errors)
    sources, notes = swap_sources(ws, primary, cfg, held_set)
    report_progress(0, total=len(sources) * (len(bench.sampled) + len(bench.run)))
    shown = bench.sampled[len(bench.sampled) // 2]
    closeups = {"destination": closeup(bench.refs[shown.meta.frame_stem].image, shown.meta.box)}
    rows: dict[str, dict] = {}
    for source in sources:
        rows[source.label], images = measure_source(ws, source, bench, cfg, report_progress, errors)
        closeups[source.label] = closeup(images[shown.meta.frame_stem], shown.meta.box)
    first = next(iter(rows.values()))
    report = {"frames_sampled": len(bench.sampled), "model": primary.name, "held_out_share": share,
              "notes": notes, "closeup_frame": shown.meta.frame_stem, "failures": list(dict.fromkeys(errors.failures)),
              **{k: first[k] for k in ("identity", "expression", "pose", "sharpness", "structure", "stability",
                                        "held_out", "per_frame")},
              "rows": rows}
    return Evaluation(report, closeups)


def write_report(evaluation: Evaluation, json_path: Path, png_path: Path) -> None:
    """Write ``evaluation.json`` and the at-a-glance ``evaluation.png`` (measures and close-ups)."""
    from facelab.evaluate.plot import plot_report
    from facelab.utils.atomic import atomic_path, atomic_write_text

    atomic_write_text(json_path, json.dumps(evaluation.report, indent=2) + "\n")
    with atomic_path(png_path) as tmp:
        plot_report(evaluation.report, evaluation.closeups, tmp)
