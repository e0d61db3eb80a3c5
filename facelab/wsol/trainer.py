"""Train and evaluate BAS/SAT on CUB-format data; checkpoints in facelab's one format (kind ``wsol``).

``<out>/config.json`` (readable: arch, train config, epochs done, created / updated), ``<out>/ckpt_last.pt`` and
numbered backups ``ckpt_<epoch:07d>.pt`` (the newest ``backups`` kept): see :mod:`facelab.utils.checkpoint`.
Training resumes from ``ckpt_last.pt``. Runs written before that format (format 1, no ``kind`` in the checkpoint)
are read through :func:`migrate`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.utils import checkpoint as ckio
from facelab.utils.config import setting
from facelab.utils.progress import Progress
from facelab.wsol.data import WsolDataset, WsolRecord, collate, load_split
from facelab.wsol.losses import LossWeights, bas_losses, sat_losses
from facelab.wsol.metrics import LocMeter
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained

log = logging.getLogger(__name__)
KIND = "wsol"
REQUIRED = ("arch", "train", "epoch", "model", "optimizer", "rng")
LEGACY_VERSION = 1  # WSOL checkpoints before the shared format: no ``kind`` key


OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class WsolTrainConfig:
    """Schedule settings (may change between runs). ``lr`` is the backbone rate; heads/generator get 10x with
    SGD as in BAS. ``optimizer``: adamw | sgd."""

    input_size: int = setting(224, "Input size in pixels.", flag="size", range=(32, 1024))
    epochs: int = setting(10, "Epochs to train (in all, counting those of a resumed run).", range=(0, 100_000))
    batch_size: int = setting(32, "Batch size.", flag="batch", range=(1, 4096))
    lr: float = setting(1e-3, "Learning rate of the backbone (SGD: heads 10x).", range=(0, 10))
    optimizer: str = setting("adamw", "Optimizer.", choices=OPTIMIZERS)
    weight_decay: float = setting(5e-4, "Weight decay (none on biases, norms and tokens).", range=(0, 1))
    crop_ratio: float = setting(0.875, "Centre-crop share of the resized image at evaluation.", range=(0.05, 1))
    seed: int = setting(0, "Random seed.", range=(0, 2**32 - 1))
    weights: LossWeights = setting(LossWeights(), "Loss weights (their own flags).", cli=False)
    backups: int = setting(2, "Numbered per-epoch backups kept beside ckpt_last.pt.", range=(0, 1000))

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError("optimizer must be adamw or sgd")
        if self.input_size < 32 or self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.backups < 0:
            raise ValueError("input_size >= 32, epochs >= 0, batch_size >= 1, lr > 0 and backups >= 0 are required")


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


def make_checkpoint(model: torch.nn.Module, opt: torch.optim.Optimizer, arch: WsolArch, cfg: WsolTrainConfig,
                    epoch: int) -> dict[str, Any]:
    """The checkpoint dict of a run after ``epoch`` epochs (plain types and tensors only)."""
    return {"format_version": ckio.FORMAT_VERSION, "kind": KIND, "arch": asdict(arch), "train": _cfg_dict(cfg),
            "epoch": int(epoch), "model": model.state_dict(), "optimizer": opt.state_dict(),
            "rng": torch.get_rng_state()}


def save_checkpoint(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, arch: WsolArch,
                    cfg: WsolTrainConfig, epoch: int, history: list[dict]) -> Path:
    """Write ``config.json`` and ``ckpt_last.pt`` (+ the backup of ``epoch``), both atomic; returns the latter.

    config.json goes first, so a folder with a checkpoint always says what it holds."""
    ckio.write_config(out, {"kind": KIND, "arch": asdict(arch), "train": _cfg_dict(cfg), "epochs_done": int(epoch),
                            "history": history})
    return ckio.save_checkpoint(out, make_checkpoint(model, opt, arch, cfg, epoch), cfg.backups, iteration=epoch)


def _cfg_dict(cfg: WsolTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def train_config_from_dict(d: dict) -> WsolTrainConfig:
    d = dict(d)
    d["weights"] = LossWeights(**d.get("weights", {}))
    return WsolTrainConfig(**d)


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A WSOL checkpoint dict in the current layout: format 1 (before the shared format) had no ``kind``."""
    if "kind" not in state and state.get("format_version") == LEGACY_VERSION and "epoch" in state:
        return {**state, "kind": KIND}
    return state


def read_checkpoint(out: Path) -> dict[str, Any]:
    """The checked ``ckpt_last.pt`` of the WSOL folder ``out`` (safe loading; old formats migrated)."""
    path = ckio.last_path(out)
    if not path.is_file():
        raise FacelabError(f"no WSOL checkpoint at {path}; train one with `python main.py wsol train --out {out}`")
    return ckio.read_checkpoint(path, KIND, REQUIRED, migrate=migrate)


def load_wsol(out: Path, device: torch.device) -> tuple[torch.nn.Module, WsolArch, WsolTrainConfig, dict]:
    """Model (eval mode, on ``device``), its arch and train config, and the raw checkpoint dict."""
    state = read_checkpoint(out)
    arch = WsolArch(**state["arch"])
    model = create_wsol_model(arch)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), arch, train_config_from_dict(state["train"]), state


def _drop_backups(out: Path) -> None:
    """Remove the numbered backups of a run that ``--force`` replaces (they would outnumber the new run's)."""
    for _, path in ckio.list_backups(out):
        log.info("removing %s of the replaced run", path)
        path.unlink(missing_ok=True)


def _resume_or_create(out: Path, arch: WsolArch, cfg: WsolTrainConfig, device, pretrained, force: bool):
    ckio.check_folder_kind(out, KIND)  # never over a swap model or a mask learner, even with --force
    if ckio.has_checkpoint(out) and not force:
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
    if force:
        _drop_backups(out)
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
