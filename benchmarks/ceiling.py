"""The true ceiling of a training step: the best FLOP rate, measured in this run with these threads, of the kernels
the model could use for its own layers.

Candidates (each timed forward + backward, FLOPs counted by torch's flop counter on the very ops that run):
- GEMM (torch.mm: MKL or oneDNN on CPU, the tensor cores in bf16 on CUDA) at square sizes 1024 and 2048 (4096 and
  8192 on CUDA) and at the model's dense layers' shapes;
- at the model's own convolution shapes (the largest by FLOPs): oneDNN (cuDNN on CUDA) direct convolution in the
  contiguous and the channels-last layout, forward + backward, and each of its passes alone (the forward; the
  input gradient), and the model's two im2col + one GEMM paths (unfold, and patches gathered channels-last;
  ``facelab/models/conv_paths.py``).

The passes alone matter: on some CPUs oneDNN's forward kernel outruns MKL's best GEMM, while its weight-gradient
kernel is far slower, so a forward + backward rate understates what the machine can do. The ceiling is the best
rate of them all, named with its kernel and shape. A training step runs these same kernels (plus element-wise
work), so its FLOP rate over this ceiling is at most 1; above 1 means a faster kernel exists that was not
measured, and the benchmark fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from facelab.models.conv_paths import IM2COL, IM2COL_CL, conv2d


@dataclass(frozen=True)
class LayerShape:
    """One convolution or dense layer as a training step calls it: input (B, C, H, W) or (B, F)."""

    kind: str  # "conv" | "linear"
    input: tuple[int, ...]
    out_ch: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0

    def label(self) -> str:
        if self.kind == "linear":
            return f"dense {self.input[0]}x{self.input[1]}->{self.out_ch}"
        b, c, h, w = self.input
        return f"conv{self.kernel}x{self.kernel}/s{self.stride} {c}->{self.out_ch} @{h}x{w} b{b}"

    def flops(self) -> float:
        """Forward multiply-add FLOPs (2 per MAC)."""
        if self.kind == "linear":
            return 2.0 * self.input[0] * self.input[1] * self.out_ch
        b, c, h, w = self.input
        ho = (h + 2 * self.padding - self.kernel) // self.stride + 1
        wo = (w + 2 * self.padding - self.kernel) // self.stride + 1
        return 2.0 * b * ho * wo * self.out_ch * c * self.kernel * self.kernel


@dataclass(frozen=True)
class KernelRate:
    kernel: str
    shape: str
    flops_per_s: float

    def describe(self) -> str:
        return f"{self.kernel} {self.shape}: {self.flops_per_s / 1e9:.1f} GFLOP/s"


def layer_shapes(model: nn.Module, run_forward: Callable[[], object]) -> list[LayerShape]:
    """The distinct convolution and dense-layer shapes ``run_forward`` calls in ``model``, largest FLOPs first
    (``run_forward`` may be a whole training step: the hooks only read input shapes)."""
    seen: dict[LayerShape, None] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            seen[LayerShape("conv", tuple(x.shape), module.out_channels, module.kernel_size[0],
                            module.stride[0], module.padding[0])] = None  # type: ignore[arg-type]
        elif isinstance(module, nn.Linear):
            seen[LayerShape("linear", (x.reshape(-1, x.shape[-1]).shape[0], x.shape[-1]),
                            module.out_features)] = None
    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        run_forward()
    finally:
        for h in handles:
            h.remove()
    return sorted(seen, key=lambda s: -s.flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rate(fn: Callable[[], None], device: torch.device, min_seconds: float) -> float:
    """FLOP/s of ``fn``: its FLOPs counted once by torch's flop counter, over its best time in ``min_seconds``."""
    fn()  # warm-up: kernel choice, allocations
    _sync(device)
    with FlopCounterMode(display=False) as counter:
        fn()
    flops = float(counter.get_total_flops())
    best, spent, reps = float("inf"), 0.0, 0
    while spent < min_seconds or reps < 3:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return flops / best


def _gemm_fn(m: int, k: int, n: int, device: torch.device, dtype: torch.dtype) -> Callable[[], None]:
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(m, k, device=device, dtype=dtype, generator=g)
    b = torch.randn(k, n, device=device, dtype=dtype, generator=g)
    c = torch.empty(m, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b, out=c)


PASSES = ("forward + backward", "forward", "input gradient")


def _conv_fn(s: LayerShape, device: torch.device, dtype: torch.dtype, layout: str,
             passes: str = PASSES[0]) -> Callable[[], None]:
    """One convolution with ``layout``: forward + backward (input and weight gradients), or one pass alone
    (``passes``: the forward, or the input gradient; direct convolution only)."""
    g = torch.Generator(device=device).manual_seed(0)
    fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
    x = torch.randn(*s.input, device=device, dtype=dtype, generator=g).to(memory_format=fmt).requires_grad_()
    w = (torch.randn(s.out_ch, s.input[1], s.kernel, s.kernel, device=device, dtype=dtype, generator=g) * 0.01)
    w = w.to(memory_format=fmt).requires_grad_()
    stride, padding = (s.stride, s.stride), (s.padding, s.padding)
    with torch.no_grad():
        gy = torch.ones_like(F.conv2d(x, w, stride=stride, padding=padding))

    def direct() -> None:
        y = F.conv2d(x, w, stride=stride, padding=padding)
        y.backward(gy)

    def forward() -> None:
        with torch.no_grad():
            F.conv2d(x, w, stride=stride, padding=padding)

    def input_grad() -> None:
        torch.ops.aten.convolution_backward(gy, x, w, None, stride, padding, (1, 1), False, (0, 0), 1,
                                            (True, False, False))

    def im2col() -> None:  # the model's own im2col paths
        y = conv2d(layout, x, w, None, stride, padding)
        y.backward(gy)

    if layout in (IM2COL, IM2COL_CL):
        return im2col
    return {PASSES[0]: direct, PASSES[1]: forward, PASSES[2]: input_grad}[passes]


def _linear_fn(s: LayerShape, device: torch.device, dtype: torch.dtype) -> Callable[[], None]:
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(*s.input, device=device, dtype=dtype, generator=g).requires_grad_()
    w = (torch.randn(s.out_ch, s.input[1], device=device, dtype=dtype, generator=g) * 0.01).requires_grad_()

    def step() -> None:
        y = F.linear(x, w)
        y.backward(torch.ones_like(y))

    return step


def candidate_rates(shapes: list[LayerShape], device: torch.device, dtype: torch.dtype,
                    seconds: float = 0.5, max_convs: int = 4) -> list[KernelRate]:
    """Rates of every candidate kernel: square GEMMs, and each of the largest layer shapes on each path."""
    gemm = "bf16 tensor-core GEMM" if device.type == "cuda" else "fp32 GEMM (torch.mm)"
    sizes = (4096, 8192) if device.type == "cuda" else (1024, 2048)
    rates = [KernelRate(gemm, f"{n}^3", time_rate(_gemm_fn(n, n, n, device, dtype), device, seconds))
             for n in sizes]
    direct = "cuDNN conv" if device.type == "cuda" else "oneDNN conv"
    for s in [s for s in shapes if s.kind == "conv"][:max_convs]:
        for layout in ("contiguous", "channels-last"):
            for passes in PASSES:
                name = f"{direct} {layout}" + ("" if passes == PASSES[0] else f" ({passes} alone)")
                rates.append(KernelRate(name, s.label(), time_rate(_conv_fn(s, device, dtype, layout, passes),
                                                                   device, seconds)))
        for layout in (IM2COL, IM2COL_CL):
            rates.append(KernelRate(f"{layout} + {gemm}", s.label(),
                                    time_rate(_conv_fn(s, device, dtype, layout), device, seconds)))
    for s in [s for s in shapes if s.kind == "linear"][:2]:
        rates.append(KernelRate(f"{gemm} (dense)", s.label(), time_rate(_linear_fn(s, device, dtype), device,
                                                                          seconds)))
    return rates


def best(rates: list[KernelRate]) -> KernelRate:
    return max(rates, key=lambda r: r.flops_per_s)
