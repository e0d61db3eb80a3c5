"""WSOL data: the official CUB-200-2011 layout, BAS/SAT-style list files, a toy generator, and a torch dataset.

CUB: ``images.txt`` (id path), ``image_class_labels.txt`` (id class, 1-based), ``train_test_split.txt`` (id 1=train),
``bounding_boxes.txt`` (id x y w h; x0=x, x1=x+w). Lists: ``<split>_list.txt`` with ``path;label0`` lines and
``<split>_bounding_box.txt`` with ``x0 y0 x1 y1 [x0 y0 x1 y1 ...] H W`` on the same line order (CUB), or an
ILSVRC-style ``<split>_gt.txt`` keyed ``path W H ; x0 y0 x1 y1 ...``. Boxes are kept in original pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.workspace.images import read_image, write_image


@dataclass(frozen=True)
class WsolRecord:
    path: Path
    label: int  # 0-based
    boxes: np.ndarray  # (G,4) x0 y0 x1 y1 in original pixels
    is_train: bool


def _rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FacelabError(f"cannot read {path}: {exc.strerror}; is this a CUB-format folder?") from exc
    return [ln.split() for ln in text.splitlines() if ln.strip()]  # split() also drops CRLF's '\r'


def _id_map(path: Path, ncols: int) -> dict[int, list[str]]:
    out = {}
    for i, row in enumerate(_rows(path), 1):
        if len(row) < ncols:
            raise FacelabError(f"{path} line {i}: expected {ncols} fields, got {' '.join(row)!r}; fix the file")
        out[int(row[0])] = row[1:]
    return out


def read_cub(root: str | Path) -> list[WsolRecord]:
    """Every image of an official CUB layout, ids in file order; labels converted to 0-based."""
    root = Path(root)
    images = _id_map(root / "images.txt", 2)
    labels = _id_map(root / "image_class_labels.txt", 2)
    split = _id_map(root / "train_test_split.txt", 2)
    boxes: dict[int, list[list[float]]] = {}
    for i, row in enumerate(_rows(root / "bounding_boxes.txt"), 1):
        if len(row) != 5:
            raise FacelabError(f"{root / 'bounding_boxes.txt'} line {i}: expected 'id x y w h'; fix the file")
        x, y, w, h = map(float, row[1:])
        boxes.setdefault(int(row[0]), []).append([x, y, x + w, y + h])
    out = []
    for iid, (rel,) in ((k, v[:1]) for k, v in images.items()):
        if iid not in labels or iid not in split or iid not in boxes:
            raise FacelabError(f"{root}: image id {iid} lacks a label, split or box line; fix the CUB text files")
        label = int(labels[iid][0]) - 1
        if label < 0:
            raise FacelabError(f"{root / 'image_class_labels.txt'}: class ids are 1-based, found {label + 1}")
        out.append(WsolRecord(root / "images" / rel, label, np.asarray(boxes[iid], np.float64),
                              split[iid][0] == "1"))
    return out


def read_image_list(list_file: str | Path, image_root: str | Path, box_file: str | Path | None,
                    is_train: bool) -> list[WsolRecord]:
    """``path;label0`` lines plus an optional box file (line-ordered ``... H W`` or keyed ``path W H ; ...``)."""
    list_file, image_root = Path(list_file), Path(image_root)
    entries = []
    for i, row in enumerate(_rows(list_file), 1):
        line = " ".join(row)
        if ";" not in line:
            raise FacelabError(f"{list_file} line {i}: expected 'path;label'; fix the list")
        rel, lab = line.rsplit(";", 1)
        entries.append((rel.strip().replace("\\", "/"), int(lab)))
    boxes = _read_list_boxes(Path(box_file), [e[0] for e in entries]) if box_file else {}
    return [WsolRecord(image_root / rel, lab, boxes.get(rel, np.zeros((0, 4))), is_train) for rel, lab in entries]


def _read_list_boxes(box_file: Path, order: list[str]) -> dict[str, np.ndarray]:
    rows = _rows(box_file)
    out: dict[str, np.ndarray] = {}
    if rows and ";" in rows[0]:  # keyed: path W H ; x0 y0 x1 y1 ...
        for row in rows:
            key = row[0].replace("\\\\", "/").replace("\\", "/")
            nums = [float(v) for v in row[row.index(";") + 1:]]
            out[key] = np.asarray(nums, np.float64).reshape(-1, 4)
        return out
    if len(rows) != len(order):
        raise FacelabError(f"{box_file} has {len(rows)} lines but the list has {len(order)}; they pair by line")
    for rel, row in zip(order, rows, strict=True):
        nums = [float(v) for v in row[:-2]]  # the last two numbers are H W
        if not nums or len(nums) % 4:
            raise FacelabError(f"{box_file}: expected 'x0 y0 x1 y1 [...] H W' for {rel}; fix the file")
        out[rel] = np.asarray(nums, np.float64).reshape(-1, 4)
    return out


def load_split(data: str | Path, split: str) -> list[WsolRecord]:
    """Records of ``split`` ('train' or 'test') from a CUB folder or a folder of list files."""
    data = Path(data)
    if (data / "images.txt").is_file():
        want = split == "train"
        return [r for r in read_cub(data) if r.is_train == want]
    names = [split] + (["val"] if split == "test" else [])
    for name in names:
        lst = data / f"{name}_list.txt"
        if lst.is_file():
            root = data / name if (data / name).is_dir() else data
            box = next((p for p in (data / f"{name}_bounding_box.txt", data / f"{name}_gt.txt") if p.is_file()), None)
            return read_image_list(lst, root, box, split == "train")
    raise FacelabError(f"{data} has neither images.txt (CUB layout) nor {split}_list.txt; "
                       "point --data at a CUB_200_2011 folder or make one with `wsol make-toy`")


def ten_crops(img: np.ndarray, size: int) -> np.ndarray:
    """(10,S,S,C): the four corner crops and the centre crop of ``img`` (H,W,C), then the same of its mirror image
    (torchvision's TenCrop order)."""
    h, w = img.shape[:2]
    cy, cx = int(round((h - size) / 2)), int(round((w - size) / 2))
    starts = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (cy, cx)]
    out = [src[y:y + size, x:x + size] for src in (img, img[:, ::-1]) for y, x in starts]
    return np.stack(out)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """(...,H,W,3) uint8 -> (...,3,H,W) float [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).movedim(-1, -3).float() / 255.0


class WsolDataset(torch.utils.data.Dataset):
    """Images resized to ``size/crop_ratio`` (aspect not kept) then cropped to ``size``: random + flip when
    training, centre when evaluating. Items: image (3,S,S) float [0,1], label, boxes (G,4) in crop pixels, and
    with ``tencrop`` the ten crops (10,3,S,S) of the resized image for classification."""

    def __init__(self, records: list[WsolRecord], size: int, train: bool, crop_ratio: float = 0.875,
                 seed: int = 0, tencrop: bool = False) -> None:
        self.records, self.size, self.train, self.crop_ratio = records, size, train, crop_ratio
        self.tencrop = tencrop and not train
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rec = self.records[i]
        img = read_image(rec.path)
        h, w = img.shape[:2]
        big = int(round(self.size / self.crop_ratio))
        img = cv2.resize(img, (big, big), interpolation=cv2.INTER_AREA if big < min(h, w) else cv2.INTER_LINEAR)
        crops = _to_tensor(ten_crops(img, self.size)) if self.tencrop else None
        if self.train:
            ox, oy = (int(v) for v in self.rng.integers(0, big - self.size + 1, 2))
        else:
            ox = oy = (big - self.size) // 2
        img = img[oy:oy + self.size, ox:ox + self.size]
        boxes = transform_boxes(rec.boxes, (w, h), big, (ox, oy), self.size)
        if self.train and self.rng.random() < 0.5:
            img = img[:, ::-1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = self.size - 1 - boxes[:, [2, 0]]
        x = _to_tensor(img)
        return (x, rec.label, boxes) if crops is None else (x, rec.label, boxes, crops)


def transform_boxes(boxes: np.ndarray, wh: tuple[int, int], big: int, offset: tuple[int, int],
                    size: int) -> np.ndarray:
    """Original-pixel boxes -> crop pixels: scale to ``big`` x ``big``, shift by ``-offset``, clip to the crop."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]] * big / wh[0] - offset[0]
    b[:, [1, 3]] = b[:, [1, 3]] * big / wh[1] - offset[1]
    return np.clip(b, 0, size - 1)


def collate(batch):
    """Images (B,3,S,S), labels (B,), boxes [(G,4)] and, when the items have them, ten crops (B,10,3,S,S)."""
    cols = list(zip(*batch, strict=True))
    out = (torch.stack(cols[0]), torch.as_tensor(cols[1], dtype=torch.long), list(cols[2]))
    return out + (torch.stack(cols[3]),) if len(cols) > 3 else out


# -- toy CUB-format data -----------------------------------------------------------------------------------------
_COLOURS = np.array([[220, 40, 40], [40, 180, 60], [50, 80, 230], [230, 200, 40], [200, 60, 210], [40, 200, 210],
                     [250, 140, 30], [120, 60, 20]], np.uint8)


def _toy_image(rng: np.random.Generator, k: int) -> tuple[np.ndarray, list[float]]:
    h, w = int(rng.integers(100, 221)), int(rng.integers(120, 261))
    img = rng.integers(60, 190, (h, w, 1)).astype(np.uint8).repeat(3, 2)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    for _ in range(12):  # grey clutter strokes
        p = rng.integers(0, [w, h], (2, 2))
        g = int(rng.integers(40, 220))
        cv2.line(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), (g, g, g), 2)
    ow, oh = int(rng.uniform(0.3, 0.6) * w), int(rng.uniform(0.3, 0.6) * h)
    x0, y0 = int(rng.integers(0, w - ow)), int(rng.integers(0, h - oh))
    colour = tuple(int(v) for v in _COLOURS[k % len(_COLOURS)])
    shape = k % 3
    if shape == 0:
        cv2.rectangle(img, (x0, y0), (x0 + ow - 1, y0 + oh - 1), colour, -1)
    elif shape == 1:
        cv2.ellipse(img, (x0 + ow // 2, y0 + oh // 2), (ow // 2, oh // 2), 0, 0, 360, colour, -1)
    else:
        pts = np.array([[x0, y0 + oh - 1], [x0 + ow - 1, y0 + oh - 1], [x0 + ow // 2, y0]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    ys, xs = np.nonzero(np.all(img == np.array(colour, np.uint8), axis=2))
    box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
    return img, box


def make_toy_cub(root: str | Path, classes: int = 6, per_class: int = 10, test_share: float = 0.5,
                 seed: int = 0) -> list[WsolRecord]:
    """Write a CUB-format folder of coloured shapes on clutter (class k: shape k%3, colour k); exact boxes."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {n: [] for n in ("images", "labels", "split", "boxes", "classes")}
    iid = 0
    for k in range(classes):
        cname = f"{k + 1:03d}.Synth_class_{k}"
        lines["classes"].append(f"{k + 1} {cname}")
        for j in range(per_class):
            iid += 1
            img, (x, y, w, h) = _toy_image(rng, k)
            rel = f"{cname}/synth_{k}_{j:04d}.jpg"
            write_image(root / "images" / rel, img, quality=95)
            lines["images"].append(f"{iid} {rel}")
            lines["labels"].append(f"{iid} {k + 1}")
            lines["split"].append(f"{iid} {int(j >= per_class * test_share)}")
            lines["boxes"].append(f"{iid} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
    files = {"images": "images.txt", "labels": "image_class_labels.txt", "split": "train_test_split.txt",
             "boxes": "bounding_boxes.txt", "classes": "classes.txt"}
    for key, name in files.items():
        (root / name).write_text("\n".join(lines[key]) + "\n", encoding="utf-8")
    return read_cub(root)


def write_lists(records: list[WsolRecord], root: str | Path, split: str, image_root: str | Path) -> None:
    """Write BAS/SAT-style ``<split>_list.txt`` and ``<split>_bounding_box.txt`` (``x0 y0 x1 y1 H W``)."""
    root, image_root = Path(root), Path(image_root)
    lst, box = [], []
    for r in records:
        rel = os.path.relpath(r.path, image_root).replace(os.sep, "/")
        h, w = read_image(r.path).shape[:2]
        lst.append(f"{rel};{r.label}")
        box.append(" ".join(f"{v:g}" for v in r.boxes.ravel()) + f" {h} {w}")
    (root / f"{split}_list.txt").write_text("\n".join(lst) + "\n", encoding="utf-8")
    (root / f"{split}_bounding_box.txt").write_text("\n".join(box) + "\n", encoding="utf-8")
