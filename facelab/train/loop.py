"""The training loop: create or resume a run, step the model, guard against NaN and loss spikes, save, preview.

``train`` is the library entry of ``python main.py train``. It stops at ``target_iter``, after ``max_minutes``, when
``should_stop()`` says so, on a stop request file, or on Ctrl-C / SIGTERM (then it saves and returns cleanly);
a save request file saves at once (:mod:`facelab.train.control`). Under ``torchrun`` every rank
runs it; only rank 0 writes, and all ranks stop, save and roll back together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import signal
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.models.base import TrainableModel
from facelab.models.store import model_from_checkpoint
from facelab.train import checkpoint as ck
from facelab.train import distributed as dd
from facelab.train.control import TrainControl
from facelab.train.index import index_run
from facelab.train.kernel_plan import with_kernel_plan
from facelab.train.optim import make_optimizers
from facelab.train.options import TrainOptions, apply_fixed
from facelab.train.preview import render_preview, write_loss_plot, write_preview
from facelab.train.result import TrainResult, check_arch
from facelab.train.step import StepResult, Trainee, train_step
from facelab.utils.progress import Progress as ProgressFn
from facelab.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    """NaN / spike guard: a bad step is skipped; ``max_bad`` bad steps in a row roll back to the last checkpoint."""

    max_bad: int = 5
    spike_factor: float = 10.0  # a total loss above spike_factor x the running median is a spike
    window: int = 50  # running median over this many good steps
    min_history: int = 10  # no spike test before this many good steps
    max_rollbacks: int = 3  # rollbacks in a row without a good save -> give up with an error


@dataclass
class Run:
    """The mutable state of a run in progress."""

    model: TrainableModel
    optimizers: dict[str, torch.optim.Optimizer]
    iteration: int
    history: dict[str, list[float]]
    model_dir: Path
    name: str
    created: bool
    ctx: dd.DistContext
    device: torch.device
    critics: dict[str, torch.nn.Module] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # how training faces were chosen (fixed at creation)
    loader_state: dict[str, Any] | None = None  # of the checkpoint this run resumed from
    loader: Any = None  # the FaceLoader feeding this run
    trainee: Trainee | None = None  # the step's view of model, critics and optimizers (DDP-wrapped when on)
    last_batch: Any = None  # the batch a model's unwarped re-train step repeats
    skipped: int = 0
    bad_in_row: int = 0
    rollbacks: int = 0
    rollbacks_in_row: int = 0
    saves: int = 0
    last_saved_iteration: int = -1
    recent: deque = field(default_factory=lambda: deque(maxlen=50))


# -- create or resume ---------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed the global RNGs of torch, numpy and Python (same on every rank: weights must stay equal)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def _load_states(run: Run, ckpt: dict[str, Any], source: Path) -> None:
    """Load optimizer states of a checkpoint into a run; new optimizers start fresh."""
    for key, opt in run.optimizers.items():
        state = ckpt["optimizers"].get(key)
        if state is None:
            log.info("optimizer %s is new in this run; it starts fresh", key)
            continue
        try:
            opt.load_state_dict(state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise FacelabError(f"optimizer state {key} in {source} does not fit this model ({exc}); "
                               "use a new --name") from exc


def _log_changed_options(before: dict[str, Any], opts: TrainOptions) -> None:
    changed = [f"{k} {before[k]!r} -> {v!r}" for k, v in dataclasses.asdict(opts).items()
               if k in before and before[k] != v]
    if changed:
        log.info("train options changed since the last run: %s", ", ".join(changed))


def resolved_options(opts: TrainOptions, model_type: str) -> TrainOptions:
    """The options a step uses: pretraining's settings, then the model's fixed options (each one the user set
    to another value is named once in a warning)."""
    from facelab.models import MODELS

    cls = MODELS.get(model_type).factory
    eff, notes = apply_fixed(opts.effective(), getattr(cls, "fixed_options", {}))
    if notes:
        log.warning("%s models fix these options, ignoring what was asked: %s", model_type, "; ".join(notes))
    return eff


def pretrained_model(source: Path, model_type: str, overrides: dict[str, Any],
                     device: torch.device) -> TrainableModel:
    """A new model started from the weights of the pretrained model at ``source`` (a model folder or one of its
    checkpoint files): same model type, and its architecture (an architecture flag that differs is an error)."""
    path = source if source.is_file() else ck.last_path(source)
    if not path.is_file():
        raise FacelabError(f"no pretrained model checkpoint at {source}")
    ckpt = ck.read_checkpoint(path, map_location="cpu")
    if model_type and ckpt["model_type"] != model_type:
        raise FacelabError(f"pretrained model {source} is a {ckpt['model_type']} model, not {model_type}")
    check_arch(ckpt["model_type"], ckpt["arch"], overrides, source)
    model = model_from_checkpoint(ckpt, device, path)
    log.info("new model from the pretrained model %s (its iteration %s)", source, ckpt.get("iteration"))
    return model


def training_dirs(src_dir: Path, dst_dir: Path, pretraining_dir: Path | None, pretrain: bool) -> tuple[Path, Path]:
    """The (src, dst) face folders of a run: the pretraining faces on both sides while pretraining (when given,
    as DeepFaceLab's ``--pretraining-data-dir``), else the run's own."""
    if pretrain and pretraining_dir is not None:
        return Path(pretraining_dir), Path(pretraining_dir)
    return Path(src_dir), Path(dst_dir)


def pretraining_ended(saved_opts: Mapping[str, Any], eff: TrainOptions, fixed: Mapping[str, Any]) -> bool:
    """Whether the checkpoint was pretraining (``saved_opts``, the options it was saved with) and this run, under
    its effective options ``eff``, is not. Never for a model that fixes ``pretrain`` (it has no pretraining)."""
    return "pretrain" not in fixed and bool(saved_opts.get("pretrain", False)) and not eff.pretrain


def end_pretraining(run: Run) -> None:
    """DeepFaceLab's switch from pretraining to training: fresh inter block(s) (the identity codes are learned
    again on the user's faces), iteration 0, and a fresh loss history (the pretraining losses would make the spike
    guard take the higher losses of the fresh inters for a failure). Optimizer states carry on."""
    run.model.reinit_inters()
    run.iteration = 0
    run.history = {}
    log.info("pretraining turned off: inter weights re-initialised, iteration reset to 0")


def _critics_from(model: TrainableModel, ckpt: dict[str, Any], source: Path) -> dict[str, torch.nn.Module]:
    try:
        return {name: model.critic_from_state(name, state) for name, state in ckpt.get("critics", {}).items()}
    except (KeyError, RuntimeError, ValueError) as exc:
        raise FacelabError(f"discriminator weights in {source} do not fit this model ({exc}); "
                           "use a new --name") from exc


def open_run(model_dir: Path, model_type: str, arch_overrides: dict[str, Any], opts: TrainOptions,
             device: torch.device, ctx: dd.DistContext = dd.SINGLE, pretrained: Path | None = None) -> Run:
    """Resume the run in ``model_dir`` when it has a checkpoint, else create a new model: with ``pretrained``
    (a model folder or checkpoint file) its architecture and weights, at iteration 0 with fresh optimizers."""
    from facelab.models import create_model

    last = ck.last_path(model_dir)
    overrides = {k: v for k, v in (arch_overrides or {}).items() if v is not None}
    if last.is_file():
        ckpt = ck.read_checkpoint(last, map_location="cpu")
        if model_type and ckpt["model_type"] != model_type:
            raise FacelabError(f"{model_dir} holds a {ckpt['model_type']} model, not {model_type}; "
                               f"use --model {ckpt['model_type']} or another --name")
        check_arch(ckpt["model_type"], ckpt["arch"], overrides, model_dir)
        eff = resolved_options(opts, ckpt["model_type"])
        seed_everything(opts.seed)
        model = model_from_checkpoint(ckpt, device, last)
        critics = model.make_critics(eff.knobs(), _critics_from(model, ckpt, last))
        run = Run(model, make_optimizers(model, critics, eff, model.lr_cos_cycle), int(ckpt["iteration"]),
                  ck.history_from_tensors(ckpt.get("loss_history", {})), Path(model_dir), Path(model_dir).name,
                  False, ctx, device, critics=critics, data=dict(ckpt.get("data", {})))
        _load_states(run, ckpt, last)
        if pretraining_ended(ckpt.get("opts", {}), eff, getattr(type(model), "fixed_options", {})):
            end_pretraining(run)
        ck.restore_rng(ckpt.get("rng", {}))
        run.loader_state = ckpt.get("loader")
        _log_changed_options(ckpt.get("opts", {}), opts)
        run.last_saved_iteration = run.iteration
        log.info("resuming %s at iteration %d", model_dir, run.iteration)
        return run
    eff = resolved_options(opts, model_type)
    seed_everything(opts.seed)
    if pretrained is not None:
        model = pretrained_model(Path(pretrained), model_type, overrides, device)
    else:
        model = create_model(model_type, overrides, device)
    critics = model.make_critics(eff.knobs(), {})
    return Run(model, make_optimizers(model, critics, eff, model.lr_cos_cycle), 0, {}, Path(model_dir),
               Path(model_dir).name, True, ctx, device, critics=critics, data={"holdout": opts.holdout})


# -- saving and rolling back --------------------------------------------------------------------------------------
def params_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def run_finite(run: Run) -> bool:
    """The model's and every critic's weights are finite."""
    return all(params_finite(m) for m in (run.model, *run.critics.values()))


def _loader_state(run: Run) -> dict[str, Any] | None:
    """The loader's RNG position for an exact resume (one in-process loader only; None otherwise)."""
    if run.loader is None or run.ctx.enabled:
        return None
    state = run.loader.state_dict()
    return None if state is None else {"world_size": 1, "state": state}


def save_run(run: Run, opts: TrainOptions, preview_batch: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    """Checkpoint + config.json (+ preview.png, loss.png) by rank 0; every rank waits for it."""
    if run.ctx.is_main:
        ckpt = ck.make_checkpoint(run.model, run.optimizers, run.iteration, run.history,
                                  opts=dataclasses.asdict(opts), loader_state=_loader_state(run),
                                  critics=run.critics, data=run.data)
        ck.save_checkpoint(run.model_dir, ckpt, opts.backups)
        ck.write_config(run.model_dir, run.name, ckpt)
        if preview_batch is not None:
            grid = render_preview(run.model, *preview_batch)
            write_preview(run.model_dir, grid, run.iteration, opts.preview_history)
            write_loss_plot(run.model_dir / "loss.png", run.history, title=f"{run.name} @ {run.iteration}")
    dd.barrier(run.ctx, run.device)
    run.saves += 1
    run.rollbacks_in_row = 0
    run.last_saved_iteration = run.iteration


def rollback(run: Run, guard: GuardConfig) -> None:
    """Reload weights and optimizer states of the last good checkpoint (every rank reads the same file)."""
    run.rollbacks += 1
    run.rollbacks_in_row += 1
    if run.rollbacks_in_row > guard.max_rollbacks:
        raise FacelabError(f"training of {run.model_dir} keeps diverging (NaN/exploding loss after "
                           f"{guard.max_rollbacks} rollbacks); lower --lr or turn on --clipgrad")
    last = ck.last_path(run.model_dir)
    ckpt = ck.read_checkpoint(last, map_location="cpu")
    run.model.load_state_dict(ckpt["model"])
    for name, state in ckpt.get("critics", {}).items():
        if name in run.critics:
            run.critics[name].load_state_dict(state)
    _load_states(run, ckpt, last)
    for module in (run.model, *run.critics.values()):
        dd.broadcast_params(module, run.ctx)
    run.recent.clear()
    run.bad_in_row = 0
    log.warning("rolled back %s to iteration %d after repeated bad steps", run.model_dir, int(ckpt["iteration"]))


# -- one step -----------------------------------------------------------------------------------------------------
def is_spike(total: float, recent: deque, guard: GuardConfig) -> bool:
    """True when ``total`` exceeds ``spike_factor`` x the median of the recent good totals."""
    if len(recent) < guard.min_history:
        return False
    return total > guard.spike_factor * statistics.median(recent)


def append_history(history: dict[str, list[float]], iteration: int, losses: dict[str, float]) -> None:
    """Append one step; keys new in this step are back-filled with NaN so every list has the same length."""
    n = len(history.get("iteration", []))
    history.setdefault("iteration", []).append(float(iteration))
    for key, value in losses.items():
        history.setdefault(key, [math.nan] * n).append(float(value))
    for values in history.values():
        if len(values) < n + 1:
            values.append(math.nan)


def step_batch(run: Run, batch: Any) -> Any:
    """The batch this iteration trains on: every n-th iteration of a model that asks for it re-trains the
    previous batch with its targets as inputs (Quick96), else the new one."""
    every = run.model.retrain_unwarped_every
    if every and run.iteration % every == 0 and run.last_batch is not None:
        prev = run.last_batch
        return dataclasses.replace(prev, warped_src=prev.target_src, warped_dst=prev.target_dst)
    if every:
        run.last_batch = batch
    return batch


def run_step(run: Run, batch: Any, opts: TrainOptions) -> StepResult:
    """One training step on this process's device (through the DDP wrappers when there are some); ``opts`` are
    the resolved options (:func:`resolved_options`). A pinned batch is copied to a GPU asynchronously."""
    batch = step_batch(run, batch.to(run.device, non_blocking=True))
    return train_step(run.trainee, batch, opts.knobs(), opts.clipgrad, opts.mixed_precision)


def recent_totals(history: dict[str, list[float]], n: int) -> list[float]:
    """src + dst loss of the last ``n`` recorded steps (seeds the spike test of a resumed run)."""
    totals = [s + d for s, d in zip(history.get("src_loss", []), history.get("dst_loss", []), strict=True)]
    return [t for t in totals[-n:] if math.isfinite(t)]


def _total(losses: dict[str, float]) -> float:
    return float(losses.get("src_loss", 0.0)) + float(losses.get("dst_loss", 0.0))


# -- signals ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def stop_signals() -> Iterator[dict[str, bool]]:
    """While active, Ctrl-C / SIGTERM set ``flag["hit"]`` (stop after this step); a second Ctrl-C interrupts."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag["hit"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["hit"] = True
        log.warning("stopping after this iteration (saving); press Ctrl-C again to abort")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- the loop -----------------------------------------------------------------------------------------------------
@dataclass
class _Clock:
    start: float
    last_save: float
    step_seconds: float = 0.0
    steps: int = 0


def _stop_reason(run: Run, opts: TrainOptions, clock: _Clock, flag: dict[str, bool],
                 should_stop: Callable[[], bool] | None) -> str:
    if opts.target_iter and run.iteration >= opts.target_iter:
        return "target_iter"
    if opts.max_minutes and time.monotonic() - clock.start >= opts.max_minutes * 60.0:
        return "max_minutes"
    if flag["hit"]:
        return "interrupted"
    if should_stop is not None and should_stop():
        return "should_stop"
    return ""


def _sync(run: Run, stop: str, autosave: bool, bad: bool) -> tuple[bool, bool, bool]:
    """Agree across ranks on stop / autosave / bad (any rank's yes is everybody's yes); one collective."""
    if not run.ctx.enabled:
        return bool(stop), autosave, bad
    t = torch.tensor([int(bool(stop)), int(autosave), int(bad)], dtype=torch.int32, device=run.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    s, a, b = (bool(v) for v in t.tolist())
    return s, a, b


def _report(progress: ProgressFn | None, run: Run, ms: float, losses: dict[str, float], bad: bool) -> None:
    if progress is None:
        return
    progress(1, iter=run.iteration, ms=f"{ms:.0f}", src=f"{losses.get('src_loss', math.nan):.4f}",
             dst=f"{losses.get('dst_loss', math.nan):.4f}", **({"skipped": run.skipped} if run.skipped else {}))


def train_steps(run: Run, batches: Iterator[Any], opts: TrainOptions, preview_batch, guard: GuardConfig,
                progress: ProgressFn | None, should_stop: Callable[[], bool] | None, flag: dict[str, bool],
                clock: _Clock) -> str:
    """Step until a stop condition; returns why it stopped. Saves at autosave time, never after a bad step."""
    eff = resolved_options(opts, run.model.name)
    control = TrainControl(run.model_dir) if run.ctx.is_main else None  # save / stop requests, status.json
    while True:
        reason = _stop_reason(run, opts, clock, flag, should_stop)
        asked = control.poll(run.iteration, run.history, opts.target_iter, run.last_saved_iteration) \
            if control is not None else set()
        reason = reason or ("stop_requested" if "stop" in asked else "")
        due = opts.autosave_minutes > 0 and time.monotonic() - clock.last_save >= opts.autosave_minutes * 60
        due = (due or "save" in asked) and run.bad_in_row == 0 and run.iteration != run.last_saved_iteration
        stop, autosave, _ = _sync(run, reason, due, False)
        if stop:
            if control is not None:
                control.write_status("stopped", run.iteration, run.history, opts.target_iter,
                                     run.last_saved_iteration, reason or "stopped_by_other_rank")
            return reason or "stopped_by_other_rank"
        if autosave:
            save_run(run, opts, preview_batch)
            clock.last_save = time.monotonic()
        t0 = time.perf_counter()
        result = run_step(run, next(batches), eff)
        losses = dd.mean_over_ranks(dict(result.losses), run.ctx, run.device)
        bad = not result.finite or not all(math.isfinite(v) for v in losses.values()) \
            or is_spike(_total(losses), run.recent, guard)
        _, _, bad = _sync(run, "", False, bad)
        ms = (time.perf_counter() - t0) * 1000.0
        clock.step_seconds += ms / 1000.0
        clock.steps += 1
        run.iteration += 1
        if bad:
            run.skipped += 1
            run.bad_in_row += 1
            broken = dd.any_rank(not run_finite(run), run.ctx, run.device)
            if run.bad_in_row >= guard.max_bad or broken:
                rollback(run, guard)
        else:
            run.bad_in_row = 0
            run.recent.append(_total(losses))
            append_history(run.history, run.iteration, losses)
        _report(progress, run, ms, losses, bad)


def final_save(run: Run, opts: TrainOptions, preview_batch, guard: GuardConfig) -> None:
    """Save at the end unless nothing changed. After a bad last step the last good checkpoint stays as it is; a
    model with non-finite weights is rolled back, never saved."""
    if dd.any_rank(not run_finite(run), run.ctx, run.device):
        rollback(run, guard)
        return
    if run.bad_in_row:
        log.warning("the last step of %s was bad (NaN or loss spike); keeping the checkpoint of iteration %d",
                    run.model_dir, run.last_saved_iteration)
        return
    if run.iteration != run.last_saved_iteration:
        save_run(run, opts, preview_batch)


def _mean_tail(history: dict[str, list[float]], key: str, n: int = 100) -> float:
    values = [v for v in history.get(key, [])[-n:] if math.isfinite(v)]
    return float(sum(values) / len(values)) if values else math.nan


def make_trainee(run: Run) -> Trainee:
    """The step's view of a run: the generator and each critic wrapped by DDP in a distributed run."""
    calls = {name: dd.wrap_module(c, run.ctx, run.device) for name, c in run.critics.items()}
    return Trainee(run.model, dd.wrap_module(run.model, run.ctx, run.device), run.optimizers, run.critics, calls)


# -- entry --------------------------------------------------------------------------------------------------------
def cudnn_benchmark_on(device: torch.device) -> bool:
    """Whether training lets cuDNN time its convolution algorithms once per shape and keep the fastest: on CUDA,
    where every step has the same shapes (one resolution, one batch size), so the timing pays for itself."""
    return device.type == "cuda"


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` True inside when ``on`` (untouched otherwise); its old value after."""
    if not on:
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def loader_seed(seed: int, start_iteration: int) -> int:
    """The loader seed of a run segment: ``seed`` for a new model; a resumed run without a restorable loader
    position gets a fresh stream derived from the iteration it starts at (never a replay of the first one)."""
    if start_iteration == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(start_iteration)]).generate_state(1, np.uint64)[0] >> 1)


def make_loader(src_dir: Path, dst_dir: Path, run: Run, opts: TrainOptions):
    """The face loader of this rank; continues the checkpoint's loader stream when it holds one."""
    from facelab.train.loader import FaceLoader, pin_batches

    workers = None if opts.workers < 0 else opts.workers
    saved = run.loader_state
    exact = saved is not None and not run.ctx.enabled and int(saved.get("world_size", 0)) == 1
    seed = opts.seed if exact else loader_seed(opts.seed, run.iteration)
    loader = FaceLoader(Path(src_dir), Path(dst_dir), run.model.resolution, run.model.face_type,
                        resolved_options(opts, run.model.name), seed=seed, rank=run.ctx.rank,
                        world_size=run.ctx.world_size, workers=workers,
                        src_holdout=float(run.data.get("holdout", 0.0)),
                        pin_memory=pin_batches(run.device, torch.cuda.is_available()))
    if exact and loader.state_dict() is not None:
        loader.load_state_dict(saved["state"])
    return loader


def train(workspace: Workspace | Path | str, model_name: str | None, model_type: str,
          arch_overrides: dict[str, Any] | None, opts: TrainOptions, device: torch.device,
          progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None, *,
          src_dir: Path | None = None, dst_dir: Path | None = None, preview: bool = True,
          ctx: dd.DistContext = dd.SINGLE, on_ready: Callable[[TrainableModel, Run], None] | None = None,
          guard: GuardConfig = GuardConfig(), pretraining_dir: Path | None = None,
          pretrained: Path | None = None) -> TrainResult:
    """Create or resume ``workspace/model/<model_name or model_type>`` and train it; see the module docstring.

    While ``opts.pretrain`` is on, ``pretraining_dir`` (when given) feeds both sides. ``pretrained``: a model
    folder or checkpoint a new model starts from (ignored when resuming).

    ``progress(n, **info)`` is called once per iteration with ``iter``, ``ms``, ``src``, ``dst``. ``on_ready`` is
    called once the model is built or loaded (the CLI prints its description). Under torchrun pass the context
    of :func:`facelab.train.distributed.init_distributed` and this rank's device.
    """
    from facelab.models import TRAINING_FREE, model_kind

    ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
    model_dir = ws.model(model_name or model_type)
    if model_kind(model_type) == TRAINING_FREE:
        if ctx.enabled:
            raise FacelabError(f"{model_type} models index source faces; run them without torchrun")
        return index_run(model_dir, model_type, arch_overrides or {}, opts, src_dir or ws.aligned("src"),
                         dst_dir or ws.aligned("dst"), preview, progress)
    run = open_run(model_dir, model_type, arch_overrides or {}, opts, device, ctx, pretrained=pretrained)
    dd.barrier(ctx, device)  # every rank has read the folder before rank 0 writes into it
    run.recent = deque(recent_totals(run.history, guard.window), maxlen=guard.window)
    start_iteration = run.iteration
    if on_ready is not None:
        on_ready(run.model, run)
    run.model.train()
    if opts.channels_last and device.type == "cpu":
        run.model.to(memory_format=torch.channels_last)  # in place, before DDP sees the parameters
    run.trainee = make_trainee(run)
    pretrain = apply_fixed(opts, getattr(type(run.model), "fixed_options", {}))[0].pretrain
    faces = training_dirs(src_dir or ws.aligned("src"), dst_dir or ws.aligned("dst"), pretraining_dir, pretrain)
    loader = run.loader = make_loader(*faces, run, opts)
    try:
        preview_batch = None
        if preview and ctx.is_main:
            src, dst = loader.preview_samples(4)
            preview_batch = (src.to(device), dst.to(device))
        now = time.monotonic()
        clock = _Clock(start=now, last_save=now)
        if run.created:
            save_run(run, opts, preview_batch)  # iteration 0: the first rollback point
        with stop_signals() as flag, cudnn_benchmark(cudnn_benchmark_on(device)):
            try:
                batches = with_kernel_plan(run, iter(loader), opts)
                reason = train_steps(run, batches, opts, preview_batch, guard, progress, should_stop, flag, clock)
            except KeyboardInterrupt:
                reason = "interrupted"
            final_save(run, opts, preview_batch, guard)
    finally:
        loader.close()
        run.loader = None
        run.trainee = None
    seconds = time.monotonic() - clock.start
    return TrainResult(model_dir=model_dir, created=run.created, start_iteration=start_iteration,
                       iteration=run.iteration, seconds=seconds,
                       ms_per_iter=1000.0 * clock.step_seconds / max(1, clock.steps),
                       src_loss=_mean_tail(run.history, "src_loss"), dst_loss=_mean_tail(run.history, "dst_loss"),
                       stopped_by=reason, skipped_steps=run.skipped, rollbacks=run.rollbacks, saves=run.saves)
