"""Kill a facelab run with SIGKILL at a chosen point and read what it left: the helpers of the kill-and-resume
tests (``tests/*/test_*_kill_resume.py``).

A run is either ``python main.py ...`` in its own process (:func:`start_main`) or the CLI in a forked copy of the
test process (:func:`start_forked`), which shares the modules already loaded and so starts in milliseconds.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Callable

from facelab.utils.atomic import TMP_PREFIX
from facelab.utils.lock import LOCK_NAME

ROOT = Path(__file__).resolve().parents[1]
Run = subprocess.Popen | BaseProcess


def start_main(args: list[str], log: Path) -> subprocess.Popen:
    """``python main.py *args`` from the repository root with one torch thread; stderr goes to the file ``log``
    (a pipe nobody reads would fill up with progress bars and stall the run)."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _forked_cli(args: list[str], setup: Callable[[], None] | None, log: Path | None) -> None:
    from tqdm import tqdm

    from facelab.cli.root import cli

    out = open(os.devnull, "w")
    err = open(log, "w", buffering=1) if log is not None else out
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.stdout, sys.stderr = out, err  # not the test's captured streams, which the fork shares
    # tqdm's lock is a semaphore the fork shares with this test process: a child killed while holding it would
    # stall the test's own next progress bar for ever, so the child takes a lock of its own
    tqdm.set_lock(threading.RLock())
    code = 1
    try:
        if setup is not None:
            setup()
        cli.main(args, prog_name="facelab", obj={})
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def start_forked(args: list[str], setup: Callable[[], None] | None = None,
                 log: Path | None = None) -> BaseProcess:
    """The CLI with ``args`` as ``python main.py`` would run it, in a forked child: its exit code is the run's,
    stdout is dropped and stderr goes to the file ``log`` (or is dropped). ``setup`` runs in the child first
    (e.g. to patch a function so the child kills itself at an exact point)."""
    proc = multiprocessing.get_context("fork").Process(target=_forked_cli, args=(args, setup, log))
    proc.start()
    return proc


def _alive(proc: Run) -> bool:
    return proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()


def _wait(proc: Run, timeout: float) -> int | None:
    """The exit code of ``proc`` (negative: killed by that signal), None when it is still running."""
    if isinstance(proc, subprocess.Popen):
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
    proc.join(timeout)
    return proc.exitcode


def kill_when(proc: Run, ready: Callable[[], bool], delay: float = 0.0, timeout: float = 90.0) -> int | None:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` first holds (polled every 2 ms); returns its exit code,
    ``-signal.SIGKILL`` when it was killed. A run still going at ``timeout`` is killed too."""
    deadline = time.monotonic() + timeout
    fire: float | None = None
    while time.monotonic() < deadline and _alive(proc):
        now = time.monotonic()
        if fire is None and ready():
            fire = now + delay
        if fire is not None and now >= fire:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    else:
        if _alive(proc):
            os.kill(proc.pid, signal.SIGKILL)
    return _wait(proc, 30.0)


def files_at_least(folder: Path, pattern: str, count: int) -> Callable[[], bool]:
    """A ``ready`` test: ``folder`` holds ``count`` files matching ``pattern``."""
    return lambda: folder.is_dir() and len(list(folder.glob(pattern))) >= count


def replaced_at_least(paths: list[Path], count: int) -> Callable[[], bool]:
    """A ``ready`` test: ``count`` of ``paths`` were replaced (an atomic rewrite gives the name a new inode)."""
    before = {p: p.stat().st_ino for p in paths}

    def ready() -> bool:
        changed = 0
        for p, ino in before.items():
            try:
                changed += p.stat().st_ino != ino
            except FileNotFoundError:
                changed += 1
        return changed >= count

    return ready


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (its path relative to ``root``) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary files and lock files anywhere under ``root``: what a finished run must not leave."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.startswith(TMP_PREFIX) or p.name == LOCK_NAME)
