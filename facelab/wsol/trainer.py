"""Train and evaluate BAS/SAT on CUB-format data; checkpoints in facelab's one format (kind ``wsol``).

``<out>/config.json`` (readable: arch, train config, epochs done, created / updated), ``<out>/ckpt_last.pt`` and
numbered backups ``ckpt_<epoch:07d>.pt`` (the newest ``backups`` kept): see :mod:`facelab.utils.checkpoint`.
Training resumes from ``ckpt_last.pt``. Runs written before that format (format 1, no ``kind`` in the checkpoint)
are read through :func:`migrate`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from facelab.errors import FacelabError
from facelab.utils import checkpoint as ckio
from facelab.utils.config import setting
from facelab.utils.progress import Progress
from facelab.wsol.data import WsolDataset, WsolRecord, collate, load_split
from facelab.wsol.losses import LossWeights, bas_losses, sat_losses
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained
from facelab.wsol.protocol import EvalProtocol, evaluate_protocol
from facelab.wsol.recipes import RECIPES, fill, recipe_for

log = logging.getLogger(__name__)
KIND = "wsol"
REQUIRED = ("arch", "train", "epoch", "model", "optimizer", "rng")
LEGACY_VERSION = 1  # WSOL checkpoints before the shared format: no ``kind`` key


OPTIMIZERS = ("adamw", "sgd")
LR_DROP = 0.1  # the rate's factor at ``lr_step`` (BAS)
_RECIPE_TEXT = "per recipe and backbone"


@dataclass(frozen=True)
class WsolTrainConfig:
    """Schedule settings (may change between runs). Fields left None take the value of ``recipe`` for the
    backbone (:mod:`facelab.wsol.recipes`); :func:`resolve_train` fills them and the checkpoint stores the result.
    ``optimizer``: sgd = BAS's (Nesterov, momentum 0.9; backbone biases 2x, generator and head 10x, their biases
    20x); adamw = SAT's (one rate)."""

    recipe: str = setting("paper", "Recipe giving every unset schedule, loss and evaluation value per "
                                          "backbone: paper (the official code's) or facelab.", choices=RECIPES.names)
    input_size: int = setting(224, "Input size in pixels.", flag="size", range=(32, 1024))
    epochs: int | None = setting(None, "Epochs to train (in all, counting those of a resumed run).",
                                 range=(0, 100_000), default_text=f"{_RECIPE_TEXT} (paper: BAS 100, SAT 30)")
    batch_size: int | None = setting(None, "Batch size.", flag="batch", range=(1, 4096),
                                     default_text=f"{_RECIPE_TEXT} (paper: BAS 32, SAT 256)")
    micro_batch: int = setting(0, "Largest batch run at once; a larger batch accumulates gradients over pieces "
                                  "of this size (0 = the whole batch).", range=(0, 4096))
    lr: float | None = setting(None, "Learning rate of the backbone.", range=(0, 10),
                               default_text=f"{_RECIPE_TEXT} (paper: BAS 1e-3, SAT 1e-4)")
    optimizer: str | None = setting(None, "Optimizer.", choices=OPTIMIZERS,
                                    default_text=f"{_RECIPE_TEXT} (paper: BAS sgd, SAT adamw)")
    weight_decay: float | None = setting(None, "Weight decay.", range=(0, 1),
                                         default_text=f"{_RECIPE_TEXT} (paper: BAS 5e-4, SAT 0.05)")
    decay_all: bool | None = setting(None, "Weight decay on biases, norms and tokens too.",
                                     default_text=f"{_RECIPE_TEXT} (paper: BAS on, SAT off)")
    lr_step: int | None = setting(None, "Epoch at which the rate drops x0.1 (0 = never).", range=(0, 100_000),
                                  default_text=f"{_RECIPE_TEXT} (paper: BAS 80, SAT 0)")
    drop_path: float | None = setting(None, "SAT stochastic-depth rate of the last block.", range=(0, 1),
                                      default_text=f"{_RECIPE_TEXT} (paper: SAT 0.1, BAS 0)")
    crop_ratio: float = setting(0.875, "Crop share of the resized square image (224 of 256).", range=(0.05, 1))
    seed: int = setting(0, "Random seed.", range=(0, 2**32 - 1))
    weights: LossWeights = setting(LossWeights(), "Loss weights (their own flags).", cli=False)
    backups: int = setting(2, "Numbered per-epoch backups kept beside ckpt_last.pt.", range=(0, 1000))

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES.names())}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError("optimizer must be adamw or sgd")
        if self.input_size < 32 or self.backups < 0 or self.micro_batch < 0:
            raise ValueError("input_size >= 32, micro_batch >= 0 and backups >= 0 are required")
        if (self.epochs or 0) < 0 or (self.batch_size is not None and self.batch_size < 1) or \
                (self.lr is not None and self.lr <= 0):
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")


def resolve_train(cfg: WsolTrainConfig, arch: WsolArch) -> WsolTrainConfig:
    """``cfg`` with every unset value (loss weights included) taken from its recipe for ``arch``."""
    recipe = recipe_for(cfg.recipe, arch.method, arch.backbone)
    return replace(fill(cfg, recipe), weights=fill(cfg.weights, recipe))


def _require_resolved(cfg: WsolTrainConfig) -> None:
    unset = [f.name for f in fields(cfg) if getattr(cfg, f.name) is None]
    if unset:
        raise ValueError(f"unresolved train settings {unset}; pass the config through resolve_train first")


def method_losses(method: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  w: LossWeights) -> dict[str, torch.Tensor]:
    """Forward for training and the method's loss terms (``total`` included)."""
    out = model.train_forward(x, y)
    if method == "bas":
        return bas_losses(out.logits, out.s_bg, out.s_fg, out.m_fg, y, w, out.maps)
    return sat_losses(out.logits, out.m, y, w)


def param_settings(name: str, p: torch.Tensor, cfg: WsolTrainConfig) -> tuple[float, float]:
    """(learning rate, weight decay) of parameter ``name``: with SGD BAS's per-part rates (new parts, i.e. the
    generator and the head, 10x; biases 2x); no decay on 1-D parameters and tokens unless ``decay_all``."""
    lr = float(cfg.lr)  # type: ignore[arg-type]
    if cfg.optimizer == "sgd":
        new_part = name.startswith(("generator.", "late.head.", "head."))
        lr *= (10.0 if new_part else 1.0) * (2.0 if name.endswith(".bias") else 1.0)
    no_decay = p.ndim <= 1 or name.endswith(("_token", "pos_embed", "spatial_pos"))
    return lr, 0.0 if no_decay and not cfg.decay_all else float(cfg.weight_decay)  # type: ignore[arg-type]


def make_optimizer(model: torch.nn.Module, cfg: WsolTrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov, momentum 0.9) or AdamW over groups of equal (rate, decay); each group keeps its ``base_lr``
    for :func:`set_epoch_lr`. ``cfg`` must be resolved."""
    _require_resolved(cfg)
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        groups.setdefault(param_settings(name, p, cfg), []).append(p)
    params = [{"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(params, lr=cfg.lr)


def lr_factor(epoch: int, lr_step: int) -> float:
    """The rate's factor in 0-based ``epoch``: x0.1 from epoch ``lr_step`` on (0 = never)."""
    return LR_DROP if lr_step and epoch >= lr_step else 1.0


def set_epoch_lr(opt: torch.optim.Optimizer, epoch: int, lr_step: int) -> None:
    """Set every group's rate for 0-based ``epoch`` from its ``base_lr``."""
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * lr_factor(epoch, lr_step)


def accumulate_step(model: torch.nn.Module, method: str, x: torch.Tensor, y: torch.Tensor, w: LossWeights,
                    micro_batch: int = 0) -> dict[str, float]:
    """Backward of one batch in pieces of ``micro_batch`` (0 = at once), each term weighted by its share of the
    batch, so the gradient is the whole batch's for per-image means. SAT's batch area term is then taken per
    piece, and BatchNorm sees each piece alone. Returns the batch's loss terms."""
    step = micro_batch if 0 < micro_batch < len(x) else len(x)
    sums: dict[str, float] = {}
    for i in range(0, len(x), step):
        share = len(x[i:i + step]) / len(x)
        terms = method_losses(method, model, x[i:i + step], y[i:i + step], w)
        (terms["total"] * share).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * share
    return sums


def train_epoch(model: torch.nn.Module, method: str, loader, opt: torch.optim.Optimizer, w: LossWeights,
                device: torch.device, progress: Progress | None = None, micro_batch: int = 0) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of every loss term."""
    model.train()
    sums: dict[str, float] = {}
    n = 0
    for x, y, _ in loader:
        opt.zero_grad(set_to_none=True)
        terms = accumulate_step(model, method, x.to(device), y.to(device), w, micro_batch)
        opt.step()
        n += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        if progress:
            progress(1, loss=f"{terms['total']:.3f}")
    return {k: v / max(n, 1) for k, v in sums.items()}


def evaluate(model: torch.nn.Module, records: list[WsolRecord], size: int, device: torch.device, tau: float = 0.5,
             topk: int | None = None, batch_size: int = 32, crop_ratio: float = 0.875,
             progress: Progress | None = None) -> dict[str, float]:
    """Every metric at one CAM threshold ``tau``, centre-crop classes, IoU >= 0.5, per-image means (percent)."""
    p = EvalProtocol(thresholds=str(tau), topk=topk or 0, tencrop=False, iou_strict=False, per_class=False,
                     box_past_end=False, batch_size=batch_size)
    return evaluate_protocol(model, records, size, device, p, crop_ratio, progress=progress)


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
    """The train config stored in a checkpoint; runs from before recipes existed followed facelab's."""
    d = {"recipe": "facelab", **d}
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
        model = create_wsol_model(arch, cfg.drop_path or 0.0)
        model.load_state_dict(state["model"])
        model.to(device)
        opt = make_optimizer(model, cfg)
        settings = [(g["base_lr"], g["weight_decay"]) for g in opt.param_groups]
        opt.load_state_dict(state["optimizer"])
        for group, (base_lr, decay) in zip(opt.param_groups, settings, strict=True):  # this run's schedule
            group["base_lr"], group["weight_decay"] = base_lr, decay
        torch.set_rng_state(state["rng"])
        return model, opt, int(state["epoch"])
    if force:
        _drop_backups(out)
    torch.manual_seed(cfg.seed)
    model = create_wsol_model(arch, cfg.drop_path or 0.0)
    if pretrained:
        load_pretrained(model, pretrained)
    model.to(device)
    return model, make_optimizer(model, cfg), 0


def train_wsol(data: Path, out: Path, arch: WsolArch, cfg: WsolTrainConfig, device: torch.device,
               pretrained: Path | None = None, force: bool = False, progress: Progress | None = None,
               records: list[WsolRecord] | None = None) -> dict:
    """Train to ``cfg.epochs`` (resuming), saving after every epoch; returns the last epoch's mean losses.
    Unset values of ``cfg`` come from its recipe for ``arch`` (:func:`resolve_train`)."""
    return fit_wsol(data, out, arch, cfg, device, pretrained, force, progress, records)[3]


def fit_wsol(data: Path, out: Path, arch: WsolArch, cfg: WsolTrainConfig, device: torch.device,
             pretrained: Path | None = None, force: bool = False, progress: Progress | None = None,
             records: list[WsolRecord] | None = None) -> tuple[torch.nn.Module, WsolArch, WsolTrainConfig, dict]:
    """:func:`train_wsol` that also returns the trained model (eval mode), its arch and its resolved config."""
    out = Path(out)
    records = load_split(data, "train") if records is None else records
    if not records:
        raise FacelabError(f"{data}: no training images found; check train_test_split.txt")
    n_cls = max(r.label for r in records) + 1
    if n_cls > arch.num_classes:
        arch = replace(arch, num_classes=n_cls)
    cfg = resolve_train(cfg, arch)
    model, opt, start = _resume_or_create(out, arch, cfg, device, pretrained, force)
    ds = WsolDataset(records, cfg.input_size, True, cfg.crop_ratio, seed=cfg.seed + start)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                         collate_fn=collate, drop_last=len(ds) > cfg.batch_size)
    history: list[dict] = []
    last: dict[str, float] = {}
    for epoch in range(start, cfg.epochs):  # type: ignore[arg-type]
        set_epoch_lr(opt, epoch, cfg.lr_step or 0)
        last = train_epoch(model, arch.method, loader, opt, cfg.weights, device, progress, cfg.micro_batch)
        history.append({"epoch": epoch + 1, **{k: round(v, 5) for k, v in last.items()}})
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, " ".join(f"{k}={v:.4f}" for k, v in last.items()))
        save_checkpoint(out, model, opt, arch, cfg, epoch + 1, history)
    result = {"epochs_done": max(start, cfg.epochs or 0), "num_classes": arch.num_classes, **last}
    return model.eval(), arch, cfg, result

