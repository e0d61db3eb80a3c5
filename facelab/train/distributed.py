"""Distributed training with PyTorch's own DistributedDataParallel, launched by ``torchrun``.

The same ``python main.py train ...`` runs single-process, or under ``torchrun --nproc_per_node N`` as N processes:
gloo on CPU, NCCL on CUDA (one GPU per ``LOCAL_RANK``). Batch size is per process; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist

from facelab.errors import FacelabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def env_context() -> DistContext:
    """The context ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise FacelabError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({exc}); launch with torchrun") from exc
    return DistContext(rank=rank, world_size=world, local_rank=local)


def process_device(device: torch.device, ctx: DistContext) -> torch.device:
    """The device of this process: ``cuda:<LOCAL_RANK>`` for CUDA runs, else ``device`` unchanged."""
    if device.type == "cuda" and ctx.enabled:
        if ctx.local_rank >= torch.cuda.device_count():
            raise FacelabError(f"LOCAL_RANK {ctx.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                               "use --nproc_per_node <= the number of GPUs")
        return torch.device("cuda", ctx.local_rank)
    return device


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device, ctx: DistContext | None = None,
                     timeout_minutes: float = 30.0) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; returns the context and this process's device.

    A one-process run returns ``(SINGLE, device)`` and touches nothing.
    """
    ctx = env_context() if ctx is None else ctx
    if not ctx.enabled:
        return SINGLE, device
    device = process_device(device, ctx)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = backend_for(device)
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
        log.debug("rank %d/%d joined (%s on %s)", ctx.rank, ctx.world_size, backend, device)
    return ctx, device


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (so all ranks stop or roll back together)."""
    if not ctx.enabled:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(ctx: DistContext, device: torch.device) -> None:
    if ctx.enabled:
        if device.type == "cuda":
            dist.barrier(device_ids=[device.index if device.index is not None else 0])
        else:
            dist.barrier()


def broadcast_params(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (after a rollback each rank reloads the same file, this
    keeps them equal even when ranks read different copies)."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def mean_over_ranks(values: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Average scalar losses over ranks (for display and history)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= ctx.world_size
    return dict(zip(keys, (float(v) for v in t.tolist()), strict=True))


def wrap_module(module: torch.nn.Module, ctx: DistContext, device: torch.device):
    """``DistributedDataParallel(module)`` for a distributed run (its calls average the gradients of ``module``
    over processes during backward), or ``module`` itself for one process.

    The trainer wraps the generator and each critic on its own, so each is exactly one DDP module with all its
    parameters used in every forward.
    """
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)


#: Temporary files a training run writes into its model folder (checkpoints, config.json, previews).
MODEL_TEMPS = (".pt", ".json", ".png")


@contextlib.contextmanager
def model_folder_lock(folder: Path, stage: str = "train") -> Iterator[None]:
    """Hold the lock of the model ``folder`` and remove the temporaries an interrupted run left in it and in its
    preview history (a subfolder written under the same lock)."""
    from facelab.train.preview import HISTORY_DIR
    from facelab.utils.lock import clean_temps, stage_folders

    with stage_folders(stage, folder, temps=MODEL_TEMPS):
        removed = clean_temps(Path(folder) / HISTORY_DIR, MODEL_TEMPS)
        if removed:
            log.info("%s: removed %d temporary file(s) an interrupted run left in %s", stage, len(removed),
                     Path(folder) / HISTORY_DIR)
        yield


@contextlib.contextmanager
def main_rank_lock(folder: Path, ctx: DistContext, device: torch.device) -> Iterator[None]:
    """Rank 0 holds the lock of the model ``folder`` (and cleans its leftover temporaries); every rank learns at
    once whether it got it, so a refused run stops on all ranks instead of leaving the others waiting."""
    with contextlib.ExitStack() as stack:
        refused: FacelabError | None = None
        if ctx.is_main:
            try:
                stack.enter_context(model_folder_lock(folder))
            except FacelabError as exc:
                refused = exc
        if any_rank(refused is not None, ctx, device):
            raise refused or FacelabError(f"{folder} is in use by another run; rank 0 could not lock it")
        yield
