"""CPU convolution kernels chosen by measurement on this machine, like ``cudnn.benchmark`` but kept across runs.

Which kernel runs a convolution fastest depends on its shape, the CPU and the thread count. The candidate paths
(:data:`PATHS`, in :mod:`facelab.models.conv_paths`) compute the same function of the same weights: oneDNN's
direct convolution in either layout, im2col + one GEMM with the patches in either order, oneDNN's forward and
input gradient with the weight gradient as a convolution or one GEMM, a 1x1 convolution as one GEMM.

:func:`plan_kernels` runs the model once; before a planned convolution runs on an input it has no choice for, a
forward pre-hook times forward + backward of every candidate on that call (same shapes, layouts and dtype) and
sets the fastest on the module (:func:`set_kernel_paths`), so later layers are planned for the layouts the earlier
choices hand them. The module's forward runs :func:`conv2d` with its choice, keyed by :func:`dispatch_key` of the
input; an input it has no choice for runs the fixed rule (:func:`rule_path`).

Choices are cached in ``kernels.json`` in the user cache (:func:`cache_file`), keyed by CPU model, torch version,
thread count, dtype and call; the file is JSON, written atomically, and a broken one is ignored with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from facelab.errors import FacelabError
from facelab.models.conv_paths import (
    DIRECT,
    IM2COL,
    PATCH_PATHS,
    PATHS,
    conv2d,
    is_channels_last,
    out_size,
)
from facelab.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


TINY_SPATIAL = 16  # the fixed rule: output H*W at or below which a convolution runs as im2col + GEMM
KERNEL_ATTR = "kernel_paths"  # a planned module's choices: dispatch key -> path
CACHE_VERSION = 2  # 2: the split paths are candidates (choices made without them are timed again)
STEP_PREFIX = "step "  # cache keys of whole-step verdicts (:func:`check_plan`)
VERDICTS = ("plan", "rule")

DispatchKey = tuple[tuple[int, ...], bool, str]


def dispatch_key(x: torch.Tensor) -> DispatchKey:
    """What a module's choice depends on: the input's shape, layout and dtype."""
    return tuple(x.shape), is_channels_last(x), str(x.dtype).removeprefix("torch.")


# -- one call of a convolution ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvCall:
    """One convolution as a model calls it: input (B, Cin, H, W), weight (Cout, Cin, kh, kw), and their layouts."""

    input: tuple[int, int, int, int]
    weight: tuple[int, int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    bias: bool = True
    channels_last: bool = False
    input_grad: bool = True
    dtype: str = "float32"
    weight_channels_last: bool = False

    @property
    def output_hw(self) -> tuple[int, int]:
        return (out_size(self.input[2], self.weight[2], self.stride[0], self.padding[0]),
                out_size(self.input[3], self.weight[3], self.stride[1], self.padding[1]))

    def flops(self) -> float:
        """Forward multiply-add FLOPs (2 per MAC)."""
        ho, wo = self.output_hw
        cout, cin, kh, kw = self.weight
        return 2.0 * self.input[0] * ho * wo * cout * cin * kh * kw

    def candidates(self) -> tuple[str, ...]:
        """The paths that apply: ``gemm-1x1`` only to a 1x1, stride 1, unpadded convolution."""
        one = self.weight[2:] == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)
        return PATHS if one else PATHS[:-1]

    def im2col_bytes(self) -> int:
        """Size of the im2col matrix."""
        ho, wo = self.output_hw
        cout, cin, kh, kw = self.weight
        return getattr(torch, self.dtype).itemsize * self.input[0] * ho * wo * cin * kh * kw

    def key(self) -> str:
        """The cache key: ``x16x512x8x8-cl w1024x512x3x3 s1x1 p1x1 bias grad float32``."""
        dims = lambda t: "x".join(str(v) for v in t)  # noqa: E731
        return " ".join([f"x{dims(self.input)}{'-cl' if self.channels_last else ''}",
                         f"w{dims(self.weight)}{'-cl' if self.weight_channels_last else ''}",
                         f"s{dims(self.stride)}", f"p{dims(self.padding)}", "bias" if self.bias else "nobias",
                         "grad" if self.input_grad else "nograd", self.dtype])

    def label(self) -> str:
        """``conv3x3/s1 512->1024 @8x8 b16`` (``cl`` when the input comes channels-last)."""
        b, c, h, w = self.input
        k = f"{self.weight[2]}x{self.weight[3]}"
        return (f"conv{k}/s{self.stride[0]} {c}->{self.weight[0]} @{h}x{w} b{b}"
                f"{' cl' if self.channels_last else ''}")

    def dispatch(self) -> DispatchKey:
        return self.input, self.channels_last, self.dtype


def rule_path(call: ConvCall) -> str:
    """The fixed rule used without a plan: im2col + GEMM for outputs of at most ``TINY_SPATIAL`` pixels (oneDNN
    is slow on 2x2 and 4x4 maps), oneDNN direct otherwise."""
    ho, wo = call.output_hw
    return IM2COL if ho * wo <= TINY_SPATIAL else DIRECT


# -- module plumbing ----------------------------------------------------------------------------------------------
def plannable(module: nn.Module) -> bool:
    """A convolution that dispatches on its kernel choices (it has the attribute; groups 1, dilation 1, zeros)."""
    return (isinstance(module, nn.Conv2d) and hasattr(module, KERNEL_ATTR) and module.groups == 1
            and module.dilation == (1, 1) and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


def set_kernel_paths(module: nn.Module, paths: Mapping[DispatchKey, str]) -> None:
    """Give ``module`` its kernel choices (dispatch key -> path); an empty mapping restores the fixed rule."""
    bad = sorted({p for p in paths.values() if p not in PATHS})
    if bad:
        raise ValueError(f"unknown convolution paths {bad}; one of {', '.join(PATHS)}")
    setattr(module, KERNEL_ATTR, dict(paths))


def chosen_path(module: nn.Module, x: torch.Tensor) -> str:
    """The path ``module`` runs on input ``x``: its choice for ``x``, else the fixed rule."""
    return getattr(module, KERNEL_ATTR).get(dispatch_key(x)) or rule_path(call_of(module, x))  # type: ignore[arg-type]


def call_path(module: nn.Module, call: ConvCall) -> str:
    """The path ``module`` runs for ``call``: its choice, else the fixed rule."""
    return getattr(module, KERNEL_ATTR).get(call.dispatch()) or rule_path(call)


def clear_kernel_paths(model: nn.Module) -> None:
    for m in model.modules():
        if plannable(m):
            set_kernel_paths(m, {})


def call_of(module: nn.Conv2d, x: torch.Tensor) -> ConvCall:
    return ConvCall(tuple(x.shape), tuple(module.weight.shape), tuple(module.stride), tuple(module.padding),
                    module.bias is not None, is_channels_last(x), x.requires_grad, dispatch_key(x)[2],
                    is_channels_last(module.weight))


def run_with_hook(model: nn.Module, hook: Callable[[nn.Module, tuple], None], run: Callable[[], object]) -> None:
    """Run ``run`` with ``hook`` as a forward pre-hook on every planned convolution of ``model``, removed after."""
    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if plannable(m)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()


def conv_calls(model: nn.Module, run: Callable[[], object]) -> dict[ConvCall, list[nn.Module]]:
    """Each distinct call ``run`` makes of a planned convolution of ``model``, with the modules that make it
    (forward pre-hooks read only the inputs' shapes and layouts)."""
    calls: dict[ConvCall, list[nn.Module]] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if x.device.type == "cpu":
            users = calls.setdefault(call_of(module, x), [])  # type: ignore[arg-type]
            if not any(u is module for u in users):
                users.append(module)

    run_with_hook(model, hook, run)
    return calls


# -- timing -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelSearch:
    """How candidates are timed (:func:`time_call`): the best of a first run and ``reps`` more runs of forward +
    backward; a candidate whose first run takes ``give_up`` x the best first run gets no more runs; paths that build
    an im2col matrix are skipped when it would exceed ``max_im2col_bytes``; paths in ``exclude`` are never tried."""

    reps: int = 2
    give_up: float = 2.0
    max_im2col_bytes: int = 1 << 28
    exclude: tuple[str, ...] = ()


def call_tensors(call: ConvCall, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random input, weight and bias of ``call`` in its shapes, layouts and dtype (the input needing a gradient when
    the call does; the weight and bias always)."""
    g = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, call.dtype)
    fmt = torch.channels_last if call.channels_last else torch.contiguous_format
    x = torch.randn(call.input, generator=g).to(dtype).contiguous(memory_format=fmt)
    fan_in = call.weight[1] * call.weight[2] * call.weight[3]
    wfmt = torch.channels_last if call.weight_channels_last else torch.contiguous_format
    w = (torch.randn(call.weight, generator=g) / fan_in ** 0.5).to(dtype).contiguous(memory_format=wfmt)
    w.requires_grad_()
    b = torch.zeros(call.weight[0], dtype=dtype).requires_grad_() if call.bias else None
    return x.requires_grad_(call.input_grad), w, b


def _run_once(call: ConvCall, path: str, tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> float:
    """Seconds of one forward + backward of ``call`` by ``path``."""
    x, w, b = tensors
    params = [t for t in tensors if t is not None and t.requires_grad]
    start = time.perf_counter()
    y = conv2d(path, x, w, b, call.stride, call.padding)
    grads = torch.autograd.grad(y, params, torch.ones_like(y))
    del y, grads
    return time.perf_counter() - start


def time_call(call: ConvCall, search: KernelSearch = KernelSearch(), paths: tuple[str, ...] | None = None
              ) -> dict[str, float]:
    """Best seconds of forward + backward of each candidate path of ``call`` (or of ``paths``), with the threads
    as set. The paths take turns, so a burst of other load on the machine slows them alike: one run each, then
    ``search.reps`` more rounds of those not ``search.give_up`` x slower than the best. Paths that build an im2col
    matrix are left out when it would exceed ``search.max_im2col_bytes``."""
    big = call.im2col_bytes() > search.max_im2col_bytes
    todo = [p for p in (paths or call.candidates()) if p not in search.exclude and not (big and p in PATCH_PATHS)]
    tensors = call_tensors(call)
    seconds = {p: _run_once(call, p, tensors) for p in todo}
    alive = [p for p in todo if seconds[p] <= search.give_up * min(seconds.values())]
    for _ in range(search.reps):
        for p in alive:
            seconds[p] = min(seconds[p], _run_once(call, p, tensors))
    return seconds


def time_path(call: ConvCall, path: str, search: KernelSearch = KernelSearch()) -> float:
    """Best seconds of forward + backward of ``call`` by ``path`` (a first run and ``search.reps`` more)."""
    return time_call(call, search, (path,))[path]


def fastest(seconds: Mapping[str, float]) -> str:
    """The path with the least time (ties: the first in :data:`PATHS` order)."""
    return min(sorted(seconds, key=PATHS.index), key=lambda p: seconds[p])


# -- the cache ----------------------------------------------------------------------------------------------------
def cache_file(root: str | os.PathLike | None = None) -> Path:
    """``<root>/kernels.json``; by default in ``$FACELAB_CACHE``, else ``$XDG_CACHE_HOME/facelab``, else
    ``~/.cache/facelab``."""
    if root is None:
        env = os.environ.get("FACELAB_CACHE")
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(env) if env else (Path(xdg) if xdg else Path.home() / ".cache") / "facelab"
    return Path(root) / "kernels.json"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def machine_key(threads: int | None = None) -> str:
    """What the timings hold for: CPU model, torch version, thread count."""
    n = torch.get_num_threads() if threads is None else threads
    return f"{cpu_model()} | torch {torch.__version__} | {n} threads"


def read_cache(path: Path) -> dict[str, dict[str, str]]:
    """Machine key -> call key -> path (and whole-step key -> verdict) from ``path``; empty when there is no
    file or an earlier version's file (its choices were made among fewer kernels), and (with a warning) when the
    file is not a kernel cache this version understands. Unknown paths are dropped."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("ignoring the kernel cache %s: %s", path, exc)
        return {}
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and 0 < version < CACHE_VERSION:  # an earlier release's choices: timed again
        log.info("kernel choices in %s were made among fewer kernels: timing them again", path)
        return {}
    machines = data.get("machines") if version == CACHE_VERSION else None
    if not isinstance(machines, dict):
        log.warning("ignoring the kernel cache %s: not a version %d kernel cache", path, CACHE_VERSION)
        return {}
    return {str(m): {str(k): v for k, v in calls.items()
                     if v in PATHS or (str(k).startswith(STEP_PREFIX) and v in VERDICTS)}
            for m, calls in machines.items() if isinstance(calls, dict)}


def write_cache(path: Path, machines: Mapping[str, Mapping[str, str]]) -> None:
    """Write the cache atomically; a failure is logged, never raised (the cache only saves time)."""
    text = json.dumps({"version": CACHE_VERSION, "machines": machines}, indent=1, sort_keys=True)
    try:
        atomic_write_text(path, text + "\n")
    except FacelabError as exc:
        log.warning("kernel choices not cached: %s", exc)


# -- the plan -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelChoice:
    """The path chosen for one call, the seconds of each candidate timed (empty when read from the cache), and the
    number of modules that make the call."""

    call: ConvCall
    path: str
    seconds: Mapping[str, float] = field(default_factory=dict)
    modules: int = 1


@dataclass(frozen=True)
class KernelPlan:
    """What :func:`plan_kernels` chose: for the machine key, one choice per distinct call, and the seconds it took
    (timing and cache included)."""

    machine: str
    choices: tuple[KernelChoice, ...]
    seconds: float

    def counts(self) -> dict[str, int]:
        """Modules per path."""
        out: dict[str, int] = {}
        for c in self.choices:
            out[c.path] = out.get(c.path, 0) + c.modules
        return out

    def describe(self) -> str:
        timed = sum(1 for c in self.choices if c.seconds)
        paths = ", ".join(f"{p} {n}" for p, n in sorted(self.counts().items()))
        return (f"{len(self.choices)} convolution calls ({timed} timed in {self.seconds:.1f} s, "
                f"{len(self.choices) - timed} from the cache): {paths}")


def _choose(call: ConvCall, cached: str | None, search: KernelSearch) -> tuple[str, dict[str, float]]:
    """The cached path of ``call`` when it fits it, else the fastest timed one with the seconds of each."""
    if cached in call.candidates():
        return cached, {}  # type: ignore[return-value]
    with torch.enable_grad():
        seconds = time_call(call, search)
    return fastest(seconds), seconds


def plan_kernels(model: nn.Module, run: Callable[[], object], cache: Path | None = None,
                 search: KernelSearch = KernelSearch()) -> KernelPlan:
    """Choose and set the fastest path of every call ``run`` makes of ``model``'s planned convolutions.

    ``run`` runs the model once (a forward in grad mode is enough). A convolution is planned when it is called
    with an input it has no choice for, just before it runs, so each choice is made for the layout the earlier
    choices hand it. Choices found in ``cache`` (a :func:`cache_file`; None: no cache) are used as they are; the
    others are timed and written back.
    """
    start = time.perf_counter()
    machine = machine_key()
    known = dict(read_cache(cache).get(machine, {})) if cache is not None else {}
    clear_kernel_paths(model)
    chosen: dict[ConvCall, tuple[str, dict[str, float]]] = {}
    users: dict[ConvCall, dict[int, None]] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if x.device.type != "cpu":
            return
        call = call_of(module, x)  # type: ignore[arg-type]
        if call not in chosen:
            chosen[call] = _choose(call, known.get(call.key()), search)
            known[call.key()] = chosen[call][0]
        users.setdefault(call, {})[id(module)] = None
        set_kernel_paths(module, {**getattr(module, KERNEL_ATTR), call.dispatch(): chosen[call][0]})

    run_with_hook(model, hook, run)
    if cache is not None and any(seconds for _, seconds in chosen.values()):
        latest = read_cache(cache)  # another process may have added its own machine meanwhile
        write_cache(cache, {**latest, machine: {**latest.get(machine, {}), **known}})
    choices = tuple(KernelChoice(c, path, seconds, len(users[c])) for c, (path, seconds) in chosen.items())
    return KernelPlan(machine, choices, time.perf_counter() - start)


# -- the end-to-end check -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanCheck:
    """Whole steps timed with the plan and with the fixed rule (median seconds of each; zero when the verdict came
    from the cache) and which was kept."""

    plan_seconds: float
    rule_seconds: float
    kept: str  # one of VERDICTS

    def describe(self) -> str:
        if not self.plan_seconds and not self.rule_seconds:
            return f"whole-step check from the cache: keeping the {self.kept}"
        return (f"whole step {1000 * self.plan_seconds:.0f} ms with the plan, {1000 * self.rule_seconds:.0f} ms "
                f"with the fixed rule: keeping the {self.kept}")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def step_key(plan: KernelPlan) -> str:
    """The cache key of a whole-step verdict: a digest of the plan's calls and paths."""
    text = "\n".join(sorted(f"{c.call.key()} -> {c.path} x{c.modules}" for c in plan.choices))
    return STEP_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


ModulePlan = Mapping[nn.Module, Mapping[DispatchKey, str]]  # planned modules -> their kernel choices


def current_plan(model: nn.Module) -> dict[nn.Module, dict[DispatchKey, str]]:
    """The kernel choices every planned convolution of ``model`` holds now (empty ones: the fixed rule)."""
    return {m: dict(getattr(m, KERNEL_ATTR)) for m in model.modules() if plannable(m)}


def apply_plan(plan: ModulePlan) -> None:
    for m, paths in plan.items():
        set_kernel_paths(m, paths)


def time_plans(step: Callable[[], object], plans: list[ModulePlan], repeats: int) -> list[float]:
    """Median seconds of ``step`` under each of ``plans``, the plans taking turns after one warm-up run of each
    (allocator, first-call dispatch), so a burst of other load slows them alike. The last plan is left applied."""
    def timed(plan: ModulePlan) -> float:
        apply_plan(plan)
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    for plan in plans:
        timed(plan)
    runs: list[list[float]] = [[] for _ in plans]
    for _ in range(repeats):
        for seconds, plan in zip(runs, plans, strict=True):
            seconds.append(timed(plan))
    return [_median(seconds) for seconds in runs]


def check_plan(model: nn.Module, step: Callable[[], object], plan: KernelPlan | None = None,
               cache: Path | None = None, repeats: int = 3, margin: float = 0.02) -> PlanCheck:
    """Time ``step`` (a whole forward + backward) with ``model``'s planned kernels and with the fixed rule,
    alternating, after one warm-up of each; keep the plan unless the rule is faster by more than ``margin``.

    Per-call timings miss what happens between layers (layout conversions, cache effects of the neighbours), so
    the plan only stays when the whole step agrees; otherwise the choices are cleared (the rule runs). With
    ``plan`` (what :func:`plan_kernels` returned) and ``cache``, the verdict is read from and written to the cache
    like the per-call choices, so every run on this machine makes the same choice (and the same arithmetic).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    planned = current_plan(model)
    rule = {m: {} for m in planned}
    key = step_key(plan) if plan is not None and cache is not None else None
    machine = plan.machine if plan is not None else machine_key()
    cached = read_cache(cache).get(machine, {}).get(key) if key is not None else None  # type: ignore[arg-type]
    if cached in VERDICTS:
        apply_plan(planned if cached == "plan" else rule)
        return PlanCheck(0.0, 0.0, cached)  # type: ignore[arg-type]
    plan_t, rule_t = time_plans(step, [planned, rule], repeats)
    kept = "plan" if rule_t >= plan_t * (1.0 - margin) else "rule"
    apply_plan(planned if kept == "plan" else rule)
    if key is not None:
        latest = read_cache(cache)  # type: ignore[arg-type]
        write_cache(cache, {**latest, machine: {**latest.get(machine, {}), key: kept}})  # type: ignore[arg-type]
    return PlanCheck(plan_t, rule_t, kept)
