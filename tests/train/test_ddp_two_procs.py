"""DistributedDataParallel on two CPU processes (gloo): the ranks' weights agree after training steps."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from facelab.train import checkpoint as ck

TINY = {"resolution": 32, "archi": "liae-ud", "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, port: int, ws_root: str, src: str, dst: str, out: str, stop_rank1_after: int) -> None:
    """One rank: the environment ``torchrun`` sets, then train() as the CLI calls it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from facelab.train import distributed as dd
    from facelab.train.loop import train
    from facelab.train.options import TrainOptions

    ctx, device = dd.init_distributed(torch.device("cpu"))
    polls, seen = {"n": 0}, {}

    def should_stop() -> bool:  # only rank 1 asks to stop; every rank must stop with it
        polls["n"] += 1
        return rank == 1 and polls["n"] > stop_rank1_after

    def on_ready(model, run) -> None:
        seen["model"] = model
        seen["init"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    opts = TrainOptions(batch_size=2, workers=0, autosave_minutes=0.0, seed=5, target_iter=50, lr=1e-4)
    result = train(Path(ws_root), "m", "saehd", TINY, opts, device, None, should_stop, src_dir=Path(src),
                   dst_dir=Path(dst), preview=True, ctx=ctx, on_ready=on_ready)
    torch.save({"iteration": result.iteration, "stopped_by": result.stopped_by, "init": seen["init"],
                "weights": {k: v.detach().clone() for k, v in seen["model"].state_dict().items()}},
               os.path.join(out, f"rank{rank}.pt"))
    dd.shutdown(ctx)


def test_two_cpu_processes_agree(tmp_path, aligned_faceset):
    src, dst = aligned_faceset
    ws = tmp_path / "ws"
    mp.spawn(_rank_main, args=(_free_port(), str(ws), str(src), str(dst), str(tmp_path), 3), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["iteration"] == r1["iteration"] == 3  # rank 1 asked to stop; rank 0 stopped with it
    assert r0["stopped_by"] == "stopped_by_other_rank" and r1["stopped_by"] == "should_stop"
    for k in r0["weights"]:
        assert torch.equal(r0["init"][k], r1["init"][k]), k  # same start (seeded; DDP broadcasts rank 0's)
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    assert any(not torch.equal(r0["init"][k], r0["weights"][k]) for k in r0["weights"])  # they did train
    # only rank 0 wrote: the checkpoint holds its weights, once
    saved = ck.read_checkpoint(ws / "model/m/ckpt_last.pt")
    assert saved["iteration"] == 3 and "loader" not in saved
    for k, v in r0["weights"].items():
        assert torch.equal(saved["model"][k], v)
    assert (ws / "model/m/preview.png").is_file()


@pytest.mark.slow
def test_torchrun_cli(tmp_path, aligned_faceset):
    """The same ``main.py train`` under ``torchrun --nproc_per_node 2``: trains, only rank 0 writes."""
    src, dst = aligned_faceset
    repo = Path(__file__).resolve().parents[2]
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(repo / "main.py"), "train", "--workspace", str(ws), "--device", "cpu",
           "--resolution", "32", "--archi", "liae-ud", "--e-dims", "8", "--ae-dims", "16", "--d-dims", "8",
           "--d-mask-dims", "4", "--target-iter", "3", "--workers", "0", "--batch-size", "2",
           "--src-dir", str(src), "--dst-dir", str(dst)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("stopped by") == 1  # one summary: rank 0's
    saved = ck.read_checkpoint(ws / "model/saehd/ckpt_last.pt")
    assert saved["iteration"] == 3
