"""Training FLOP rate of SAEHD: FLOPs per iteration (torch's flop counter over forward + backward of a train step)
times iterations per second, over this machine's own matmul rate measured in the same run with the same threads.

CPU: full SAEHD (liae-ud defaults) at res 64, batch 8, fp32, against a 2048^3 fp32 matmul; 2 threads and 1 thread.
CUDA: the same model in bf16 mixed precision against a bf16 matmul.

    python benchmarks/bench_train_flops.py [--quick] [--resolution 64] [--batch 8] [--archi liae-ud] [--channels-last]

The process runs as ``python main.py train`` does: OpenMP's short spin-wait set before torch is imported and the
allocator keeping freed memory (``facelab/utils/runtime.py``); a script importing ``run`` must call
``set_openmp_defaults()`` before it imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facelab.utils.runtime import keep_freed_memory, set_openmp_defaults  # noqa: E402

set_openmp_defaults()

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from common import device_name, print_rows  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from facelab.models import create_model  # noqa: E402
from facelab.models.batch import Batch  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.train.step import new_trainee, train_step  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, min_seconds: float) -> float:
    """FLOP/s of repeated n x n @ n x n products (n = 2048 on CPU, 8192 on CUDA) over ``min_seconds``."""
    n = 8192 if device.type == "cuda" else 2048
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    c = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=c)
    _sync(device)
    reps, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b, out=c)
        reps += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and reps >= 3:
            return 2.0 * n ** 3 * reps / elapsed


def make_batch(res: int, batch: int, device: torch.device, channels_last: bool) -> Batch:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(batch, 1, res, res)
    mask[..., res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    img = lambda: torch.rand(batch, 3, res, res, generator=g).to(device, memory_format=fmt)  # noqa: E731
    m = mask.to(device, memory_format=fmt)
    return Batch(img(), img(), m, m, img(), img(), m, m)


def measure(threads: int | None, device: torch.device, quick: bool, res: int, batch: int,
            channels_last: bool, archi: str = "liae-ud") -> dict[str, Any]:
    """Training FLOP rate over matmul rate with ``threads`` CPU threads.

    Rounds alternate a matmul timing and a few training iterations, so both see the same machine load; the ratio
    uses the best matmul rate and the best iteration time of all rounds.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": res, "archi": archi}, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opts = TrainOptions(batch_size=batch, mixed_precision=device.type == "cuda")
    trainee = new_trainee(model, opts)
    knobs = opts.knobs()
    data = make_batch(res, batch, device, channels_last)

    def step() -> None:
        train_step(trainee, data, knobs, opts.clipgrad, opts.mixed_precision)

    step()  # warm-up: allocations, kernel choice
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    rounds = 3 if quick else 6
    per_round = 1 if device.type == "cpu" else 10
    best_mm, best_sec = 0.0, float("inf")
    for _ in range(rounds):
        best_mm = max(best_mm, matmul_rate(device, dtype, 1.0))
        for _ in range(per_round):
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            best_sec = min(best_sec, time.perf_counter() - start)
    tag = f"{threads}threads" if device.type == "cpu" else "bf16"
    return {
        "name": f"train_flop_rate_over_matmul_{tag}",
        "value": flops / best_sec / best_mm,
        "target": ">= 0.9" if device.type == "cpu" else ">= 0.4",
        "unit": "ratio",
        "detail": (f"saehd {archi} res {res} batch {batch}: {flops / 1e12:.3f} TFLOP/iter, {best_sec:.2f} s/iter, "
                   f"{flops / best_sec / 1e9:.1f} GFLOP/s; matmul {dtype} {best_mm / 1e9:.1f} GFLOP/s"
                   f"{' channels_last' if channels_last else ''}"),
        "device": device_name(device),
    }


def run(quick: bool = False, resolution: int = 64, batch: int = 8, channels_last: bool = False,
        archi: str = "liae-ud") -> list[dict]:
    """Ratios on CUDA when present, else on the CPU with 2 threads and with 1 thread."""
    if torch.cuda.is_available():
        return [measure(None, torch.device("cuda"), quick, resolution, batch, channels_last, archi)]
    keep_freed_memory()
    saved = torch.get_num_threads()
    try:
        return [measure(t, torch.device("cpu"), quick, resolution, batch, channels_last, archi) for t in (2, 1)]
    finally:
        torch.set_num_threads(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and shorter matmul timing")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--archi", default="liae-ud", help="SAEHD archi (default: the default liae-ud)")
    parser.add_argument("--channels-last", action="store_true", help="model and batch in channels-last layout")
    args = parser.parse_args()
    print_rows(run(args.quick, args.resolution, args.batch, args.channels_last, args.archi))


if __name__ == "__main__":
    main()
