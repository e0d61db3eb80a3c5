"""Studio re-render latency: one 1280x720 frame re-rendered after a setting changes, measured through the real
server over HTTP (settings parsed, frame merged by the merge functions, PNG encoded, sent), against the 300 ms
budget and against the bare :func:`facelab.merge.render.render_frame` call on the same inputs (the ceiling: the
merge work itself), both in the same run.

    python benchmarks/bench_studio.py [--quick] [--workspace workspace] [--name demo]

Frames and face files come from the demo workspace's ``data_dst`` (only read), upscaled 2x to 1280x720 with their
face metadata scaled to match, in a temporary workspace. The model is the demo model; when its checkpoint cannot be
loaded by this facelab (an older layout), a model of the same architecture with fresh weights is used instead
(speed does not depend on the weights) and the line says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from facelab.utils.runtime import set_openmp_defaults  # noqa: E402

set_openmp_defaults()  # before torch is imported, as main.py does

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import device_name, print_rows  # noqa: E402

from facelab.errors import FacelabError  # noqa: E402
from facelab.merge.config import settings_from_dict  # noqa: E402
from facelab.merge.render import render_frame  # noqa: E402
from facelab.merge.stage import face_inputs  # noqa: E402
from facelab.studio.server import make_server  # noqa: E402
from facelab.workspace import Workspace, list_images, read_image, write_image  # noqa: E402
from facelab.workspace.faces import list_faces, read_meta, update_meta  # noqa: E402

BUDGET_MS = 300.0
SCALE = 2.0


def upscale_workspace(src: Workspace, root: Path, frames: int) -> Workspace:
    """The first ``frames`` destination frames of ``src`` at 2x with their face files (metadata scaled)."""
    ws = Workspace(root)
    ws.init()
    chosen = list_images(src.frames("dst"))[:frames]
    stems = {p.stem for p in chosen}
    for path in chosen:
        img = read_image(path)
        write_image(ws.frames("dst") / f"{path.stem}.png",
                    cv2.resize(img, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC))
    for face in list_faces(src.aligned("dst")):
        meta = read_meta(face)
        if meta.frame_stem not in stems:
            continue
        out = ws.aligned("dst") / face.name
        shutil.copyfile(face, out)
        mat = meta.mat.copy()
        mat[:, :2] /= SCALE  # frame -> face from the 2x frame
        scaled = dataclasses.replace(
            meta, source_frame=f"data_dst/{meta.frame_stem}.png",
            frame_size=(int(meta.frame_size[0] * SCALE), int(meta.frame_size[1] * SCALE)),
            box=tuple(float(v) * SCALE for v in meta.box),
            landmarks_frame=tuple((float(x) * SCALE, float(y) * SCALE) for x, y in meta.lm_frame),
            matrix=tuple(tuple(float(v) for v in row) for row in mat))
        update_meta(out, scaled)
    return ws


def model_for(demo: Workspace, name: str, ws: Workspace) -> tuple[Path, str]:
    """The demo model folder, or a same-architecture model with fresh weights when it cannot be loaded."""
    from facelab.merge.predict import load_predictor

    model_dir = demo.model(name)
    try:
        load_predictor(model_dir, torch.device("cpu"))
        return model_dir, f"model {name}"
    except FacelabError as exc:
        from facelab.models import create_model
        from facelab.train.checkpoint import make_checkpoint, save_checkpoint

        cfg = json.loads((model_dir / "config.json").read_text())
        torch.manual_seed(0)
        model = create_model(cfg["model_type"], dict(cfg["arch"]))
        save_checkpoint(ws.model(name), make_checkpoint(model, {}, 0, {}), backups=0)
        (ws.model(name) / "config.json").write_text(json.dumps(cfg))
        log_note = type(exc).__name__
        return ws.model(name), f"{name}'s architecture ({cfg['arch'].get('archi')}, {cfg['arch'].get('resolution')} " \
                               f"px) with fresh weights: its checkpoint does not load in this facelab ({log_note})"


def post(url: str, token: str, body: dict) -> tuple[float, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                 headers={"X-Studio-Token": token, "Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as res:
        res.read()
        headers = dict(res.headers)
    return (time.perf_counter() - t0) * 1000.0, headers


def run(quick: bool = False, workspace: str = "workspace", name: str = "demo") -> list[dict]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    demo = Workspace(Path(workspace))
    if not list_images(demo.frames("dst")) or not (demo.model(name) / "config.json").is_file():
        raise FacelabError(f"no demo workspace with a model {name!r} in {demo.root}; run `python main.py demo` first "
                           "or pass --workspace / --name")
    reps = 5 if quick else 15
    device = device_name()
    with tempfile.TemporaryDirectory(prefix="bench_studio_") as tmp:
        ws = upscale_workspace(demo, Path(tmp) / "ws", frames=6)
        model_dir, model_note = model_for(demo, name, ws)
        server = make_server(ws, model_dir, port=0, device="cpu")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            url, token = f"http://{host}:{port}/api/render", server.studio.token
            pos = next(f["pos"] for f in server.studio.tuner.frames() if f["faces"])
            first_ms, _ = post(url, token, {"pos": pos, "settings": {"defaults": {}}})  # loads the model
            new_frame_ms, _ = post(url, token, {"pos": pos + 1, "settings": {"defaults": {}}})
            walls, renders = [], []
            for i in range(reps):  # each a new setting: nothing is served from the render cache
                wall, headers = post(url, token, {"pos": pos, "settings": {"defaults": {"erode": i + 1, "blur": 40}}})
                walls.append(wall)
                renders.append(float(headers["X-Render-Ms"]))
            # the ceiling: render_frame alone on the very inputs the studio holds
            tuner = server.studio.tuner
            settings = settings_from_dict({"defaults": {"erode": 1, "blur": 40}})
            item = next(v for k, v in tuner._items.items() if k[0] == pos)
            faces = face_inputs(item, tuner.predictor(), tuner._stats, settings.base.color_smooth)
            bare = []
            for _ in range(reps):
                t0 = time.perf_counter()
                render_frame(item.image, faces, settings.for_frame(item.frame.number))
                bare.append((time.perf_counter() - t0) * 1000.0)
            shape = item.image.shape
        finally:
            server.shutdown()
            server.server_close()
    wall, render, floor = float(np.median(walls)), float(np.median(renders)), float(np.median(bare))
    size = f"{shape[1]}x{shape[0]}"
    return [
        {"name": "studio_rerender_720p_over_budget", "value": wall / BUDGET_MS, "target": "< 1", "device": device,
         "detail": f"median {wall:.0f} ms (max {max(walls):.0f}) per re-render of a {size} frame over HTTP "
                   f"(merge {render:.0f} ms + PNG encode + transfer) vs the {BUDGET_MS:.0f} ms budget; "
                   f"{reps} settings changes, overlay + rct, {model_note}"},
        {"name": "studio_rerender_over_render_frame", "value": wall / floor, "target": "info", "device": device,
         "detail": f"studio re-render {wall:.0f} ms vs render_frame alone {floor:.0f} ms on the same inputs"},
        {"name": "studio_new_frame_720p_ms", "value": new_frame_ms, "target": "info", "device": device,
         "detail": f"first render of a frame not seen yet (read, crop, model, render), {size}; the very first "
                   f"request also loaded the model: {first_ms:.0f} ms"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workspace", default="workspace")
    parser.add_argument("--name", default="demo")
    args = parser.parse_args()
    print_rows(run(args.quick, args.workspace, args.name))


if __name__ == "__main__":
    main()
