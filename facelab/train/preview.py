"""What a person watches while a model trains: ``preview.png`` and ``loss.png`` in the model folder.

``preview.png`` follows DeepFaceLab's layout: a labelled header, then one row per fixed sample of
[src, src->src, dst, dst->dst, src->dst], each cell at least :data:`MIN_CELL` pixels (small models are enlarged,
cubic, so eyes and teeth can be judged). ``loss.png`` plots the src and dst loss history.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from facelab.utils.atomic import atomic_path
from facelab.workspace.images import to_uint8, write_image

COLUMNS = ("src", "src->src", "dst", "dst->dst", "src->dst")
#: Subfolder of the model folder keeping one preview per save (``--preview-history``).
HISTORY_DIR = "previews"
MIN_CELL = 128  # pixels per face cell at least


def header_height(resolution: int) -> int:
    """Height in pixels of the label strip above a grid of ``resolution``-sized cells."""
    return max(16, resolution // 6)


def to_hwc(batch: torch.Tensor) -> np.ndarray:
    """(B,3,R,R) float tensor in [0,1] -> (B,R,R,3) float32 numpy."""
    return batch.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def compose_preview(src: np.ndarray, src_src: np.ndarray, dst: np.ndarray, dst_dst: np.ndarray,
                    src_dst: np.ndarray, min_cell: int = MIN_CELL) -> np.ndarray:
    """Rows of [src, src->src, dst, dst->dst, src->dst] under a labelled header.

    Every input is (N,R,R,3) float in [0,1]; returns uint8 (header_height(C) + N*C, 5*C, 3) with cells of
    C = max(R, min_cell) pixels (enlarged with cubic interpolation when R is smaller).
    """
    cols = (src, src_src, dst, dst_dst, src_dst)
    n, r = src.shape[0], src.shape[1]
    for c in cols:
        if c.shape != (n, r, r, 3):
            raise ValueError(f"preview columns must all be (N,R,R,3); got {c.shape} vs {(n, r, r, 3)}")
    cell = max(r, int(min_cell))
    rows = [np.concatenate([_enlarge(c[i], cell) for c in cols], axis=1) for i in range(n)]
    body = to_uint8(np.concatenate(rows, axis=0))
    return np.concatenate([_header(cell, len(COLUMNS)), body], axis=0)


def _enlarge(image: np.ndarray, cell: int) -> np.ndarray:
    if image.shape[0] == cell:
        return image
    return np.clip(cv2.resize(image, (cell, cell), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _header(cell: int, ncols: int) -> np.ndarray:
    h = header_height(cell)
    strip = np.full((h, cell * ncols, 3), 40, np.uint8)
    scale = max(0.3, min(1.0, cell / 200.0))
    for i, label in enumerate(COLUMNS[:ncols]):
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = i * cell + max(1, (cell - tw) // 2)
        y = (h + th) // 2
        cv2.putText(strip, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return strip


@torch.no_grad()
def render_preview(model: torch.nn.Module, src: torch.Tensor, dst: torch.Tensor) -> np.ndarray:
    """Run ``model.preview`` on fixed samples (B,3,R,R) and compose the grid (model mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        out = model.preview(src, dst)
    finally:
        model.train(was_training)
    return compose_preview(to_hwc(src), to_hwc(out["src_src"]), to_hwc(dst), to_hwc(out["dst_dst"]),
                           to_hwc(out["src_dst"]))


def write_preview(model_dir: Path, grid: np.ndarray, iteration: int, keep_history: bool) -> Path:
    """Write ``preview.png`` (and ``previews/<iter:07d>.png`` with history on); returns the preview path."""
    path = Path(model_dir) / "preview.png"
    write_image(path, grid)
    if keep_history:
        write_image(Path(model_dir) / HISTORY_DIR / f"{iteration:07d}.png", grid)
    return path


def write_loss_plot(path: Path, history: dict[str, list[float]], title: str = "") -> Path:
    """Plot ``src_loss`` and ``dst_loss`` against ``iteration`` (matplotlib, Agg, no global figure state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    iters = history.get("iteration", [])
    for key, colour in (("src_loss", "tab:orange"), ("dst_loss", "tab:blue")):
        values = history.get(key, [])
        pts = [(i, v) for i, v in zip(iters, values, strict=True) if math.isfinite(v)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=colour, linewidth=0.8, label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
