"""Training FLOP rate of SAEHD: FLOPs per iteration (torch's flop counter over forward + backward of a train step)
times iterations per second, over the true ceiling: the best rate, measured in the same run with the same threads,
of the kernels the model could use for its own layers (GEMM, direct convolution in both layouts, forward + backward
and each pass alone, im2col + GEMM; ``ceiling.py``). Each row names the kernel and shape that set the ceiling; ``--candidates`` lists them all.

CPU: full SAEHD (liae-ud defaults) at res 64, batch 8, fp32; 2 threads and 1 thread.
CUDA: the same model in bf16 mixed precision, against bf16 tensor-core GEMM and cuDNN convolution.

    python benchmarks/bench_train_flops.py [--quick] [--resolution 64] [--batch 8] [--archi liae-ud] [--layers]
                                           [--channels-last | --no-channels-last] [--no-kernel-choice] [--no-kernel-check]
                                           [--candidates]
    python benchmarks/bench_train_flops.py --compare-paths split-wgemm,split-wconv [--quick]

On CPU the model is set up as ``train`` sets it up: convolution weights in channels-last memory
(``--no-channels-last``: contiguous), and each convolution's kernel chosen by timing the candidates in this run
with these threads (``facelab/models/kernels.py``, paths in ``conv_paths.py``, no cache; ``--no-kernel-choice``: the fixed rule). Each row
is followed by the kernel each convolution got; ``--layers`` adds a table per row: each convolution call, its path,
its share of the step time and its rate over the ceiling (its forward + backward timed alone), then for each of its
passes (forward, input gradient, weight gradient) the best of the kernels tried for it alone and its rate over the
ceiling, which shows what holds the layer back; and the rest of the step (dense layers, element-wise work, losses,
optimizer).

``--compare-paths P[,P]`` prints instead, for 2 and 1 threads, the median whole-step time with kernels chosen
without those paths over the median with all of them, both plans made and their steps alternated in one run.

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
from dataclasses import dataclass  # noqa: E402
from typing import Any, Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from ceiling import KernelRate, best, candidate_rates, layer_shapes  # noqa: E402
from common import device_name, print_rows  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from facelab.models import create_model  # noqa: E402
from facelab.models.batch import Batch  # noqa: E402
from facelab.models.conv_paths import (  # noqa: E402
    PATHS,
    im2col_cl_conv2d,
    weight_grad_by_conv,
    weight_grad_by_gemm,
)
from facelab.models.kernels import (  # noqa: E402
    ConvCall,
    KernelSearch,
    call_path,
    call_tensors,
    check_plan,
    conv_calls,
    current_plan,
    plan_kernels,
    time_path,
    time_plans,
)
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


def best_seconds(step, device: torch.device, n: int) -> float:
    """The best wall time of ``n`` runs of ``step``."""
    best_sec = float("inf")
    for _ in range(n):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        best_sec = min(best_sec, time.perf_counter() - start)
    return best_sec


def kernel_lines(model: torch.nn.Module, step) -> list[str]:
    """``<call> x<modules>: <path>`` for each convolution call of ``step``, largest FLOPs first."""
    calls = conv_calls(model, step)
    return [f"{c.label()} x{len(m)}: {call_path(m[0], c)}" for c, m in sorted(calls.items(), key=lambda kv: -kv[0].flops())]


def pass_kernels(call: ConvCall) -> dict[str, dict[str, Callable[[], object]]]:
    """For each pass of a convolution (forward, input gradient, weight gradient), the kernels tried for it, each
    as a function running that pass alone on ``call``'s shapes and layouts."""
    x, w, _ = call_tensors(call)
    x, w = x.detach(), w.detach()
    stride, padding, kernel = call.stride, call.padding, call.weight[2:]
    cl = x.contiguous(memory_format=torch.channels_last)
    gy = torch.randn(call.input[0], call.weight[0], *call.output_hw).to(memory_format=torch.channels_last)
    bwd = torch.ops.aten.convolution_backward

    def onednn(inp: torch.Tensor, mask: tuple[bool, bool, bool]) -> Callable[[], object]:
        grad = gy.contiguous(memory_format=torch.channels_last if inp is cl else torch.contiguous_format)
        return lambda: bwd(grad, inp, w, None, stride, padding, (1, 1), False, (0, 0), 1, mask)

    return {
        "forward": {"oneDNN": lambda: F.conv2d(x, w, None, stride, padding),
                    "oneDNN-cl": lambda: F.conv2d(cl, w, None, stride, padding),
                    "im2col-cl GEMM": lambda: im2col_cl_conv2d(x, w, None, stride, padding)},
        "input gradient": {"oneDNN": onednn(x, (True, False, False)), "oneDNN-cl": onednn(cl, (True, False, False))},
        "weight gradient": {"oneDNN": onednn(x, (False, True, False)), "oneDNN-cl": onednn(cl, (False, True, False)),
                            "as a conv": lambda: weight_grad_by_conv(cl, gy, kernel, stride, padding),
                            "GEMM": lambda: weight_grad_by_gemm(cl, gy, kernel, stride, padding)},
    }


def pass_rates(call: ConvCall, ceiling: float, reps: int) -> dict[str, tuple[str, float]]:
    """Each pass's best kernel (of :func:`pass_kernels`) and its FLOP rate over ``ceiling``, each timed alone."""
    out = {}
    with torch.no_grad():
        for name, kernels in pass_kernels(call).items():
            sec = {k: best_seconds(fn, torch.device("cpu"), reps + 1) for k, fn in kernels.items()}
            top = min(sec, key=sec.get)
            out[name] = (top, call.flops() / sec[top] / ceiling)
    return out


def layer_table(model: torch.nn.Module, step, step_sec: float, ceiling: float, reps: int) -> list[dict[str, Any]]:
    """One row per convolution call of a training step (largest FLOPs first): its path, the share of the step
    time of its forward + backward timed alone (best of ``reps``) times the modules making it, and its FLOP rate
    over ``ceiling``, then the best kernel of each of its passes alone and its rate over ``ceiling``
    (:func:`pass_rates`: what holds the layer back); then the rest of the step (dense layers, element-wise work,
    losses, optimizer)."""
    rows, spent = [], 0.0
    calls = conv_calls(model, step)
    for call, modules in sorted(calls.items(), key=lambda kv: -kv[0].flops()):
        path = call_path(modules[0], call)
        sec = time_path(call, path, KernelSearch(reps=reps))
        spent += sec * len(modules)
        rows.append({"layer": f"{call.label()} x{len(modules)}", "path": path, "share": sec * len(modules) / step_sec,
                     "over_ceiling": call.flops() * (3 if call.input_grad else 2) / sec / ceiling,
                     "passes": pass_rates(call, ceiling, reps)})
    rows.append({"layer": "rest: dense, element-wise, losses, optimizer", "path": "-",
                 "share": (step_sec - spent) / step_sec, "over_ceiling": float("nan"), "passes": {}})
    return rows


@dataclass(frozen=True)
class Setup:
    """What a row measures: the model and batch, and training's CPU options (same defaults as ``train``).

    ``kernel_choice``: each convolution first gets its fastest kernel, timed in this run (no cache);
    ``kernel_check``: then whole steps with those kernels and with the fixed rule are timed and the faster kept;
    ``channels_last``: the convolution weights in channels-last memory on CPU; ``channels_last_batch``: the batch
    too, and the model on any device; ``layers``: the per-layer table."""

    resolution: int = 64
    batch: int = 8
    archi: str = "liae-ud"
    kernel_choice: bool = TrainOptions.kernel_choice
    kernel_check: bool = TrainOptions.kernel_check
    channels_last: bool = TrainOptions.channels_last
    channels_last_batch: bool = False
    layers: bool = False

    def layout(self, device: torch.device) -> str:
        weights = self.channels_last_batch or (self.channels_last and device.type == "cpu")
        return "channels-last batch and weights" if self.channels_last_batch else (
            "channels-last weights" if weights else "contiguous")


def build(setup: Setup, device: torch.device):
    """The model (in the layout ``train`` would give it), its training step on a fixed batch, and its forward."""
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": setup.resolution, "archi": setup.archi}, device)
    if setup.layout(device) != "contiguous":
        model = model.to(memory_format=torch.channels_last)
    opts = TrainOptions(batch_size=setup.batch, mixed_precision=device.type == "cuda")
    trainee = new_trainee(model, opts)
    knobs = opts.knobs()
    data = make_batch(setup.resolution, setup.batch, device, setup.channels_last_batch)

    def step() -> None:
        train_step(trainee, data, knobs, opts.clipgrad, opts.mixed_precision)

    return model, step, lambda: model(data.warped_src, data.warped_dst, knobs)


def measure(threads: int | None, device: torch.device, quick: bool, setup: Setup = Setup()) -> dict[str, Any]:
    """Training FLOP rate over the true ceiling with ``threads`` CPU threads.

    The ceiling is the best rate of the kernels the model could use for its own layers (``ceiling.py``), timed
    before and after the training steps so both see the same machine load; the ratio uses the best rate of each
    candidate and the best iteration time. A ratio above 1 raises: the ceiling would not be one.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, step, forward = build(setup, device)
    plan = plan_kernels(model, forward) if setup.kernel_choice and device.type == "cpu" else None
    check = check_plan(model, step) if plan is not None and setup.kernel_check else None
    shapes = layer_shapes(model, step)  # also the warm-up: allocations, kernel choice
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    seconds = 0.3 if quick else 0.6
    rates = candidate_rates(shapes, device, dtype, seconds)
    best_sec = best_seconds(step, device, (3 if quick else 6) * (1 if device.type == "cpu" else 10))
    again = candidate_rates(shapes, device, dtype, seconds)
    rates = [KernelRate(r.kernel, r.shape, max(r.flops_per_s, q.flops_per_s)) for r, q in zip(rates, again, strict=True)]
    top = best(rates)
    value = flops / best_sec / top.flops_per_s
    tag = f"{threads}threads" if device.type == "cpu" else "bf16"
    chosen = f"kernels chosen in {plan.seconds:.0f} s" if plan is not None else "fixed kernel rule"
    if check is not None:
        chosen += f" ({check.describe()})"
    detail = (f"saehd {setup.archi} res {setup.resolution} batch {setup.batch}: {flops / 1e12:.3f} TFLOP/iter, "
              f"{best_sec:.2f} s/iter, {flops / best_sec / 1e9:.1f} GFLOP/s; ceiling {top.describe()}; "
              f"{setup.layout(device)}, {chosen}")
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
        "kernels": kernel_lines(model, step) if device.type == "cpu" else [],
        "layers": layer_table(model, step, best_sec, top.flops_per_s, 5) if setup.layers else [],
    }


def compare_paths(left_out: tuple[str, ...], threads: int, quick: bool, setup: Setup = Setup()) -> dict[str, Any]:
    """Whole training steps with kernels chosen among all paths against kernels chosen without ``left_out``, in one
    run with ``threads`` threads: both plans timed here, then steps alternated (5 each, 3 with ``quick``); the
    ratio is the median step time without those paths over the median with them (above 1: they help)."""
    torch.set_num_threads(threads)
    model, step, forward = build(setup, torch.device("cpu"))
    plan_kernels(model, forward, search=KernelSearch(exclude=left_out))
    without = current_plan(model)
    plan_kernels(model, forward)
    without_s, with_s = time_plans(step, [without, current_plan(model)], 3 if quick else 5)
    return {"name": f"step_time_without_over_with_{'+'.join(left_out)}_{threads}threads", "value": without_s / with_s,
            "target": "> 1", "unit": "ratio", "device": device_name(torch.device("cpu")),
            "detail": f"saehd {setup.archi} res {setup.resolution} batch {setup.batch}: median step "
                      f"{1000 * without_s:.0f} ms with kernels chosen without {', '.join(left_out)}, "
                      f"{1000 * with_s:.0f} ms with them"}


def run(quick: bool = False, setup: Setup = Setup()) -> list[dict]:
    """Ratios on CUDA when present, else on the CPU with 2 threads and with 1 thread."""
    if torch.cuda.is_available():
        return [measure(None, torch.device("cuda"), quick, setup)]
    keep_freed_memory()
    saved = torch.get_num_threads()
    try:
        return [measure(t, torch.device("cpu"), quick, setup) for t in (2, 1)]
    finally:
        torch.set_num_threads(saved)


def print_layers(row: dict) -> None:
    print(f"# {row['name']} per layer (share of the step time; forward + backward alone, rate over the ceiling; "
          "then each pass alone: its best kernel, rate over the ceiling):")
    print(f"#   {'layer':<44} {'path':<14} {'share':>6} {'/ceil':>6}  {'forward':<20} {'input gradient':<20} "
          "weight gradient")
    for r in row["layers"]:
        rate = "" if r["over_ceiling"] != r["over_ceiling"] else f"{r['over_ceiling']:.2f}"
        passes = " ".join(f"{f'{k} {v:.2f}':<20}" for k, v in r["passes"].values())
        print(f"#   {r['layer']:<44} {r['path']:<14} {r['share']:>6.1%} {rate:>6}  {passes}".rstrip())
    convs = [r for r in row["layers"] if r["passes"]]
    share = sum(r["share"] for r in convs)
    if share > 0:
        alone = sum(r["share"] * r["over_ceiling"] for r in convs) / share
        print(f"#   the convolutions alone run at {alone:.2f} of the ceiling; with the rest of the step free the ratio "
              f"would be at most {row['value'] / share:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and shorter matmul timing")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--archi", default="liae-ud", help="SAEHD archi (default: the default liae-ud)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--channels-last", action="store_true",
                        help="the batch in channels-last layout too (and the model on CUDA)")
    layout.add_argument("--no-channels-last", action="store_true",
                        help="contiguous convolution weights (train --no-channels-last)")
    parser.add_argument("--no-kernel-choice", action="store_true",
                        help="keep the fixed kernel rule instead of timing each convolution's kernels first "
                             "(train --no-kernel-choice)")
    parser.add_argument("--no-kernel-check", action="store_true",
                        help="keep the chosen kernels without timing whole steps against the fixed rule "
                             "(train --no-kernel-check)")
    parser.add_argument("--layers", action="store_true", help="also print the per-layer table of each row")
    parser.add_argument("--candidates", action="store_true", help="also list every ceiling candidate's rate")
    parser.add_argument("--compare-paths", metavar="PATH[,PATH]",
                        help="instead: whole steps with kernels chosen among all paths against kernels chosen "
                             "without these (e.g. split-wgemm,split-wconv), 2 and 1 threads")
    args = parser.parse_args()
    setup = Setup(args.resolution, args.batch, args.archi, not args.no_kernel_choice, not args.no_kernel_check,
                  not args.no_channels_last, args.channels_last, args.layers)
    if args.compare_paths:
        left_out = tuple(p.strip() for p in args.compare_paths.split(",") if p.strip())
        unknown = [p for p in left_out if p not in PATHS]
        if unknown:
            parser.error(f"unknown kernel paths {unknown}; one of {', '.join(PATHS)}")
        keep_freed_memory()
        print_rows([compare_paths(left_out, t, args.quick, setup) for t in (2, 1)])
        return
    rows = run(args.quick, setup)
    print_rows(rows)
    for row in rows:
        if row["kernels"]:
            print(f"# {row['name']} kernels:")
            for line in row["kernels"]:
                print(f"#   {line}")
        if row["layers"]:
            print_layers(row)
        if args.candidates:
            print(f"# {row['name']} ceiling candidates:")
            for line in row["candidates"]:
                print(f"#   {line}")


if __name__ == "__main__":
    main()
