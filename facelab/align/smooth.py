"""Temporal smoothing of one face's landmark track over frames (removes frame-to-frame jitter)."""

from __future__ import annotations

import math

import numpy as np

SMOOTH_METHODS: tuple[str, ...] = ("savgol", "one-euro", "none")


def savgol_track(seq: np.ndarray, window: int = 7, polyorder: int = 2) -> np.ndarray:
    """Savitzky-Golay filter along axis 0 of a (T, ...) track. Short tracks shrink the window (and the order)."""
    from scipy.signal import savgol_filter  # slow import, only when used

    seq = np.asarray(seq, np.float64)
    t = seq.shape[0]
    win = min(int(window), t if t % 2 == 1 else t - 1)
    order = min(int(polyorder), win - 2)  # a short window keeps at most a line, or it would fit exactly
    if win < 3 or order < 1:
        return seq.copy()
    return savgol_filter(seq, win, order, axis=0, mode="interp")


def _alpha(period: float, cutoff: float | np.ndarray) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / period)


def one_euro_track(seq: np.ndarray, fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 0.05,
                   d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) along axis 0 of a (T, ...) track, every coordinate independently.

    Low ``min_cutoff`` (Hz) removes more jitter when still; ``beta`` raises the cutoff with speed (units/s) to
    cut lag on fast motion. Causal: frame t depends only on frames <= t.
    """
    seq = np.asarray(seq, np.float64)
    if seq.shape[0] == 0:
        return seq.copy()
    period = 1.0 / float(fps)
    out = np.empty_like(seq)
    out[0] = seq[0]
    deriv = np.zeros_like(seq[0])
    a_d = _alpha(period, d_cutoff)
    for t in range(1, seq.shape[0]):
        raw_deriv = (seq[t] - out[t - 1]) / period
        deriv = a_d * raw_deriv + (1.0 - a_d) * deriv
        a = _alpha(period, min_cutoff + beta * np.abs(deriv))
        out[t] = a * seq[t] + (1.0 - a) * out[t - 1]
    return out


def smooth_landmarks(seq: np.ndarray, method: str = "savgol", **params) -> np.ndarray:
    """Smooth a (T, 68, 2) landmark track of one face over T frames; returns (T, 68, 2) float64.

    ``savgol``: params window (7), polyorder (2). ``one-euro``: fps (30), min_cutoff (1.0), beta (0.05),
    d_cutoff (1.0). ``none``: a copy.
    """
    seq = np.asarray(seq, np.float64)
    if seq.ndim != 3 or seq.shape[2] != 2:
        raise ValueError(f"expected a (T, N, 2) landmark track, got {seq.shape}")
    key = method.replace("_", "-").lower()
    if key == "savgol":
        return savgol_track(seq, **params)
    if key in ("one-euro", "oneeuro", "euro"):
        return one_euro_track(seq, **params)
    if key == "none":
        return seq.copy()
    raise ValueError(f"unknown smoothing method {method!r}; choose one of: {', '.join(SMOOTH_METHODS)}")
