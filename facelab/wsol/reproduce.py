"""Both papers' CUB-200-2011 runs: train each paper backbone from its ImageNet file, evaluate it under its paper's
protocol, and keep the results for a table beside the published numbers (:mod:`facelab.wsol.published`).

Each run lives in ``<out>/<method>_<backbone>/`` (a normal WSOL model folder, so a stopped run resumes) with its
metrics in ``results.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from facelab.errors import FacelabError
from facelab.utils.progress import Progress
from facelab.wsol.data import load_split
from facelab.wsol.models import WsolArch
from facelab.wsol.protocol import EvalProtocol, evaluate_protocol, resolve_protocol
from facelab.wsol.trainer import WsolTrainConfig, fit_wsol

log = logging.getLogger(__name__)

#: (method, backbone, ImageNet weight file the official code loads)
PAPER_RUNS: tuple[tuple[str, str, str], ...] = (
    ("bas", "vgg16", "vgg16.pth"),
    ("bas", "resnet50", "resnet50-19c8e357.pth"),
    ("bas", "inceptionv3", "inception_v3_google-1a9a5a14.pth"),
    ("bas", "mobilenetv1", "mobilenet_v1_with_relu_69_5.pth"),
    ("sat", "deit_tiny", "deit_tiny_patch16_224-a1311bcf.pth"),
    ("sat", "deit_small", "deit_small_patch16_224-cd65a155.pth"),
)
RESULTS = "results.json"


def missing_weights(pretrained_dir: Path, runs=PAPER_RUNS) -> list[str]:
    """The weight files of ``runs`` that ``pretrained_dir`` lacks."""
    return [name for _, _, name in runs if not (Path(pretrained_dir) / name).is_file()]


def reproduce(data: Path, pretrained_dir: Path, out: Path, cfg: WsolTrainConfig, device: torch.device,
              runs=PAPER_RUNS, progress: Progress | None = None) -> list[dict]:
    """Train (or resume) and evaluate every run of ``runs``; returns each run's result record."""
    lacking = missing_weights(pretrained_dir, runs)
    if lacking:
        raise FacelabError(f"{pretrained_dir} lacks {', '.join(lacking)}; put the ImageNet weight files there")
    train, test = load_split(data, "train"), load_split(data, "test")
    n_cls = max(r.label for r in train) + 1
    results = []
    for method, backbone, weights in runs:
        folder = Path(out) / f"{method}_{backbone}"
        log.info("%s %s: training in %s", method, backbone, folder)
        model, _, run_cfg, _ = fit_wsol(data, folder, WsolArch(method, backbone, n_cls), cfg, device,
                                        Path(pretrained_dir) / weights, progress=progress, records=train)
        proto, text = resolve_protocol(replace(EvalProtocol(), recipe=run_cfg.recipe), method, backbone,
                                       run_cfg.recipe)
        metrics = evaluate_protocol(model, test, run_cfg.input_size, device, proto, run_cfg.crop_ratio, train)
        doc = {"method": method, "backbone": backbone, "split": "test", "protocol": text, "recipe": proto.recipe,
               "metrics": metrics}
        (folder / RESULTS).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        results.append(doc)
    return results
