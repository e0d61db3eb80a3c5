"""``train`` locks its model folder: a second run refuses at once (on every rank under torchrun, none left
waiting), and a run cleans its own leftover temporaries from the model folder and its preview history."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from facelab.cli.root import cli

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\nfrom facelab.utils.lock import folder_lock\n"
        "with folder_lock(sys.argv[1], 'holder'):\n    print('held', flush=True)\n    time.sleep(60)\n")
RANK = """
import sys, torch
from pathlib import Path
from facelab.errors import FacelabError
from facelab.train import distributed as dd
ctx, dev = dd.init_distributed(torch.device("cpu"), timeout_minutes=1)
for attempt in (1, 2):
    if attempt == 2:
        sys.stdin.readline()  # the test has stopped the holder meanwhile
    try:
        with dd.main_rank_lock(Path(sys.argv[1]), ctx, dev):
            print("locked", flush=True)
    except FacelabError as exc:
        print("refused", exc, flush=True)
dd.shutdown(ctx)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=_env())
    assert proc.stdout.readline().strip() == "held"
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(folder: Path) -> list[subprocess.Popen]:
    """Two ranks of one gloo process group, each trying to lock ``folder`` twice (the second time when told to
    on stdin). Unbuffered pipes, so :func:`_answer` can wait on them with a timeout."""
    port = str(_free_port())
    return [subprocess.Popen([sys.executable, "-c", RANK, str(folder)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                             env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=port))
            for r in range(2)]


def _answer(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """The next ``locked`` / ``refused ...`` line of a rank (other output skipped); fails when none comes in
    ``timeout`` seconds, e.g. a rank left waiting."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0 and select.select([proc.stdout], [], [], left)[0]:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        seen.append(line)
        if line.startswith(("locked", "refused")):
            return line.strip()
    raise AssertionError(f"rank {proc.args} gave no answer: {''.join(seen)}")


def test_ddp_ranks_all_refuse_a_locked_folder_and_all_lock_a_free_one(tmp_path):
    folder = tmp_path / "model" / "tiny"
    holder = _hold(folder)
    ranks = _two_ranks(folder)
    try:
        held = [_answer(p) for p in ranks]
        holder.kill()  # the holder is gone: rank 0 takes over, every rank goes on
        holder.wait()
        for p in ranks:
            p.stdin.write(b"go\n")
        free = [_answer(p) for p in ranks]
    finally:
        for p in (holder, *ranks):
            p.kill()
            p.wait()
    assert all(a.startswith("refused") for a in held), held
    assert str(holder.pid) in held[0]
    assert free == ["locked", "locked"], free


def test_cli_train_into_a_locked_model_folder_exits_1(ws):
    holder = _hold(ws.model("tiny"))
    try:
        res = CliRunner().invoke(cli, ["train", "--name", "tiny", "-w", str(ws.root), "--device", "cpu",
                                       "--workers", "0"], obj={})
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(holder.pid) in lines[0] and "Traceback" not in res.output, res.output


def test_cli_train_cleans_its_own_leftovers(ws):
    model = ws.model("tiny")
    (model / "previews").mkdir(parents=True)
    stale = [model / ".tmp-k1ll3d00.pt", model / ".tmp-k1ll3d01.json", model / ".tmp-k1ll3d02.png",
             model / "previews" / ".tmp-k1ll3d03.png"]
    user = [model / "notes.txt", model / ".tmp-mine.pt", model / "previews" / ".tmp-mine.png"]
    for p in stale + user:
        p.write_bytes(b"half")
    # no faces: the run stops with an error after taking the lock, which is enough to see the cleaning
    CliRunner().invoke(cli, ["train", "--name", "tiny", "-w", str(ws.root), "--device", "cpu", "--workers", "0",
                             "--resolution", "32", "--archi", "df", "--ae-dims", "8", "--e-dims", "8", "--d-dims",
                             "8", "--d-mask-dims", "4", "--target-iter", "1"], obj={})
    assert not any(p.exists() for p in stale) and all(p.exists() for p in user)
