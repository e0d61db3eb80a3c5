"""The studio's HTTP endpoints on a real server (127.0.0.1, a free port) over a small real workspace."""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from studio_testkit import MODEL, Client, build_workspace, running  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.merge.config import MergeConfig, settings_from_file  # noqa: E402
from facelab.merge.predict import load_predictor  # noqa: E402
from facelab.merge.preview import render_frames  # noqa: E402
from facelab.merge.stage import MergePaths  # noqa: E402
from facelab.studio.settings import SETTINGS_FILE  # noqa: E402
from facelab.train.control import TrainControl, control_dir, request_path  # noqa: E402


@pytest.fixture(scope="module")
def studio(tmp_path_factory, astronaut):
    ws = build_workspace(tmp_path_factory.mktemp("studio") / "workspace", astronaut)
    with running(ws, ws.model(MODEL)) as server:
        yield ws, server


@pytest.fixture
def client(studio):
    return Client(studio[1])


def _png(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _doc(**defaults) -> dict:
    return {"defaults": defaults, "ranges": []}


# -- token ------------------------------------------------------------------------------------------------------


def test_every_request_needs_the_token(studio):
    ws, server = studio
    for path in ("/", "/static/app.js", "/api/state", "/api/file?path=workspace.json"):
        assert Client(server, token=None).get(path)[0] == 403
        assert Client(server, token="x" * 32).get(path)[0] == 403
    status, headers, body = Client(server, token=None).get(f"/?token={server.studio.token}")
    assert status == 200 and b"facelab studio" in body
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert Client(server, token=None).get("/api/state", headers={"Cookie": cookie})[0] == 200
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith(f"/?token={server.studio.token}")


def test_the_page_and_its_scripts_are_served_from_the_package(client):
    for name, kind in (("/static/app.js", "javascript"), ("/static/style.css", "css")):
        status, headers, body = client.get(name)
        assert status == 200 and kind in headers["Content-Type"] and len(body) > 500
    status, _, body = client.get("/")
    assert b"http://" not in body and b"https://" not in body  # no CDN: everything offline
    assert client.get("/static/../server.py")[0] == 404
    assert client.get("/static/tuning.py")[0] == 404


# -- merge tuning -----------------------------------------------------------------------------------------------


def test_state_lists_every_merge_setting_from_the_dataclass(client):
    status, state = client.json("GET", "/api/state")
    assert status == 200
    names = [f["name"] for f in state["schema"]]
    assert names == [f.name for f in dataclasses.fields(MergeConfig)]  # new settings appear by themselves
    by_name = {f["name"]: f for f in state["schema"]}
    assert by_name["erode"]["range"] == [-400, 400] and by_name["erode"]["kind"] == "int"
    assert "overlay" in by_name["mode"]["choices"] and by_name["smooth"]["global"]
    assert all(f["help"] for f in state["schema"])
    assert "stored:hull" in state["suggestions"]["mask_mode"]
    assert [f["faces"] for f in state["frames"]] == [1, 1, 1, 1, 0]
    assert state["settings"]["defaults"] == json.loads(json.dumps(dataclasses.asdict(MergeConfig())))


def test_render_changes_with_a_setting_and_equals_the_merge_functions(studio, client):
    ws, _ = studio
    doc = _doc(erode=0, color="none")
    status, headers, body = client.post("/api/render", {"pos": 1, "settings": doc})
    assert status == 200 and headers["Content-Type"] == "image/png" and headers["X-Frame-Number"] == "2"
    plain = _png(body)
    eroded = _png(client.post("/api/render", {"pos": 1, "settings": _doc(erode=60, color="none")})[2])
    assert plain.shape == eroded.shape == (512, 512, 3)
    assert np.abs(plain.astype(int) - eroded.astype(int)).max() > 20  # the face edge moved
    mask = _png(client.post("/api/render", {"pos": 1, "settings": doc, "view": "mask"})[2])
    assert mask.ndim == 2 and mask.max() == 255 and mask.min() == 0
    # the merge's own in-memory render of the same frame (the function `merge preview` uses)
    from facelab.merge.config import settings_from_dict

    ref = render_frames(MergePaths.of(ws), load_predictor(ws.model(MODEL), "cpu"), settings_from_dict(doc),
                        ["000002"])["000002"]
    assert np.array_equal(plain, ref)


def test_render_errors_are_one_line_400s(client):
    status, doc = client.json("POST", "/api/render", {"pos": 0, "settings": _doc(erode=9999)})
    assert status == 400 and "erode" in doc["error"]
    status, doc = client.json("POST", "/api/render", {"pos": 99, "settings": _doc()})
    assert status == 400 and "outside" in doc["error"]
    status, doc = client.json("POST", "/api/render", {"pos": 0, "settings": _doc(mask_mode="stored:sat")})
    assert status == 400 and "sat" in doc["error"]
    status, doc = client.json("POST", "/api/render", {"pos": 0, "settings": _doc(bogus=1)})
    assert status == 400 and "bogus" in doc["error"]


def test_a_frame_range_override_renders_only_inside_its_range(client):
    base = _doc(color="none")
    ranged = {"defaults": {"color": "none"}, "ranges": [{"frames": "2-3", "erode": 60}]}
    r1, r2 = (_png(client.post("/api/render", {"pos": 0, "settings": d})[2]) for d in (base, ranged))
    assert np.array_equal(r1, r2)  # frame 1 lies outside 2-3
    r1, r2 = (_png(client.post("/api/render", {"pos": 1, "settings": d})[2]) for d in (base, ranged))
    assert not np.array_equal(r1, r2)


def test_saved_settings_are_the_file_merge_config_reads_with_revisions(studio, client):
    ws, _ = studio
    doc = {"defaults": {"erode": 20, "mode": "seamless"}, "ranges": [{"frames": "2-3", "blur": 10}]}
    status, first = client.json("GET", "/api/settings")
    status, saved = client.json("POST", "/api/settings", {"settings": doc, "revision": first["revision"]})
    assert status == 200
    path = ws.root / SETTINGS_FILE
    settings = settings_from_file(path)
    assert settings.base.erode == 20 and settings.base.mode == "seamless"
    assert settings.for_frame(3).blur == 10 and settings.for_frame(4).blur == 64
    # a second tab still holding the first revision is refused, and gets the current settings back
    status, conflict = client.json("POST", "/api/settings", {"settings": _doc(erode=1), "revision": first["revision"]})
    assert status == 409 and conflict["settings"]["defaults"]["erode"] == 20
    assert settings_from_file(path).base.erode == 20
    status, bad = client.json("POST", "/api/settings", {"settings": _doc(erode="x"), "revision": saved["revision"]})
    assert status == 400 and settings_from_file(path).base.erode == 20  # a bad document never reaches the file


def test_two_tabs_saving_at_once_never_corrupt_the_file(studio, client):
    ws, server = studio
    errors = []

    def tab(k: int) -> None:
        c = Client(server)
        for i in range(8):
            status, _, _ = c.post("/api/settings", {"settings": _doc(erode=k * 10 + i), "revision": None})
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=tab, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = settings_from_file(ws.root / SETTINGS_FILE).base.erode
    assert final in {k * 10 + 7 for k in range(3)}
    assert not [p for p in ws.root.iterdir() if p.name.startswith(".tmp-")]


def test_the_server_survives_a_client_that_disconnects_mid_render(studio, client):
    _, server = studio
    body = json.dumps({"pos": 2, "settings": _doc(erode=33, blur=7)}).encode()
    for _ in range(3):
        with socket.create_connection(server.server_address[:2], timeout=10) as sock:
            sock.sendall(b"POST /api/render HTTP/1.1\r\nHost: x\r\nX-Studio-Token: " + server.studio.token.encode() +
                         b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                         b"\r\n\r\n" + body)
        # closed before the answer
    time.sleep(0.5)
    status, headers, _ = client.post("/api/render", {"pos": 2, "settings": _doc(erode=33, blur=7)})
    assert status == 200 and headers["Content-Type"] == "image/png"


def test_full_merge_runs_from_the_saved_file_with_progress(studio, client):
    ws, _ = studio
    client.post("/api/settings", {"settings": _doc(color="none", workers=0), "revision": None})
    status, job = client.json("POST", "/api/merge", {})
    assert status == 200 and job["state"] == "running"
    deadline = time.monotonic() + 120
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.json("GET", "/api/merge")[1]
    assert job["state"] == "done", job
    assert job["done"] == job["total"] == 5
    assert sorted(p.name for p in ws.merged.glob("*.png")) == [f"{i:06d}.png" for i in range(1, 6)]
    shown = _png(client.post("/api/render", {"pos": 0, "settings": _doc(color="none", workers=0)})[2])
    merged = cv2.cvtColor(cv2.imread(str(ws.merged / "000001.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(shown.astype(int) - merged.astype(int)).max() <= 2  # batched model calls may round apart


# -- security -----------------------------------------------------------------------------------------------------


def test_only_files_inside_the_workspace_are_served(studio, client, tmp_path):
    ws, _ = studio
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    link = ws.root / "link_out.txt"
    link.symlink_to(secret)
    dir_link = ws.root / "dir_out"
    dir_link.symlink_to(tmp_path, target_is_directory=True)
    try:
        assert client.get("/api/file?path=workspace.json")[0] == 200
        for bad in ("../secret.txt", "data_dst/../../secret.txt", "%2e%2e/secret.txt", str(secret), "/etc/passwd",
                    "link_out.txt", "dir_out/secret.txt", "C:\\x", ""):
            status, _, body = client.get(f"/api/file?path={bad}")
            assert status in (403, 400), (bad, status)
            assert b"TOP-SECRET-CONTENT" not in body
        assert client.get("/api/file?path=nothing.png")[0] == 404
    finally:
        link.unlink()
        dir_link.unlink()


def test_face_and_model_names_cannot_leave_their_folders(studio, client):
    ws, _ = studio
    for name in ("../000001.png", "..", ".hidden", "a/b.jpg", "/etc/passwd"):
        assert client.get(f"/api/faces/meta?side=dst&name={name}")[0] == 403
        assert client.post("/api/faces/trash", {"side": "dst", "names": [name]})[0] == 403
    assert client.get("/api/faces/meta?side=../x&name=a.jpg")[0] == 400
    for model in ("..", "../model", "/tmp"):
        assert client.get(f"/api/train/image?model={model}&name=preview.png")[0] in (403, 404)
        assert client.post("/api/train/request", {"model": model, "what": "stop"})[0] == 403
    assert client.get(f"/api/train/image?model={MODEL}&name=ckpt_last.pt")[0] == 403
    assert len(list(ws.frames("dst").glob("*.png"))) == 5


# -- face sets ----------------------------------------------------------------------------------------------------


def test_faces_are_paged_sorted_thumbnailed_and_trashed_never_deleted(studio, client):
    ws, _ = studio
    status, page = client.json("GET", "/api/faces?side=dst&page=0&per=3")
    assert status == 200 and page["total"] == 4 and page["names"] == ["000001_0.jpg", "000002_0.jpg", "000003_0.jpg"]
    assert client.json("GET", "/api/faces?side=dst&page=1&per=3")[1]["names"] == ["000004_0.jpg"]
    by_blur = client.json("GET", "/api/faces?side=dst&sort=blur&per=10")[1]["names"]
    assert sorted(by_blur) == sorted(page["names"] + ["000004_0.jpg"])
    assert client.get("/api/faces?side=dst&sort=nope")[0] == 400

    status, headers, thumb = client.get("/api/faces/thumb?side=dst&name=000001_0.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    cached = list((ws.root / ".studio" / "thumbs" / "dst").glob("000001_0-*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == thumb
    assert client.get("/api/faces/thumb?side=dst&name=000001_0.jpg")[2] == thumb

    status, meta = client.json("GET", "/api/faces/meta?side=dst&name=000001_0.jpg")
    assert meta["source_frame"] == "data_dst/000001.png" and meta["masks"] == [{"name": "hull", "source": "hull"}]
    assert len(meta["landmarks_face"]) == 68
    status, headers, mask = client.get("/api/faces/mask?side=dst&name=000001_0.jpg&mask=hull")
    assert status == 200 and _png(mask).max() == 255
    assert client.get("/api/faces/mask?side=dst&name=000001_0.jpg&mask=sat")[0] == 404

    assert client.json("POST", "/api/faces/trash", {"side": "dst", "names": ["000002_0.jpg"]}) == (200, {"moved": 1})
    assert not (ws.aligned("dst") / "000002_0.jpg").exists()
    assert (ws.root / "data_dst" / "aligned_trash" / "000002_0.jpg").is_file()
    assert client.json("GET", "/api/faces?side=dst&place=trash")[1]["names"] == ["000002_0.jpg"]
    state = client.json("GET", "/api/state")[1]
    assert [f["faces"] for f in state["frames"]] == [1, 0, 1, 1, 0]  # merge tuning sees the change
    assert client.json("POST", "/api/faces/restore", {"side": "dst", "names": ["000002_0.jpg"]})[1] == {"moved": 1}
    assert (ws.aligned("dst") / "000002_0.jpg").is_file()
    assert [f["faces"] for f in client.json("GET", "/api/state")[1]["frames"]] == [1, 1, 1, 1, 0]


# -- training monitor and overview --------------------------------------------------------------------------------


def test_training_monitor_reads_status_and_posts_requests(studio, client):
    ws, _ = studio
    model_dir = ws.model(MODEL)
    control = TrainControl(model_dir)
    assert client.json("GET", "/api/train")[1]["models"][0]["state"] == "idle"
    assert control_dir(model_dir).is_dir()  # looking at the model asks its trainer for a status from now on
    control.write_status("running", 120, {"iteration": [1.0, 2.0], "src_loss": [0.5, 0.4], "dst_loss": [0.6, 0.5]},
                         1000, 100)
    status, doc = client.json("GET", "/api/train")
    (model,) = doc["models"]
    assert model["name"] == MODEL and model["state"] == "running" and model["status"]["iteration"] == 120
    assert model["status"]["history"]["src_loss"] == [0.5, 0.4]
    status, doc = client.json("POST", "/api/train/request", {"model": MODEL, "what": "save"})
    assert status == 200 and doc["pending"] == ["save"]
    assert request_path(model_dir, "save").is_file()
    assert control.poll(130, {}, 1000, 100) == {"save"}  # the trainer's side takes it
    assert client.json("POST", "/api/train/request", {"model": MODEL, "what": "explode"})[0] == 400
    assert client.get(f"/api/train/image?model={MODEL}&name=preview.png")[0] == 404  # none written yet


def test_overview_is_workspace_info_with_the_next_command(client):
    status, doc = client.json("GET", "/api/overview")
    assert status == 200
    assert doc["info"]["data_dst aligned faces"] in (4, 3)
    assert doc["info"]["models"] == [MODEL]
    assert doc["next"]["command"].startswith("python main.py ")


# -- command --------------------------------------------------------------------------------------------------------


def test_studio_command_prints_one_url_and_warns_off_loopback(studio, monkeypatch):
    from facelab.studio import server as server_mod

    ws, _ = studio

    def stop(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(server_mod.StudioServer, "serve_forever", stop)
    res = CliRunner().invoke(cli, ["studio", "-w", str(ws.root), "--port", "0", "--device", "cpu"], obj={})
    assert res.exit_code == 0, res.output
    urls = [line for line in res.output.splitlines() if "http://" in line]
    assert len(urls) == 1 and "http://127.0.0.1:" in urls[0] and "token=" in urls[0]
    assert "WARNING" not in res.output
    res = CliRunner().invoke(cli, ["studio", "-w", str(ws.root), "--host", "0.0.0.0", "--port", "0",
                                   "--device", "cpu"], obj={})
    assert res.exit_code == 0 and "WARNING: binding to 0.0.0.0" in res.output


def test_studio_command_on_a_port_in_use_is_one_line(studio):
    import socket

    ws, _ = studio
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = CliRunner().invoke(cli, ["studio", "-w", str(ws.root), "--port", str(port), "--device", "cpu"],
                                 obj={})
    assert res.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.output and "choose another --port" in res.output
