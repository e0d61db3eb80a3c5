"""The trainer's step with the generator and each critic wrapped in DistributedDataParallel (two CPU processes,
gloo): the ranks stay identical."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from facelab.models import create_model
from facelab.models.batch import Batch
from facelab.train.options import TrainOptions
from facelab.train.step import new_trainee, train_step

TINY = {"resolution": 32, "archi": "df-ud", "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # same initial weights on both ranks
        model = create_model("saehd", TINY)
        opts = TrainOptions(gan_power=0.1, gan_dims=4, true_face_power=0.1, lr=1e-3)
        trainee = new_trainee(model, opts, wrap=DistributedDataParallel)
        g = torch.Generator().manual_seed(100 + rank)  # different data per rank
        mask = torch.zeros(2, 1, 32, 32)
        mask[..., 8:24, 8:24] = 1
        for _ in range(3):
            img = lambda: torch.rand(2, 3, 32, 32, generator=g)  # noqa: E731
            batch = Batch(img(), img(), mask, mask, img(), img(), mask, mask)
            assert train_step(trainee, batch, opts.knobs(), opts.clipgrad, opts.mixed_precision).finite
        state = {k: v.detach() for k, v in model.state_dict().items()}
        for name, critic in trainee.critics.items():
            state |= {f"{name}.{k}": v.detach() for k, v in critic.state_dict().items()}
        torch.save(state, os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_ranks_agree(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "r0.pt", weights_only=True)
    b = torch.load(tmp_path / "r1.pt", weights_only=True)
    assert set(a) == set(b) and any(k.startswith("D_gan.") for k in a) and any(k.startswith("D_code.") for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
