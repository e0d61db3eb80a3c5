"""DeepFaceLab's optimizers: AdaBelief (no bias correction) and RMSprop, both with ``lr_dropout``.

``lr_dropout`` < 1 multiplies each update by a fresh Bernoulli(keep = lr_dropout) mask per weight element;
``lr_cos`` > 0 scales lr by (cos(2 pi t / lr_cos) + 1) / 2, t = the optimizer's step count (1 on the first step).
Both are ``torch.optim.Optimizer`` subclasses, so ``state_dict`` / ``load_state_dict`` work as usual.
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


class _DFLOptimizer(torch.optim.Optimizer):
    """Shared step count, lr cosine and lr dropout. The update runs block by block over flat views so its
    temporaries stay in cache (the step is memory-bound on CPU)."""

    state_keys: tuple[str, ...] = ()

    def __init__(self, params: Iterable, defaults: dict, generator: torch.Generator | None = None) -> None:
        if not 0.0 < defaults["lr_dropout"] <= 1.0:
            raise ValueError("lr_dropout (keep probability) must be in (0, 1]")
        super().__init__(params, defaults)
        self.generator = generator

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
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    for key in self.state_keys:
                        state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                lr = _cos_lr(group["lr"], int(state["step"].item()), group["lr_cos"])
                self._update_param(p, state, group, lr)
        return loss

    def _update_param(self, p: torch.Tensor, state: dict, group: dict, lr: float) -> None:
        tensors = [p, p.grad] + [state[k] for k in self.state_keys]
        flats = [_flat(t) for t in tensors]
        if any(f is None for f in flats) or len({t.stride() for t in tensors}) != 1:
            flats = [t for t in tensors]  # unusual layouts: one whole-tensor update
            self._update_block(*flats, group, lr, torch.empty_like(p))
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
        keep = torch.empty_like(update).bernoulli_(group["lr_dropout"], generator=self.generator)
        return update.mul_(keep)

    def _update_block(self, *args) -> None:
        raise NotImplementedError


class AdaBelief(_DFLOptimizer):
    """m = b1 m + (1-b1) g;  s = b2 s + (1-b2) (g - m)^2;  w -= lr m / (sqrt(s) + eps). No bias correction."""

    state_keys = ("exp_avg", "exp_avg_var")

    def __init__(self, params: Iterable, lr: float = 5e-5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, lr_dropout: float = 1.0, lr_cos: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, lr_dropout=lr_dropout, lr_cos=lr_cos), generator)

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


class RMSprop(_DFLOptimizer):
    """a = rho a + (1-rho) g^2;  w -= lr g / (sqrt(a) + eps)."""

    state_keys = ("square_avg",)

    def __init__(self, params: Iterable, lr: float = 5e-5, rho: float = 0.9, eps: float = 1e-7,
                 lr_dropout: float = 1.0, lr_cos: int = 0, generator: torch.Generator | None = None) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, lr_dropout=lr_dropout, lr_cos=lr_cos), generator)

    def _update_block(self, p, g, a, group, lr, tmp) -> None:  # type: ignore[override]
        rho = group["rho"]
        a.mul_(rho).addcmul_(g, g, value=1.0 - rho)
        torch.sqrt(a, out=tmp).add_(group["eps"])
        if group["lr_dropout"] >= 1.0:
            p.addcdiv_(g, tmp, value=-lr)
        else:
            p.add_(self._dropout(torch.div(g, tmp, out=tmp), group), alpha=-lr)


def make_optimizer(params: Iterable, opts: TrainOptions, lr_cos_cycle: bool = True) -> torch.optim.Optimizer:
    """The optimizer ``opts`` asks for (AdaBelief or RMSprop), with lr dropout (and, when ``lr_cos_cycle``, the
    cosine lr cycle) when ``opts.lr_dropout`` is on."""
    on = opts.lr_dropout in ("y", "cpu")
    kwargs = dict(lr=opts.lr, lr_dropout=LR_DROPOUT_KEEP if on else 1.0,
                  lr_cos=LR_COS_PERIOD if on and lr_cos_cycle else 0)
    cls = AdaBelief if opts.optimizer == "adabelief" else RMSprop
    return cls(params, **kwargs)


def make_optimizers(model: torch.nn.Module, critics: dict[str, torch.nn.Module], opts: TrainOptions,
                    lr_cos_cycle: bool = True) -> dict[str, torch.optim.Optimizer]:
    """``G`` over the model's (generator) parameters and one optimizer per critic, as ``opts`` asks."""
    optims = {"G": make_optimizer(model.parameters(), opts, lr_cos_cycle)}
    for name, critic in critics.items():
        optims[name] = make_optimizer(critic.parameters(), opts, lr_cos_cycle)
    return optims
