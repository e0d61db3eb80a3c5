"""The trainer's file protocol: a save request saves a checkpoint, a stop request stops cleanly, status.json."""

from __future__ import annotations

import json

import torch

from facelab.train import checkpoint as ck
from facelab.train.control import (
    TrainControl,
    history_tail,
    pending_requests,
    post_request,
    read_status,
    request_path,
    status_path,
    watch,
)
from facelab.train.loop import train
from facelab.train.options import TrainOptions
from facelab.workspace import Workspace

TINY = {"resolution": 32, "archi": "liae-ud", "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}


def test_save_then_stop_requests_reach_the_trainer(tmp_path, aligned_faceset):
    src, dst = aligned_faceset
    ws = Workspace(tmp_path / "ws")
    model_dir = ws.model("m")
    post_request(model_dir, "stop")  # left over from an earlier run: must not stop this one
    asked: dict[str, int] = {}

    def progress(n=1, **info):
        it = info.get("iter", 0)
        if it >= 2 and "save" not in asked:
            post_request(model_dir, "save")
            asked["save"] = it
        elif "save" in asked and "stop" not in asked and not request_path(model_dir, "save").exists():
            asked["stop"] = it  # the save was taken: now ask for a clean stop
            post_request(model_dir, "stop")

    opts = TrainOptions(batch_size=2, workers=0, autosave_minutes=0.0, backups=10, seed=3, target_iter=2000)
    result = train(ws, "m", "saehd", TINY, opts, torch.device("cpu"), progress, src_dir=src, dst_dir=dst,
                   preview=False)
    assert result.stopped_by == "stop_requested"
    assert asked["save"] < asked["stop"] <= result.iteration < 2000
    saved = [i for i, _ in ck.list_backups(model_dir)]
    # iteration 0 (creation), the requested save (after the request was posted), and the final save
    assert saved[0] == 0 and saved[-1] == result.iteration
    assert any(asked["save"] <= i < result.iteration for i in saved[1:-1])
    assert pending_requests(model_dir) == []
    status = read_status(model_dir)
    assert status["state"] == "stopped" and status["stopped_by"] == "stop_requested"
    assert status["iteration"] == result.iteration and status["target_iter"] == 2000
    hist = status["history"]
    assert hist["iteration"][-1] == result.iteration and len(hist["src_loss"]) == len(hist["iteration"])


def test_control_polls_at_most_every_interval_and_reports_rate(tmp_path):
    now = [100.0]
    control = TrainControl(tmp_path, poll_seconds=1.0, status_seconds=5.0, clock=lambda: now[0])
    hist = {"iteration": [1.0, 2.0], "src_loss": [0.5, float("nan")], "dst_loss": [0.4, 0.3]}
    assert control.poll(0, hist, 100, -1) == set()
    assert list(tmp_path.iterdir()) == []  # nobody watches: the model folder stays as it was
    watch(tmp_path)
    now[0] += 1.0
    assert control.poll(0, hist, 100, -1) == set()  # watched: the status is written
    assert read_status(tmp_path)["iteration"] == 0
    post_request(tmp_path, "save")
    now[0] += 0.5
    assert control.poll(5, hist, 100, -1) == set()  # too soon: not even looked at
    now[0] += 0.5
    assert control.poll(10, hist, 100, -1) == {"save"}
    assert not request_path(tmp_path, "save").exists()
    doc = json.loads(status_path(tmp_path).read_text())
    assert doc["iterations_per_second"] == 5.0 and doc["seconds_left"] == 18.0  # 10 iterations in 2 s
    assert doc["history"]["src_loss"] == [0.5, None]  # NaN is not JSON


def test_history_tail_strides_and_keeps_the_last_point():
    hist = {"iteration": [float(i) for i in range(1, 1001)], "src_loss": [1.0 / i for i in range(1, 1001)]}
    tail = history_tail(hist, points=100)
    assert len(tail["iteration"]) in (100, 101)
    assert tail["iteration"][0] == 1.0 and tail["iteration"][-1] == 1000.0
    assert tail["src_loss"][-1] == 1.0 / 1000
