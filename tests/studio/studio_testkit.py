"""A small real workspace for the studio tests (astronaut frames with dlib-landmarked face files, one with a stored
mask, a tiny SAEHD model saved as a checkpoint) and a studio server running on 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "merge"))
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.studio.server import StudioServer, make_server  # noqa: E402
from facelab.workspace import MaskRecord, Workspace, read_meta, update_meta  # noqa: E402

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 8, "archi": "df"}
MODEL = "tiny"


def build_workspace(root: Path, image: np.ndarray, frames: int = 5) -> Workspace:
    """``frames`` frames of ``image`` drifting right, a face file on each but the last, a stored ``hull`` mask on
    the first face file, and a tiny SAEHD model with seeded random weights."""
    from facelab.align import hull_mask
    from facelab.models import create_model
    from facelab.train.checkpoint import make_checkpoint, save_checkpoint

    ws = Workspace(root)
    ws.init()
    make_clip(ws, image, frames, detect_landmarks(image), faces_at=set(range(frames - 1)), step=2.0)
    first = sorted(ws.aligned("dst").iterdir())[0]
    meta = read_meta(first)
    mask = hull_mask(meta.lm_face, meta.size)
    update_meta(first, meta.with_mask(MaskRecord.from_array("hull", "hull", mask, meta.size)))
    torch.manual_seed(0)
    save_checkpoint(ws.model(MODEL), make_checkpoint(create_model("saehd", TINY), {}, 0, {}), backups=0)
    (ws.model(MODEL) / "config.json").write_text(json.dumps({"name": MODEL, "model_type": "saehd", "kind": "swap",
                                                             "iterations": 0}))
    return ws


@contextlib.contextmanager
def running(ws: Workspace, model_dir: Path | None) -> Iterator[StudioServer]:
    server = make_server(ws, model_dir, host="127.0.0.1", port=0, device="cpu")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Client:
    """A plain HTTP client of a running studio (urllib), sending the token as a header unless told otherwise."""

    def __init__(self, server: StudioServer, token: str | None = "header") -> None:
        host, port = server.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.token = server.studio.token if token == "header" else token

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None
                ) -> tuple[int, dict, bytes]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            hdrs["X-Studio-Token"] = self.token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return res.status, dict(res.headers), res.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def get(self, path: str, **kw) -> tuple[int, dict, bytes]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw) -> tuple[int, dict, bytes]:
        return self.request("POST", path, body, **kw)

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body)
        return status, json.loads(data)
