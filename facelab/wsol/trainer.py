"""Train and evaluate BAS/SAT on CUB-format data; checkpoints like the train stage.

``<out>/config.json`` (readable: arch, train config, epochs done) and ``<out>/ckpt_last.pt`` (plain types and
tensors, ``torch.load(weights_only=True)``), both written atomically. Training resumes from ``ckpt_last.pt``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_path, atomic_write_text
from facelab.utils.torch_io import load_tensors
from facelab.wsol.data import WsolDataset, WsolRecord, collate, load_split
from facelab.wsol.losses import LossWeights, bas_losses, sat_losses
from facelab.wsol.metrics import LocMeter
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
Progress = Callable[..., None]


@dataclass(frozen=True)
class WsolTrainConfig:
    """Schedule settings (may change between runs). ``lr`` is the backbone rate; heads/generator get 10x with
    SGD as in BAS. ``optimizer``: adamw | sgd."""

    input_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    crop_ratio: float = 0.875
    seed: int = 0
    weights: LossWeights = LossWeights()

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError("optimizer must be adamw or sgd")
        if self.input_size < 32 or self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("input_size >= 32, epochs >= 0, batch_size >= 1 and lr > 0 are required")


def method_losses(method: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  w: LossWeights) -> dict[str, torch.Tensor]:
    """Forward for training and the method's loss terms (``total`` included)."""
    out = model.train_forward(x, y)
    if method == "bas":
        return bas_losses(out.logits, out.s_bg, out.s_fg, out.m_fg, y, w, out.maps)
    return sat_losses(out.logits, out.m, y, w)


def make_optimizer(model: torch.nn.Module, cfg: WsolTrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov, BAS's per-part rates: new parts 10x, biases 2x) or AdamW (no decay on 1-D and tokens)."""
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        new_part = name.startswith(("generator.", "late.head.", "head."))
        no_decay = p.ndim <= 1 or name.endswith(("_token", "pos_embed", "spatial_pos"))
        if cfg.optimizer == "sgd":
            lr = cfg.lr * (10.0 if new_part else 1.0) * (2.0 if name.endswith(".bias") else 1.0)
        else:
            lr = cfg.lr
        groups.setdefault((lr, 0.0 if no_decay else cfg.weight_decay), []).append(p)
    params = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(params, lr=cfg.lr)


def train_epoch(model: torch.nn.Module, method: str, loader, opt: torch.optim.Optimizer, w: LossWeights,
                device: torch.device, progress: Progress | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of every loss term."""
    model.train()
    sums: dict[str, float] = {}
    n = 0
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        terms = method_losses(method, model, x, y, w)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        n += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if progress:
            progress(1, loss=f"{float(terms['total'].detach()):.3f}")
    return {k: v / max(n, 1) for k, v in sums.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, records: list[WsolRecord], size: int, device: torch.device, tau: float = 0.5,
             topk: int | None = None, batch_size: int = 32, crop_ratio: float = 0.875,
             progress: Progress | None = None) -> dict[str, float]:
    """Top-1/Top-5/GT-known Loc at ``tau`` and MaxBoxAccV2 over the CAM thresholds, in percent."""
    model.eval()
    loader = torch.utils.data.DataLoader(WsolDataset(records, size, False, crop_ratio), batch_size=batch_size,
                                         collate_fn=collate)
    meter = LocMeter(tau=tau)
    for x, y, boxes in loader:
        out = model(x.to(device), topk=topk)
        fmaps, logits = out.fmap[:, 0].cpu().numpy(), out.logits.cpu().numpy()
        for i in range(len(boxes)):
            if len(boxes[i]):
                meter.add(fmaps[i], boxes[i], logits[i], int(y[i]))
        if progress:
            progress(len(boxes))
    return meter.summary()


def save_checkpoint(out: Path, model, opt, arch: WsolArch, cfg: WsolTrainConfig, epoch: int,
                    history: list[dict]) -> None:
    state = {"format_version": FORMAT_VERSION, "arch": asdict(arch), "train": _cfg_dict(cfg), "epoch": epoch,
             "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}
    with atomic_path(out / "ckpt_last.pt") as tmp:
        torch.save(state, tmp)
    doc = {"format_version": FORMAT_VERSION, "kind": "wsol", "arch": asdict(arch), "train": _cfg_dict(cfg),
           "epochs_done": epoch, "history": history, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(out / "config.json", json.dumps(doc, indent=2))


def _cfg_dict(cfg: WsolTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def train_config_from_dict(d: dict) -> WsolTrainConfig:
    d = dict(d)
    d["weights"] = LossWeights(**d.get("weights", {}))
    return WsolTrainConfig(**d)


def read_checkpoint(out: Path) -> dict:
    path = Path(out) / "ckpt_last.pt"
    state = load_tensors(path, "WSOL checkpoint", f"train one with `wsol train --out {out}`")
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION or "arch" not in state:
        raise FacelabError(f"{path} is not a facelab WSOL checkpoint (format {FORMAT_VERSION})")
    return state


def load_wsol(out: Path, device: torch.device) -> tuple[torch.nn.Module, WsolArch, WsolTrainConfig, dict]:
    """Model (eval mode, on ``device``), its arch and train config, and the raw checkpoint dict."""
    state = read_checkpoint(out)
    arch = WsolArch(**state["arch"])
    model = create_wsol_model(arch)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), arch, train_config_from_dict(state["train"]), state


def _resume_or_create(out: Path, arch: WsolArch, cfg: WsolTrainConfig, device, pretrained, force: bool):
    if (out / "ckpt_last.pt").is_file() and not force:
        state = read_checkpoint(out)
        stored = WsolArch(**state["arch"])
        if stored != arch:
            raise FacelabError(f"{out} holds a {stored} model; the flags ask for {arch}. Use another --out or --force")
        model = create_wsol_model(arch)
        model.load_state_dict(state["model"])
        model.to(device)
        opt = make_optimizer(model, cfg)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        return model, opt, int(state["epoch"])
    torch.manual_seed(cfg.seed)
    model = create_wsol_model(arch)
    if pretrained:
        load_pretrained(model, pretrained)
    model.to(device)
    return model, make_optimizer(model, cfg), 0


def train_wsol(data: Path, out: Path, arch: WsolArch, cfg: WsolTrainConfig, device: torch.device,
               pretrained: Path | None = None, force: bool = False, progress: Progress | None = None,
               records: list[WsolRecord] | None = None) -> dict:
    """Train to ``cfg.epochs`` (resuming), saving after every epoch; returns the last epoch's mean losses."""
    out = Path(out)
    records = load_split(data, "train") if records is None else records
    if not records:
        raise FacelabError(f"{data}: no training images found; check train_test_split.txt")
    n_cls = max(r.label for r in records) + 1
    if n_cls > arch.num_classes:
        arch = replace(arch, num_classes=n_cls)
    model, opt, start = _resume_or_create(out, arch, cfg, device, pretrained, force)
    ds = WsolDataset(records, cfg.input_size, True, cfg.crop_ratio, seed=cfg.seed + start)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                         collate_fn=collate, drop_last=len(ds) > cfg.batch_size)
    history: list[dict] = []
    last: dict[str, float] = {}
    for epoch in range(start, cfg.epochs):
        last = train_epoch(model, arch.method, loader, opt, cfg.weights, device, progress)
        history.append({"epoch": epoch + 1, **{k: round(v, 5) for k, v in last.items()}})
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, " ".join(f"{k}={v:.4f}" for k, v in last.items()))
        save_checkpoint(out, model, opt, arch, cfg, epoch + 1, history)
    return {"epochs_done": max(start, cfg.epochs), "num_classes": arch.num_classes, **last}


def pick_threshold(model, records: list[WsolRecord], size: int, device, topk: int | None = None) -> float:
    """The CAM threshold with the best GT-known Loc on ``records`` (a validation split, never the test set)."""
    best_t, best = 0.5, -1.0
    for t in np.arange(0.1, 0.9, 0.05):
        acc = evaluate(model, records, size, device, tau=float(t), topk=topk)["gt_known_loc"]
        if acc > best:
            best_t, best = float(t), acc
    return round(best_t, 2)
