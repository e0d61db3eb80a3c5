"""The most face per compute minute: train each configuration for the same budget on the sample videos, then
measure its swap the way ``evaluate`` does, beside the training-free model.

    python benchmarks/bench_quality.py [--minutes 10] [--configs wf64,f96,f128] [--curve f96 --marks 5,10,20,40]

Every configuration starts from the same seed on the same faces (the demo's extraction of the two sample videos,
cached in ``~/.cache/facelab/quality_workspace``), trains for ``--minutes`` of wall time on this machine, and is
measured on the same sampled destination frames, rendered in memory with the default merge: iterations,
inner-face sharpness (swap over destination), that sharpness over the ceiling of the model's resolution,
identity distance to the source and the share of frames closer to it, landmark NME, held-out src->src SSIM and
texture jitter. The training-free model is a row. ``--curve`` trains one configuration in segments and measures it
after each mark (minutes of training in total). RATIO lines: sharpness over the ceiling at the model's own
resolution (what share of its resolution a model reaches) and sharpness over the training-free model's.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from facelab.utils.runtime import keep_freed_memory, set_openmp_defaults  # noqa: E402

set_openmp_defaults()  # before torch is imported, as main.py does

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from common import device_name, print_rows  # noqa: E402

from facelab.evaluate import report as R  # noqa: E402
from facelab.models.warp import build_index  # noqa: E402
from facelab.train.loop import train  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.workspace import Workspace  # noqa: E402

SMALL = {"ae_dims": 128, "e_dims": 24, "d_dims": 24, "d_mask_dims": 12}
#: name -> (architecture, train options over the demo's, share of the budget after which random warp is off)
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {
    "wf64": ({"resolution": 64, "face_type": "whole_face", "archi": "df-ud", **SMALL}, {}, 1.0),
    "f96": ({"resolution": 96, "face_type": "full", "archi": "df-ud", **SMALL}, {}, 1.0),
    "f128": ({"resolution": 128, "face_type": "full", "archi": "df-ud", **SMALL}, {"batch_size": 4}, 1.0),
    "f96-nowarp-end": ({"resolution": 96, "face_type": "full", "archi": "df-ud", **SMALL}, {}, 0.7),
    "f96-hf": ({"resolution": 96, "face_type": "full", "archi": "df-ud", **SMALL}, {"hf_power": 1.0}, 1.0),
    "f128-hf": ({"resolution": 128, "face_type": "full", "archi": "df-ud", **SMALL},
                {"batch_size": 4, "hf_power": 1.0}, 1.0),
    "f96-nowarp": ({"resolution": 96, "face_type": "full", "archi": "df-ud", **SMALL}, {}, 0.0),
    "f96-fast": ({"resolution": 96, "face_type": "full", "archi": "df-ud", **SMALL},
                 {"batch_size": 4, "hf_power": 1.0, "eyes_mouth_prio": True}, 0.0),
}
BASE_OPTS = {"lr": 2e-4, "batch_size": 8, "random_src_flip": True, "autosave_minutes": 0.0, "backups": 0, "seed": 0}


def bench_workspace() -> Workspace:
    """The sample videos extracted as the demo extracts them (cached; later runs reuse the faces)."""
    from facelab.demo.pipeline import DemoConfig, step_faces, step_frames, step_samples
    from facelab.workspace.samples import cache_dir

    ws = Workspace(cache_dir() / "quality_workspace")
    cfg = DemoConfig()
    quiet = lambda n=1, **kw: None  # noqa: E731
    for step in (step_samples, step_frames, step_faces):
        step(ws, cfg, quiet)
    return ws


def train_for(ws: Workspace, name: str, spec: tuple, minutes: float, fresh: bool) -> dict:
    """Train configuration ``spec`` as model ``bench_<name>`` for ``minutes`` (more); returns iterations etc."""
    arch, opts, warp_share = spec
    model_dir = ws.model(f"bench_{name}")
    if fresh and model_dir.exists():
        shutil.rmtree(model_dir)
    device = torch.device("cpu")
    base = TrainOptions(**{**BASE_OPTS, **opts})
    with_warp = minutes * warp_share
    t0 = time.perf_counter()
    res = None
    for seg_minutes, warp in ((with_warp, True), (minutes - with_warp, False)):
        if seg_minutes <= 0:
            continue
        seg = dataclasses.replace(base, max_minutes=seg_minutes, random_warp=warp)
        res = train(ws, model_dir.name, "saehd", arch, seg, device, preview=False, progress=_every(200, name))
    return {"iterations": res.iteration, "ms_per_iter": res.ms_per_iter, "src_loss": res.src_loss,
            "train_minutes": (time.perf_counter() - t0) / 60}


def _every(n: int, name: str):
    """A progress callback printing the iteration and its time every ``n`` iterations (to watch the rate)."""
    def report(k: int = 1, **info) -> None:
        if int(info.get("iter", 0)) % n == 0:
            print(f"# {name}: iteration {info['iter']}, {info.get('ms')} ms", file=sys.stderr, flush=True)

    return report


def measure(ws: Workspace, sources: list, share: float, held: set[str]) -> dict[str, dict]:
    cfg = R.EvaluateConfig()
    bench, _ = R.prepare(ws, cfg, R.find_pairs(ws, need_merged=False), share)
    quiet = lambda n=1, **kw: None  # noqa: E731
    return {s.label: R.measure_source(ws, s, bench, cfg, quiet)[0] for s in sources}


def warp_source(ws: Workspace, held: set[str]) -> R.SwapSource:
    from facelab.merge.predict import TrainingFreePredictor

    model = build_index(ws.aligned("src"), exclude=held)
    return R.SwapSource("training-free", model.name, model.kind, model.resolution, model.face_type,
                        TrainingFreePredictor(model), False)


def held_set(ws: Workspace, share: float) -> set[str]:
    from facelab.workspace.faces import list_faces
    from facelab.workspace.holdout import held_out_paths

    return held_out_paths(list_faces(ws.aligned("src")), share)


def table(rows: list[dict]) -> str:
    head = ("config", "min", "iters", "sharp", "ceiling", "of ceil", "id->src", "closer", "NME", "held SSIM",
            "tex jit")
    lines = ["  ".join(f"{h:>9}" for h in head)]
    for r in rows:
        m = r["measures"]
        vals = (r["config"], f"{r.get('minutes', 0):.0f}", str(r.get("iterations", "-")),
                f"{m['sharpness']['ratio']:.3f}", f"{m['sharpness']['ceiling']:.3f}",
                f"{m['sharpness']['of_ceiling']:.0%}", f"{m['identity']['swap_to_src']:.3f}",
                f"{m['identity']['fraction_closer_to_src']:.0%}", f"{m['expression']['landmark_nme']:.3f}",
                "n/a" if m["held_out"]["ssim"] is None else f"{m['held_out']['ssim']:.3f}",
                f"{(m.get('stability') or {}).get('texture_jitter_swap', float('nan')):.2f}")
        lines.append("  ".join(f"{v:>9}" for v in vals))
    return "\n".join(lines)


def trained_row(ws: Workspace, name: str, share: float, held: set[str]) -> dict:
    source = R._source(ws, ws.model(f"bench_{name}"), False, "cpu")
    return next(iter(measure(ws, [source], share, held).values()))


def run(quick: bool, minutes: float | None = None, configs: list[str] | None = None,
        curve: str | None = None, marks: list[float] | None = None) -> list[dict]:
    keep_freed_memory()
    torch.manual_seed(0)
    ws = bench_workspace()
    share = TrainOptions().holdout
    held = held_set(ws, share)
    minutes = minutes if minutes is not None else (1.0 if quick else 10.0)
    configs = configs or (["wf64", "f96"] if quick else ["wf64", "f96", "f128"])
    rows = [{"config": "training-free", "minutes": 0,
             "measures": next(iter(measure(ws, [warp_source(ws, held)], share, held).values()))}]
    if curve:
        done = 0.0
        for mark in marks or [5, 10, 20, 40]:
            info = train_for(ws, curve, CONFIGS[curve], mark - done, fresh=done == 0)
            done = mark
            rows.append({"config": curve, "minutes": mark, **info, "measures": trained_row(ws, curve, share, held)})
            print(table(rows), flush=True)
    else:
        for name in configs:
            info = train_for(ws, name, CONFIGS[name], minutes, fresh=True)
            rows.append({"config": name, "minutes": minutes, **info,
                         "measures": trained_row(ws, name, share, held)})
            print(table(rows), flush=True)
    dev = device_name(torch.device("cpu"))
    warp_sharp = rows[0]["measures"]["sharpness"]["ratio"]
    out = []
    for r in rows[1:]:
        s = r["measures"]["sharpness"]
        tag = f"{r['config']}_{r['minutes']:.0f}min"
        out.append({"name": f"quality_sharpness_over_ceiling_{tag}", "value": s["of_ceiling"], "target": "info",
                    "unit": "ratio", "device": dev,
                    "detail": f"sharpness {s['ratio']:.3f}, ceiling {s['ceiling']:.3f}, {r['iterations']} iterations"})
        out.append({"name": f"quality_sharpness_over_training_free_{tag}", "value": s["ratio"] / warp_sharp,
                    "target": "info", "unit": "ratio", "device": dev,
                    "detail": f"training-free sharpness {warp_sharp:.3f}"})
    print(table(rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 minute per configuration, two configurations")
    ap.add_argument("--minutes", type=float, default=None, help="training budget per configuration [10]")
    ap.add_argument("--configs", default=None, help=f"comma-separated, from {', '.join(CONFIGS)}")
    ap.add_argument("--curve", default=None, help="train this configuration in segments and measure after each")
    ap.add_argument("--marks", default="5,10,20,40", help="minutes of training at which --curve measures")
    a = ap.parse_args()
    configs = a.configs.split(",") if a.configs else None
    print_rows(run(a.quick, a.minutes, configs, a.curve, [float(m) for m in a.marks.split(",")]))


if __name__ == "__main__":
    main()
