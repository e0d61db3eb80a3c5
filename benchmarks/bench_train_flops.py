"""Training FLOP rate of SAEHD: FLOPs per iteration (torch's flop counter over forward + backward of a train step)
times iterations per second, over the true ceiling: the best rate, measured in the same run with the same threads,
of the kernels the model could use for its own layers (GEMM, direct convolution in both layouts, im2col + GEMM;
``ceiling.py``). Each row names the kernel and shape that set the ceiling; ``--candidates`` lists them all.

CPU: full SAEHD (liae-ud defaults) at res 64, batch 8, fp32; 2 threads and 1 thread.
CUDA: the same model in bf16 mixed precision, against bf16 tensor-core GEMM and cuDNN convolution.

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
from ceiling import KernelRate, best, candidate_rates, layer_shapes  # noqa: E402
from common import device_name, print_rows  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from facelab.models import create_model  # noqa: E402
from facelab.models.batch import Batch  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.train.step import new_trainee, train_step  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    """Training FLOP rate over the true ceiling with ``threads`` CPU threads.

    The ceiling is the best rate of the kernels the model could use for its own layers (``ceiling.py``), timed
    before and after the training steps so both see the same machine load; the ratio uses the best rate of each
    candidate and the best iteration time. A ratio above 1 raises: the ceiling would not be one.
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

    shapes = layer_shapes(model, step)  # also the warm-up: allocations, kernel choice
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    seconds = 0.3 if quick else 0.6
    rates = candidate_rates(shapes, device, dtype, seconds)
    rounds = 3 if quick else 6
    per_round = 1 if device.type == "cpu" else 10
    best_sec = float("inf")
    for _ in range(rounds * per_round):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        best_sec = min(best_sec, time.perf_counter() - start)
    again = candidate_rates(shapes, device, dtype, seconds)
    rates = [KernelRate(r.kernel, r.shape, max(r.flops_per_s, q.flops_per_s)) for r, q in zip(rates, again, strict=True)]
    top = best(rates)
    value = flops / best_sec / top.flops_per_s
    tag = f"{threads}threads" if device.type == "cpu" else "bf16"
    detail = (f"saehd {archi} res {res} batch {batch}: {flops / 1e12:.3f} TFLOP/iter, {best_sec:.2f} s/iter, "
              f"{flops / best_sec / 1e9:.1f} GFLOP/s; ceiling {top.describe()}"
              f"{' channels_last' if channels_last else ''}")
    if value > 1.0:
        raise RuntimeError(f"training rate above its ceiling ({value:.3f}): a faster kernel than those measured "
                           f"exists; {detail}")
    return {
        "name": f"train_flop_rate_over_ceiling_{tag}",
        "value": value,
        "target": ">= 0.85" if device.type == "cpu" else ">= 0.4",
        "unit": "ratio",
        "detail": detail,
        "device": device_name(device),
        "candidates": [r.describe() for r in sorted(rates, key=lambda r: -r.flops_per_s)],
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
    parser.add_argument("--candidates", action="store_true", help="also list every ceiling candidate's rate")
    args = parser.parse_args()
    rows = run(args.quick, args.resolution, args.batch, args.channels_last, args.archi)
    print_rows(rows)
    if args.candidates:
        for row in rows:
            print(f"# {row['name']} ceiling candidates:")
            for line in row["candidates"]:
                print(f"#   {line}")


if __name__ == "__main__":
    main()
