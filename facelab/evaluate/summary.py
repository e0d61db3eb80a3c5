"""The report in a few lines a person reads: one line per measure, one value per compared swap."""

from __future__ import annotations


def row_lines(report: dict) -> dict[str, str]:
    """One summary line per measure, a value per compared swap (``a | b | ...``)."""
    rows = report["rows"]

    def each(fmt) -> str:
        return " | ".join(fmt(r) for r in rows.values())

    def held(r: dict) -> str:
        return "n/a" if r["held_out"]["ssim"] is None else f"{r['held_out']['ssim']:.3f}"

    def stab(r: dict, key: str, digits: int) -> str:
        s = r.get("stability") or {}
        return f"{s[f'{key}_swap']:.{digits}f}" if s else "n/a"

    first = next(iter(rows.values())).get("stability") or {}
    return {
        "swaps compared": " | ".join(rows),
        "sharpness (swap / dst, median)": each(lambda r: f"{r['sharpness']['ratio']:.3f}"),
        "resolution ceiling / share of it": each(lambda r: f"{r['sharpness']['ceiling']:.3f} / "
                                                           f"{r['sharpness']['of_ceiling']:.0%}"),
        "identity swapped->src / ->dst": each(lambda r: f"{r['identity']['swap_to_src']:.3f} / "
                                                        f"{r['identity']['swap_to_dst']:.3f}"),
        "frames closer to source": each(lambda r: f"{r['identity']['fraction_closer_to_src']:.0%}"),
        "landmark NME": each(lambda r: f"{r['expression']['landmark_nme']:.4f}"),
        "pose error (deg)": each(lambda r: f"{r['pose']['pose_error_deg']:.2f}"),
        "SSIM swap vs dst": each(lambda r: f"{r['structure']['ssim_swap_vs_dst']:.3f}"),
        f"held-out src->src SSIM ({next(iter(rows.values()))['held_out']['faces']} faces)": each(held),
        "texture jitter (input " + (f"{first['texture_jitter_orig']:.2f}" if first else "n/a") + ")":
            each(lambda r: stab(r, "texture_jitter", 2)),
        "landmark jitter (input " + (f"{first['landmark_jitter_orig']:.4f}" if first else "n/a") + ")":
            each(lambda r: stab(r, "landmark_jitter", 4)),
    }
