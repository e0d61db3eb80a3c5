"""The studio's guards: the request token and the one path check every served or written file goes through."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path, PurePosixPath, PureWindowsPath

from facelab.errors import FacelabError
from facelab.workspace.layout import SIDES, Workspace


class Refused(FacelabError):
    """A request for something outside what the studio may touch (answered 403)."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison (a wrong token of the right length takes as long as any other)."""
    return bool(given) and hmac.compare_digest(expected.encode("utf-8"), str(given).encode("utf-8"))


def allowed_roots(ws: Workspace) -> list[Path]:
    """The real folders the studio may read and write in: the workspace and the real folders its data_src /
    data_dst lead to (a workspace may link its frames to another disk, as :meth:`Workspace.resolve` allows)."""
    return [ws.root.resolve(), *(ws.frames(s).resolve() for s in SIDES)]


def inside(ws: Workspace, path: Path) -> Path:
    """``path`` with symlinks resolved; :class:`Refused` unless it lies inside the workspace."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise Refused(f"cannot resolve {path}: {exc}") from exc
    if not any(real == root or real.is_relative_to(root) for root in allowed_roots(ws)):
        raise Refused(f"{path} leads outside the workspace {ws.root}; refused")
    return real


def workspace_file(ws: Workspace, rel: str) -> Path:
    """The existing file named by the workspace-relative POSIX path ``rel``. Absolute paths, ``..`` parts, NUL
    bytes and symlinks that lead out of the workspace raise :class:`Refused`."""
    text = str(rel)
    if not text or "\0" in text or "\\" in text or PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor:
        raise Refused(f"{text[:200]!r} is not a workspace-relative path; refused")
    if any(part in ("..", ".") for part in PurePosixPath(text).parts):
        raise Refused(f"{text[:200]!r} has '.' or '..' parts; refused")
    real = inside(ws, ws.root / text)
    if not real.is_file():
        raise FileNotFoundError(2, "no such file in the workspace", text)
    return real


def plain_name(name: str, what: str = "file name") -> str:
    """``name`` when it is a bare file name (no folder, not hidden, no NUL); :class:`Refused` otherwise."""
    text = str(name)
    if not text or text.startswith(".") or any(c in text for c in "/\\\0") or len(text) > 255:
        raise Refused(f"{what} {text[:200]!r} must be a plain name inside its folder; refused")
    return text
