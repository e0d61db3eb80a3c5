"""The evaluation figure: the close-ups of one frame (destination and every swap compared) over six panels of
measures, one bar or line per swap, read at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink")


def _short(label: str) -> str:
    return label.split(" (")[0] + ("\n(" + label.split(" (", 1)[1] if " (" in label else "")


def _bars(ax, labels: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> None:
    """Grouped bars: one group per row label, one bar per series."""
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x, [_short(lbl) for lbl in labels], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _closeup_strip(fig, closeups: dict[str, np.ndarray], frame: str) -> None:
    items = list(closeups.items())
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for i, (ax, (label, image)) in enumerate(zip(axes, items, strict=True)):
        ax.imshow(image)
        ax.set_title(_short(label) + (f"\nframe {frame}" if i == 0 else ""), fontsize=8)
        ax.axis("off")


def plot_report(report: dict, closeups: dict[str, np.ndarray], path: Path) -> None:
    """Save the PNG: close-ups on top, then identity, sharpness against its ceiling, expression and pose,
    held-out reconstruction, jitter, and the face-colour track of the merged frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["rows"]
    labels = list(rows)
    fig = Figure(figsize=(15, 13), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2])
    _closeup_strip(top, closeups, report.get("closeup_frame", ""))
    ax = bottom.subplots(2, 3)

    ident = {k: [rows[lbl]["identity"][k] for lbl in labels] for k in ("swap_to_src", "swap_to_dst")}
    _bars(ax[0][0], labels, {"to source": ident["swap_to_src"], "to destination": ident["swap_to_dst"]},
          "Identity (dlib distance; same person < 0.6); closer to source: " + ", ".join(
              f"{rows[lbl]['identity']['fraction_closer_to_src']:.0%}" for lbl in labels), "distance")
    ax[0][0].axhline(0.6, ls="--", color="tab:blue", lw=1)

    _bars(ax[0][1], labels, {"swap": [rows[lbl]["sharpness"]["ratio"] for lbl in labels],
                             "ceiling at its resolution": [rows[lbl]["sharpness"]["ceiling"] for lbl in labels]},
          "Inner-face sharpness over the destination's (1 = as sharp)", "ratio")
    ax[0][1].axhline(1.0, ls=":", color="k", lw=1)

    _bars(ax[0][2], labels, {"landmark NME x10": [10 * rows[lbl]["expression"]["landmark_nme"] for lbl in labels],
                             "pose error (deg)": [rows[lbl]["pose"]["pose_error_deg"] for lbl in labels]},
          "Expression and pose kept (lower is better)", "")

    _bars(ax[1][0], labels, {"held-out src->src SSIM": [rows[lbl]["held_out"]["ssim"] for lbl in labels],
                             "SSIM swap vs destination": [rows[lbl]["structure"]["ssim_swap_vs_dst"]
                                                          for lbl in labels]},
          f"Structure ({rows[labels[0]]['held_out']['faces']} held-out source faces)", "SSIM")
    ax[1][0].set_ylim(0, 1)

    stab = {lbl: rows[lbl].get("stability") or {} for lbl in labels}
    if all(stab.values()):
        first = stab[labels[0]]
        _bars(ax[1][1], ["input"] + labels,
              {"texture jitter": [first["texture_jitter_orig"]] + [stab[lbl]["texture_jitter_swap"] for lbl in labels],
               "landmark jitter x100": [100 * first["landmark_jitter_orig"]] +
               [100 * stab[lbl]["landmark_jitter_swap"] for lbl in labels]},
              f"Stability over {first['frames']} frames (lower is steadier)", "")
        a = ax[1][2]
        a.plot(np.asarray(first["colour_track_orig"]) * 255, label="input face mean colour", color="k")
        for i, lbl in enumerate(labels):
            a.plot(np.asarray(stab[lbl]["colour_track_swap"]) * 255, label=_short(lbl).split("\n")[0],
                   color=COLOURS[i % len(COLOURS)])
        a.set_title("Face colour over time", fontsize=9)
        a.set_xlabel("frame")
        a.legend(fontsize=7)
    fig.savefig(path, format="png")
