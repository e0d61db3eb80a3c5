"""DeepFaceLab's optimizers: AdaBelief (no bias correction) and RMSprop, both with ``lr_dropout``.

``lr_dropout`` < 1 multiplies each update by a fresh Bernoulli(keep = lr_dropout) mask per weight element;
``lr_cos`` > 0 scales lr by (cos(2 pi t / lr_cos) + 1) / 2, t = the optimizer's step count (1 on the first step).
Both are ``torch.optim.Optimizer`` subclasses, so ``state_dict`` / ``load_state_dict`` work as usual.

Two update paths give the same result (and, for one generator seed, the same lr dropout masks): block by block over
flat views of each parameter (CPU: temporaries stay in cache) and one multi-tensor ``torch._foreach_*`` update
over all parameters of a group (CUDA: a few kernel launches instead of several per parameter). The state of
either loads into the other.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from facelab.train.options import TrainOptions

LR_DROPOUT_KEEP = 0.3
LR_COS_PERIOD = 500


def _cos_lr(lr: float, step: int, period: int) -> float:
    if period <= 0:
        return lr
    return lr * (math.cos(step * (2.0 * math.pi / period)) + 1.0) / 2.0


CHUNK = 1 << 20  # elements per fused block: big enough that each op splits well over threads, small enough
#                   that the few arrays of one block mostly stay in cache (measured best from 1 to 2 threads)


def _flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of a dense tensor's memory (row-major or channels-last), or None."""
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return None


def _flat_views(tensors: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """Flat views of tensors that share one dense layout (a parameter, its gradient, its state), or None: then
    the update runs on the whole tensors at once."""
    flats = [_flat(t) for t in tensors]
    if any(f is None for f in flats) or len({t.stride() for t in tensors}) != 1:
        return None
    return flats  # type: ignore[return-value]


def prefers_foreach(device: torch.device) -> bool:
    """The update path for parameters on ``device``: multi-tensor (``torch._foreach_*``) on CUDA, where kernel
    launches cost more than the memory traffic of small parameters; block by block elsewhere."""
    return device.type == "cuda"


class _DFLOptimizer(torch.optim.Optimizer):
    """Shared step count, lr cosine and lr dropout, and the choice of update path: ``foreach`` True / False
    forces the multi-tensor / block path, None picks it from the parameters' device (:func:`prefers_foreach`).
    The block path runs over flat views so its temporaries stay in cache (the step is memory-bound on CPU)."""

    state_keys: tuple[str, ...] = ()
    #: Where lr dropout masks are drawn (then copied to the parameters' device); None: on that device. CPU is
    #: ``lr_dropout=cpu``: less accelerator memory for a slower step (``generator`` must live there too).
    mask_device: torch.device | None = None

    def __init__(self, params: Iterable, defaults: dict, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        if not 0.0 < defaults["lr_dropout"] <= 1.0:
            raise ValueError("lr_dropout (keep probability) must be in (0, 1]")
        super().__init__(params, defaults)
        self.generator = generator
        self.foreach = foreach  # not in the param groups: a checkpoint never carries it

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore moments and step counts; lr, lr dropout and the cosine period stay this run's settings."""
        keep = [{k: g[k] for k in ("lr", "lr_dropout", "lr_cos")} for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, kept in zip(self.param_groups, keep, strict=True):
            group.update(kept)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lrs = [self._advance(p, group) for p in params]
            foreach = prefers_foreach(params[0].device) if self.foreach is None else self.foreach
            if foreach:
                self._update_foreach(params, [self._tensors(p) for p in params], group, lrs)
            else:
                for p, lr in zip(params, lrs, strict=True):
                    self._update_param(p, group, lr)
        return loss

    def _advance(self, p: torch.Tensor, group: dict) -> float:
        """Create ``p``'s state on its first step, count the step; the lr of this step (cosine cycle)."""
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            for key in self.state_keys:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        return _cos_lr(group["lr"], int(state["step"].item()), group["lr_cos"])

    def _tensors(self, p: torch.Tensor) -> list[torch.Tensor]:
        """``p``, its gradient and its state tensors in ``state_keys`` order."""
        return [p, p.grad] + [self.state[p][k] for k in self.state_keys]

    def _update_param(self, p: torch.Tensor, group: dict, lr: float) -> None:
        tensors = self._tensors(p)
        flats = _flat_views(tensors)
        if flats is None:  # unusual layouts: one whole-tensor update
            self._update_block(*tensors, group, lr, torch.empty_like(p))
            return
        n = flats[0].numel()
        tmp = torch.empty(min(n, CHUNK), dtype=p.dtype, device=p.device)
        for i in range(0, n, CHUNK):
            j = min(i + CHUNK, n)
            self._update_block(*[f[i:j] for f in flats], group, lr, tmp[: j - i])

    def _dropout(self, update: torch.Tensor, group: dict) -> torch.Tensor:
        """update * Bernoulli(keep) per element when lr dropout is on."""
        if group["lr_dropout"] >= 1.0:
            return update
        keep = torch.empty_like(update, device=self.mask_device or update.device)
        keep.bernoulli_(group["lr_dropout"], generator=self.generator)
        return update.mul_(keep.to(update.device, non_blocking=True))

    def _dropout_mask(self, tensors: list[torch.Tensor], keep: float) -> torch.Tensor:
        """The Bernoulli(``keep``) mask of one parameter, drawn in the block path's order (block by block over
        its flat memory, or whole), so one generator state gives the same mask on either path."""
        device = tensors[0].device
        mask = torch.empty_like(tensors[0], device=self.mask_device or device)
        flat = _flat(mask) if _flat_views(tensors) is not None else None
        if flat is None:
            return mask.bernoulli_(keep, generator=self.generator).to(device, non_blocking=True)
        for i in range(0, flat.numel(), CHUNK):
            flat[i:i + CHUNK].bernoulli_(keep, generator=self.generator)
        return mask.to(device, non_blocking=True)

    def _apply_foreach(self, params: list[torch.Tensor], num: list[torch.Tensor], den: list[torch.Tensor],
                       tensors: list[list[torch.Tensor]], group: dict, lrs: list[float]) -> None:
        """w -= lr num / den for every parameter at once, times its lr dropout mask when lr dropout is on."""
        neg = [-lr for lr in lrs]
        if group["lr_dropout"] >= 1.0:
            torch._foreach_addcdiv_(params, num, den, neg)
            return
        update = torch._foreach_div(num, den)
        torch._foreach_mul_(update, [self._dropout_mask(t, group["lr_dropout"]) for t in tensors])
        torch._foreach_mul_(update, neg)
        torch._foreach_add_(params, update)

    def _update_block(self, *args) -> None:
        raise NotImplementedError

    def _update_foreach(self, params: list[torch.Tensor], tensors: list[list[torch.Tensor]], group: dict,
                        lrs: list[float]) -> None:
        raise NotImplementedError


class AdaBelief(_DFLOptimizer):
    """m = b1 m + (1-b1) g;  s = b2 s + (1-b2) (g - m)^2;  w -= lr m / (sqrt(s) + eps). No bias correction."""

    state_keys = ("exp_avg", "exp_avg_var")

    def __init__(self, params: Iterable, lr: float = 5e-5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, lr_dropout: float = 1.0, lr_cos: int = 0,
                 generator: torch.Generator | None = None, foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, lr_dropout=lr_dropout, lr_cos=lr_cos), generator,
                         foreach)

    def _update_block(self, p, g, m, s, group, lr, tmp) -> None:  # type: ignore[override]
        b1, b2 = group["betas"]
        m.mul_(b1).add_(g, alpha=1.0 - b1)
        torch.sub(g, m, out=tmp)
        s.mul_(b2).addcmul_(tmp, tmp, value=1.0 - b2)
        torch.sqrt(s, out=tmp).add_(group["eps"])
        if group["lr_dropout"] >= 1.0:
            p.addcdiv_(m, tmp, value=-lr)
        else:
            p.add_(self._dropout(torch.div(m, tmp, out=tmp), group), alpha=-lr)

    def _update_foreach(self, params, tensors, group, lrs) -> None:  # type: ignore[override]
        b1, b2 = group["betas"]
        grads, m, s = ([t[i] for t in tensors] for i in (1, 2, 3))
        torch._foreach_mul_(m, b1)
        torch._foreach_add_(m, grads, alpha=1.0 - b1)
        diff = torch._foreach_sub(grads, m)
        torch._foreach_mul_(s, b2)
        torch._foreach_addcmul_(s, diff, diff, value=1.0 - b2)
        del diff
        den = torch._foreach_sqrt(s)
        torch._foreach_add_(den, group["eps"])
        self._apply_foreach(params, m, den, tensors, group, lrs)


class RMSprop(_DFLOptimizer):
    """a = rho a + (1-rho) g^2;  w -= lr g / (sqrt(a) + eps). eps = float32 resolution (1e-6), as DeepFaceLab."""

    state_keys = ("square_avg",)

    def __init__(self, params: Iterable, lr: float = 5e-5, rho: float = 0.9, eps: float = 1e-6,
                 lr_dropout: float = 1.0, lr_cos: int = 0, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, lr_dropout=lr_dropout, lr_cos=lr_cos), generator,
                         foreach)

    def _update_block(self, p, g, a, group, lr, tmp) -> None:  # type: ignore[override]
        rho = group["rho"]
        a.mul_(rho).addcmul_(g, g, value=1.0 - rho)
        torch.sqrt(a, out=tmp).add_(group["eps"])
        if group["lr_dropout"] >= 1.0:
            p.addcdiv_(g, tmp, value=-lr)
        else:
            p.add_(self._dropout(torch.div(g, tmp, out=tmp), group), alpha=-lr)

    def _update_foreach(self, params, tensors, group, lrs) -> None:  # type: ignore[override]
        rho = group["rho"]
        grads, a = ([t[i] for t in tensors] for i in (1, 2))
        torch._foreach_mul_(a, rho)
        torch._foreach_addcmul_(a, grads, grads, value=1.0 - rho)
        den = torch._foreach_sqrt(a)
        torch._foreach_add_(den, group["eps"])
        self._apply_foreach(params, grads, den, tensors, group, lrs)


def make_optimizer(params: Iterable, opts: TrainOptions, lr_cos_cycle: bool = True) -> torch.optim.Optimizer:
    """The optimizer ``opts`` asks for (AdaBelief or RMSprop), with lr dropout (and, when ``lr_cos_cycle``, the
    cosine lr cycle) when ``opts.lr_dropout`` is on; ``cpu`` draws its masks on the CPU."""
    on = opts.lr_dropout in ("y", "cpu")
    kwargs = dict(lr=opts.lr, lr_dropout=LR_DROPOUT_KEEP if on else 1.0,
                  lr_cos=LR_COS_PERIOD if on and lr_cos_cycle else 0)
    cls = AdaBelief if opts.optimizer == "adabelief" else RMSprop
    opt = cls(params, **kwargs)
    if opts.lr_dropout == "cpu":
        opt.mask_device = torch.device("cpu")
    return opt


def make_optimizers(model: torch.nn.Module, critics: dict[str, torch.nn.Module], opts: TrainOptions,
                    lr_cos_cycle: bool = True) -> dict[str, torch.optim.Optimizer]:
    """``G`` over the model's (generator) parameters and one optimizer per critic, as ``opts`` asks."""
    optims = {"G": make_optimizer(model.parameters(), opts, lr_cos_cycle)}
    for name, critic in critics.items():
        optims[name] = make_optimizer(critic.parameters(), opts, lr_cos_cycle)
    return optims
