"""Temporal choice of the source face shown for each frame of a destination track, and cross-fades at switches.

A per-frame argmin of match costs flickers between near-equal source faces, so texture jumps from frame to
frame. :func:`select_track` instead minimises the total cost plus a penalty per switch of source face (a
hysteresis: a switch happens only when the new face is better for long enough to pay for it), by Viterbi.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# prev (a,) int, cur (b,) int -> (a, b) float: the cost of switching from each prev source face to each cur one
PairCost = Callable[[np.ndarray, np.ndarray], np.ndarray]


def exclude_unusable(costs: np.ndarray, usable: np.ndarray | None) -> np.ndarray:
    """(T, N) float64 copy of ``costs`` with +inf in the columns of source faces that are not ``usable`` (N,)
    bool; unchanged when ``usable`` is None or no face is usable (a poor face beats no face)."""
    out = np.array(costs, np.float64)
    if usable is None:
        return out
    ok = np.asarray(usable, bool)
    if ok.shape != (out.shape[1],):
        raise ValueError(f"usable must be ({out.shape[1]},) bool, got {ok.shape}")
    if ok.any():
        out[:, ~ok] = np.inf
    return out


def count_switches(path: np.ndarray) -> int:
    """Number of frames whose source face differs from the previous frame's."""
    p = np.asarray(path)
    return int((p[1:] != p[:-1]).sum())


def path_cost(costs: np.ndarray, path: np.ndarray, switch_cost: float, pair_cost: PairCost | None = None) -> float:
    """Total cost of ``path`` (T,) under ``costs`` (T, N): frame costs plus the cost of every switch (the
    objective :func:`select_track` minimises)."""
    p = np.asarray(path, np.int64)
    total = float(np.asarray(costs, np.float64)[np.arange(len(p)), p].sum())
    for a, b in zip(p[:-1], p[1:], strict=True):
        if a != b:
            pair = np.inf if pair_cost is None else float(pair_cost(np.array([a]), np.array([b]))[0, 0])
            total += min(float(switch_cost), pair)
    return total


def select_track(costs: np.ndarray, switch_cost: float, usable: np.ndarray | None = None,
                 pair_cost: PairCost | None = None, top_k: int = 32) -> np.ndarray:
    """(T,) int64 source face per frame minimising the sum of ``costs`` (T, N) plus the switch costs.

    A switch from face i to face j != i costs ``switch_cost``, or ``min(switch_cost, pair_cost([i], [j]))`` with
    a ``pair_cost`` (a switch between near-identical faces, such as neighbouring frames of the source video, may
    cost less). Faces not ``usable`` (N,) bool get infinite cost unless none is usable.

    Without ``pair_cost`` the Viterbi is exact and O(T N) (a constant penalty needs only the best previous
    state). With it, the states of frame t are the ``top_k`` cheapest faces of frames t-1, t and t+1 (so
    staying on a face through a frame where it is not among the best stays possible): O(T k^2), exact when
    ``top_k >= N``. Ties go to staying, then to the lower index.
    """
    c = exclude_unusable(costs, usable)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"costs must be a non-empty (T, N) array, got {c.shape}")
    if np.isnan(c).any() or (c == -np.inf).any():
        raise ValueError("costs contain NaN or -inf")
    dead = np.flatnonzero(~np.isfinite(c).any(1))
    if dead.size:
        raise ValueError(f"no source face has a finite cost at frame {int(dead[0])}")
    if not np.isfinite(switch_cost) or switch_cost < 0:
        raise ValueError(f"switch_cost must be finite and >= 0, got {switch_cost}")
    if pair_cost is None:
        return _viterbi_constant(c, float(switch_cost))
    return _viterbi_candidates(c, float(switch_cost), pair_cost, max(1, int(top_k)))


def _viterbi_constant(costs: np.ndarray, switch_cost: float) -> np.ndarray:
    t_len, n = costs.shape
    back = np.empty((t_len, n), np.int32)
    states = np.arange(n, dtype=np.int32)
    acc = costs[0].copy()
    for t in range(1, t_len):
        best = int(np.argmin(acc))
        moved = acc[best] + switch_cost
        stay = acc <= moved
        back[t] = np.where(stay, states, best)
        acc = np.where(stay, acc, moved) + costs[t]
    path = np.empty(t_len, np.int64)
    path[-1] = int(np.argmin(acc))
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _candidates(costs: np.ndarray, top_k: int) -> list[np.ndarray]:
    """Per frame, the sorted union of the ``top_k`` cheapest finite faces of that frame and its two neighbours."""
    k = min(top_k, costs.shape[1])
    best = np.argpartition(costs, k - 1, axis=1)[:, :k] if k < costs.shape[1] else np.tile(
        np.arange(costs.shape[1]), (len(costs), 1))
    out = []
    for t in range(len(costs)):
        cand = np.unique(best[max(t - 1, 0):t + 2])
        out.append(cand[np.isfinite(costs[t, cand])])
    return out


def _viterbi_candidates(costs: np.ndarray, switch_cost: float, pair_cost: PairCost, top_k: int) -> np.ndarray:
    cands = _candidates(costs, top_k)
    acc = costs[0, cands[0]]
    backs: list[np.ndarray] = []
    for t in range(1, len(costs)):
        prev, cur = cands[t - 1], cands[t]
        trans = np.minimum(np.asarray(pair_cost(prev, cur), np.float64), switch_cost)
        if trans.shape != (len(prev), len(cur)):
            raise ValueError(f"pair_cost returned {trans.shape}, expected {(len(prev), len(cur))}")
        trans[prev[:, None] == cur[None, :]] = 0.0
        total = acc[:, None] + trans
        cols = np.arange(len(cur))
        back = np.argmin(total, axis=0)
        # on a tie, stay: the state of the same face in the previous frame, where it is a candidate there
        same = np.minimum(np.searchsorted(prev, cur), len(prev) - 1)
        stay = (prev[same] == cur) & (total[same, cols] <= total[back, cols])
        back = np.where(stay, same, back)
        backs.append(back)
        acc = total[back, cols] + costs[t, cur]
    pos = int(np.argmin(acc))
    path = np.empty(len(costs), np.int64)
    path[-1] = cands[-1][pos]
    for t in range(len(costs) - 1, 0, -1):
        pos = int(backs[t - 1][pos])
        path[t - 1] = cands[t - 1][pos]
    return path


def frame_gap_pair_cost(frames: np.ndarray, switch_cost: float, full_gap: int = 5) -> PairCost:
    """A ``pair_cost`` for source faces from one video: switching between faces ``g`` frames apart costs
    ``switch_cost * min(1, g / full_gap)`` (neighbouring frames look nearly the same, so the path may follow the
    source video along). ``frames`` (N,) int: the source frame number of each face."""
    f = np.asarray(frames, np.float64)
    scale = float(switch_cost) / max(int(full_gap), 1)

    def cost(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return np.minimum(np.abs(f[prev][:, None] - f[cur][None, :]) * scale, float(switch_cost))

    return cost


def crossfade_weights(path: np.ndarray, length: int) -> list[list[tuple[int, float]]]:
    """Per frame, ``[(source index, weight), ...]`` (weights sum to 1, largest first) cross-fading at switches.

    The weights are the one-hot path averaged over a centred window of ``length + 1`` frames (ends replicated),
    so each switch blends old and new over ``length`` frames with linear ramps (new: 1/(L+1), ..., L/(L+1));
    switches closer than that blend three faces or more. ``length`` 0 gives hard switches.
    """
    p = np.asarray(path, np.int64)
    if p.ndim != 1:
        raise ValueError(f"path must be (T,), got {p.shape}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    window = int(length) + 1
    before = window // 2
    padded = np.concatenate([np.full(before, p[0]), p, np.full(window - 1 - before, p[-1])]) if len(p) else p
    out = []
    for t in range(len(p)):
        ids, counts = np.unique(padded[t:t + window], return_counts=True)
        order = np.lexsort((ids, -counts))
        out.append([(int(ids[i]), float(counts[i]) / window) for i in order])
    return out
