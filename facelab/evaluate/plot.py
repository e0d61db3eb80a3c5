"""The evaluation figure: four panels a person reads at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_report(report: dict, path: Path) -> None:
    """Save a 2x2 PNG: identity distances, per-frame expression/pose error, structure, and temporal stability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ident, rows = report["identity"], report["per_frame"]
    fig, ax = plt.subplots(2, 2, figsize=(12, 8), dpi=90)
    labels = ["swapped\nto source", "swapped\nto dest.", "original\nto source", "original\nto dest."]
    keys = ["swap_to_src", "swap_to_dst", "orig_to_src", "orig_to_dst"]
    a = ax[0, 0]
    a.bar(labels, [ident[k] for k in keys], color=["tab:green", "tab:red", "tab:gray", "tab:gray"])
    for i, k in enumerate(keys):
        a.scatter(np.full(len(rows), i), [r[k] for r in rows], s=8, color="k", alpha=0.5)
    a.axhline(0.6, ls="--", color="tab:blue", lw=1, label="dlib same-person threshold")
    a.set_ylabel("dlib identity distance")
    a.set_title(f"Identity: {ident['fraction_closer_to_src']:.0%} of swapped frames closer to the source")
    a.legend(loc="upper right", fontsize=8)

    a = ax[0, 1]
    x = np.arange(len(rows))
    a.plot(x, [r["landmark_nme"] for r in rows], "o-", label="landmark NME (x inter-ocular)")
    a2 = a.twinx()
    a2.plot(x, [r["pose_error_deg"] for r in rows], "s--", color="tab:orange", label="pose error (deg)")
    a.set_xlabel("sampled frame")
    a.set_title(f"Expression / pose kept: NME {report['expression']['landmark_nme']:.3f}, "
                f"pose {report['pose']['pose_error_deg']:.1f} deg")
    a.legend(loc="upper left", fontsize=8)
    a2.legend(loc="upper right", fontsize=8)

    a = ax[1, 0]
    a.plot(x, [r["ssim"] for r in rows], "o-")
    st = report["structure"]
    a.set_ylim(0, 1)
    a.set_title(f"Structure: SSIM swap vs dst {st['ssim_swap_vs_dst']:.3f}, "
                f"dst->dst reconstruction {st['reconstruction_ssim_dst']:.3f}")
    a.set_xlabel("sampled frame")

    a = ax[1, 1]
    stab = report.get("stability") or {}
    if stab:
        a.plot(np.asarray(stab["colour_track_orig"]) * 255, label="input face mean colour")
        a.plot(np.asarray(stab["colour_track_swap"]) * 255, label="swapped face mean colour")
        a.set_title(f"Stability: landmark jitter {stab['landmark_jitter_orig']:.4f} -> "
                    f"{stab['landmark_jitter_swap']:.4f}, colour {stab['colour_jitter_orig']:.2f} -> "
                    f"{stab['colour_jitter_swap']:.2f}", fontsize=9)
        a.set_xlabel("frame")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
