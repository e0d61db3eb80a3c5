"""The studio's HTTP server: the standard library's ``ThreadingHTTPServer`` (no dependency, one thread per request,
and the handlers are blocking CPU work that an event loop would only have to hand to threads anyway).

Every request must carry the token (``?token=``, the ``X-Studio-Token`` header, or the cookie the page gets on its
first load); every file served or written goes through :mod:`facelab.studio.security`.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.studio import monitor
from facelab.studio.facesets import FaceSets, check_names, face_path
from facelab.studio.jobs import MergeRunner
from facelab.studio.overview import overview
from facelab.studio.security import Refused, new_token, token_ok, workspace_file
from facelab.studio.settings import Conflict, SettingsStore, field_schema, parse_doc, settings_doc
from facelab.studio.tuning import Rendered, Tuner
from facelab.workspace.layout import Workspace

log = logging.getLogger(__name__)

COOKIE = "facelab_studio"
MAX_BODY = 4 * 1024 * 1024
STATIC = ("index.html", "app.js", "style.css")
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self' blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Reply:
    body: bytes
    ctype: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(json.dumps(doc, allow_nan=False, default=str).encode("utf-8"), "application/json", status)


def png_reply(image: np.ndarray, **headers: str) -> Reply:
    """Lossless, so the page shows exactly the merged pixels; zlib level 1, as the page waits on every encode."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise FacelabError("cannot encode the frame as PNG")
    return Reply(buf.tobytes(), "image/png", headers=headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str:
        if name in self.query:
            return self.query[name]
        if default is None:
            raise FacelabError(f"missing query parameter {name!r}")
        return default

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise FacelabError(f"request body is not JSON: {exc}") from exc


class Studio:
    """The application: the workspace's tuner, settings file, face sets, merge runner, and the routes."""

    def __init__(self, ws: Workspace, model_dir: Path | None, device: torch.device | str = "cpu",
                 token: str | None = None) -> None:
        self.ws = ws
        self.model_dir = model_dir
        self.token = token or new_token()
        self.tuner = Tuner(ws, model_dir, device)
        self.store = SettingsStore(ws.root)
        self.faces = FaceSets(ws)
        self.runner = MergeRunner(ws, model_dir, device)
        self._renders: OrderedDict[str, Rendered] = OrderedDict()
        self._render_lock = threading.Lock()
        self.routes: dict[tuple[str, str], Callable[[Request], Reply]] = {
            ("GET", "/api/state"): self.state,
            ("GET", "/api/frame"): self.frame,
            ("POST", "/api/render"): self.render,
            ("GET", "/api/settings"): self.get_settings,
            ("POST", "/api/settings"): self.save_settings,
            ("GET", "/api/merge"): lambda r: json_reply(self.runner.status()),
            ("POST", "/api/merge"): self.start_merge,
            ("GET", "/api/train"): self.train_list,
            ("GET", "/api/train/image"): self.train_image,
            ("POST", "/api/train/request"): self.train_request,
            ("GET", "/api/faces"): self.faces_page,
            ("GET", "/api/faces/thumb"): self.face_thumb,
            ("GET", "/api/faces/image"): self.face_image,
            ("GET", "/api/faces/meta"): self.face_meta,
            ("GET", "/api/faces/mask"): self.face_mask,
            ("POST", "/api/faces/trash"): self.face_trash,
            ("POST", "/api/faces/restore"): self.face_restore,
            ("GET", "/api/overview"): lambda r: json_reply(overview(self.ws)),
            ("GET", "/api/file"): self.file,
        }

    # -- merge tuning ----------------------------------------------------------------------------------------------
    def state(self, req: Request) -> Reply:
        settings, revision = self.store.load()
        try:
            frames, modes, problem = self.tuner.frames(), self.tuner.mask_modes(), ""
        except FacelabError as exc:  # no frames yet: the other tabs still work, the merge tab says why
            frames, modes, problem = [], [], str(exc)
        return json_reply({"workspace": str(self.ws.root), "model": self.model_dir.name if self.model_dir else None,
                           "frames": frames, "frames_problem": problem, "schema": field_schema(),
                           "suggestions": {"mask_mode": modes}, "settings": settings_doc(settings),
                           "revision": revision, "config_file": self.store.path.name,
                           "sort_methods": self.faces.methods()})

    def frame(self, req: Request) -> Reply:
        return png_reply(self.tuner.original(int(req.arg("pos"))))

    def rendered(self, pos: int, doc: Any) -> Rendered:
        """The render of frame ``pos`` under the settings document ``doc`` (the last few are kept, so switching
        between the swapped and mask views does not render twice)."""
        key = json.dumps([pos, doc], sort_keys=True)
        with self._render_lock:
            hit = self._renders.get(key)
        if hit is not None:
            return hit
        out = self.tuner.render(pos, parse_doc(doc))
        with self._render_lock:
            self._renders[key] = out
            while len(self._renders) > 4:
                self._renders.popitem(last=False)
        return out

    def render(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise FacelabError("render needs {pos, settings, view}")
        view = body.get("view", "swapped")
        if view not in ("swapped", "mask"):
            raise FacelabError(f"view must be swapped or mask, got {view!r}")
        t0 = time.perf_counter()
        out = self.rendered(int(body.get("pos", 0)), body.get("settings") or {})
        reply = png_reply(out.image if view == "swapped" else out.mask)
        reply.headers.update({"X-Render-Ms": f"{out.seconds * 1000:.0f}",
                              "X-Total-Ms": f"{(time.perf_counter() - t0) * 1000:.0f}",
                              "X-Frame-Number": str(out.number)})
        return reply

    def get_settings(self, req: Request) -> Reply:
        settings, revision = self.store.load()
        return json_reply({"settings": settings_doc(settings), "revision": revision})

    def save_settings(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict) or "settings" not in body:
            raise FacelabError("save needs {settings, revision}")
        settings, revision = self.store.save(body["settings"], body.get("revision"))
        return json_reply({"settings": settings_doc(settings), "revision": revision, "path": str(self.store.path)})

    def start_merge(self, req: Request) -> Reply:
        if not self.store.path.exists():
            raise FacelabError(f"save the settings first: {self.store.path} does not exist yet")
        return json_reply(self.runner.start(self.store.path))

    # -- training monitor --------------------------------------------------------------------------------------------
    def train_list(self, req: Request) -> Reply:
        return json_reply({"models": [monitor.model_summary(p) for p in monitor.model_dirs(self.ws)]})

    def train_image(self, req: Request) -> Reply:
        name = req.arg("name")
        if name not in ("preview.png", "loss.png"):
            raise Refused(f"{name!r} is not a training image")
        path = workspace_file(self.ws, f"{self.ws.models.name}/{req.arg('model')}/{name}")
        return Reply(path.read_bytes(), "image/png")

    def train_request(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise FacelabError("request needs {model, what}")
        return json_reply(monitor.request(self.ws, str(body.get("model")), str(body.get("what"))))

    # -- face sets ---------------------------------------------------------------------------------------------------
    def faces_page(self, req: Request) -> Reply:
        return json_reply(self.faces.page(req.arg("side", "dst"), req.arg("place", "aligned"), req.arg("sort", ""),
                                          int(req.arg("page", "0")), int(req.arg("per", "48"))))

    def _face_args(self, req: Request) -> tuple[str, str, str]:
        return req.arg("side", "dst"), req.arg("place", "aligned"), req.arg("name")

    def face_thumb(self, req: Request) -> Reply:
        return Reply(self.faces.thumbnail(*self._face_args(req)), "image/jpeg")

    def face_image(self, req: Request) -> Reply:
        path = face_path(self.ws, *self._face_args(req))
        return Reply(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    def face_meta(self, req: Request) -> Reply:
        return json_reply(self.faces.meta(*self._face_args(req)))

    def face_mask(self, req: Request) -> Reply:
        return Reply(self.faces.mask_png(*self._face_args(req), req.arg("mask")), "image/png")

    def _moves(self, req: Request, move: Callable[[str, list[str]], int]) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise FacelabError("needs {side, names}")
        moved = move(str(body.get("side", "dst")), check_names(body.get("names")))
        self.tuner.invalidate()  # the destination faces may have changed
        return json_reply({"moved": moved})

    def face_trash(self, req: Request) -> Reply:
        return self._moves(req, self.faces.trash)

    def face_restore(self, req: Request) -> Reply:
        return self._moves(req, self.faces.restore)

    # -- files -------------------------------------------------------------------------------------------------------
    def file(self, req: Request) -> Reply:
        path = workspace_file(self.ws, req.arg("path"))
        return Reply(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                     headers={"Content-Disposition": "inline"})

    def static(self, name: str) -> Reply:
        if name not in STATIC:
            raise FileNotFoundError(2, "no such page", name)
        data = (resources.files("facelab.studio") / "static" / name).read_bytes()
        return Reply(data, mimetypes.guess_type(name)[0] or "application/octet-stream")

    # -- dispatch ----------------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Reply:
        try:
            if req.method == "GET" and req.path in ("/", "/index.html"):
                return self.static("index.html")
            if req.method == "GET" and req.path.startswith("/static/"):
                return self.static(req.path[len("/static/"):])
            route = self.routes.get((req.method, req.path))
            if route is None:
                return json_reply({"error": f"no route {req.method} {req.path}"}, 404)
            return route(req)
        except Refused as exc:
            return json_reply({"error": str(exc)}, 403)
        except Conflict as exc:
            settings, revision = self.store.load()
            return json_reply({"error": str(exc), "settings": settings_doc(settings), "revision": revision}, 409)
        except FileNotFoundError as exc:
            return json_reply({"error": f"not found: {exc.filename or exc}"}, 404)
        except (FacelabError, ValueError, KeyError) as exc:
            return json_reply({"error": str(exc)}, 400)
        except OSError as exc:
            return json_reply({"error": f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}"}, 500)
        except Exception as exc:  # answer the page (it shows the error) instead of dropping the connection
            log.exception("studio: %s %s failed", req.method, req.path)
            return json_reply({"error": f"{type(exc).__name__}: {exc}"}, 500)


class Handler(BaseHTTPRequestHandler):
    server: "StudioServer"
    protocol_version = "HTTP/1.1"
    server_version = "facelab-studio"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("studio: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _token(self, query: dict[str, str]) -> tuple[str | None, bool]:
        """(token given, whether it came in the query: then the page gets the cookie)."""
        if "token" in query:
            return query["token"], True
        if self.headers.get("X-Studio-Token"):
            return self.headers["X-Studio-Token"], False
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return (cookie[COOKIE].value if COOKIE in cookie else None), False

    def _serve(self, method: str) -> None:
        studio = self.server.studio
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        token, from_query = self._token(query)
        if not token_ok(studio.token, token):
            self._send(json_reply({"error": "missing or wrong token: open the URL that `studio` printed"}, 403))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(json_reply({"error": "request body too large"}, 413))
            return
        body = self.rfile.read(length) if length else b""
        reply = studio.handle(Request(method, parts.path, query, body))
        if from_query:
            reply.headers["Set-Cookie"] = f"{COOKIE}={studio.token}; Path=/; HttpOnly; SameSite=Strict"
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.ctype)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in {**SECURITY_HEADERS, **reply.headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except DISCONNECTS:  # the page moved on (a newer render, a closed tab): nothing to answer
            self.close_connection = True


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], studio: Studio) -> None:
        super().__init__(address, Handler)
        self.studio = studio

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 (socketserver's signature)
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            log.debug("studio: client %s went away: %s", client_address, exc)
            return
        log.exception("studio: request from %s failed", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{port}/?token={self.studio.token}"


def make_server(ws: Workspace, model_dir: Path | None, *, host: str = "127.0.0.1", port: int = 0,
                device: torch.device | str = "cpu", token: str | None = None) -> StudioServer:
    """A bound (not yet serving) studio server; ``port`` 0 picks a free one. Call ``serve_forever()``.

    An address that cannot be bound (a port in use, a host this machine does not have) is a one-line
    :class:`FacelabError` naming it and the fix."""
    studio = Studio(ws, model_dir, device, token)
    try:
        return StudioServer((host, port), studio)
    except OSError as exc:
        raise FacelabError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                           f"(0 picks a free one) or --host") from exc
