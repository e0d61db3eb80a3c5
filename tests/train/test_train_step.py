"""The training step's gradient scale against a hand-computed DeepFaceLab update (batch-sum gradient, clip, eps)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facelab.models.base import Losses, TrainableModel
from facelab.models.batch import Batch
from facelab.train.optim import RMSprop
from facelab.train.options import TrainOptions
from facelab.train.step import Trainee, train_step


class Pull(TrainableModel):
    """One weight vector w (3,); sample i costs 0.5 ||w - x_i||^2 with x_i the mean colour of its src target."""

    name = "pull"
    arch = None

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, warped_src, warped_dst, knobs):
        return {"w": self.w}

    def losses(self, out, batch, knobs, critics):
        x = batch.target_src.double().mean(dim=(2, 3))
        per_sample = 0.5 * (out["w"] - x).square().sum(dim=1)
        return Losses({"src_loss": per_sample.mean(), "dst_loss": per_sample.mean() * 0, "G_loss": per_sample.mean()},
                      {})

    def swap_faces(self, dst):
        raise NotImplementedError

    def preview(self, src, dst):
        raise NotImplementedError


def constant_batch(colours: np.ndarray) -> Batch:
    img = torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, -1, 4, 4).contiguous()
    mask = torch.ones(len(colours), 1, 4, 4)
    return Batch(img, img, mask, mask, img, img, mask, mask)


def dfl_rmsprop_steps(w: np.ndarray, grads: list[np.ndarray], lr: float, clipnorm: float) -> np.ndarray:
    """DeepFaceLab's RMSprop (rho 0.9, eps = float32 resolution 1e-6) with its global-norm clip, step by step."""
    acc = np.zeros_like(w)
    for grad in grads:
        norm = np.sqrt((grad ** 2).sum())
        if clipnorm > 0 and norm >= clipnorm:
            grad = grad * clipnorm / norm
        acc = 0.9 * acc + 0.1 * grad ** 2
        w = w - lr * grad / (np.sqrt(acc) + 1e-6)
    return w


def test_step_differentiates_the_batch_sum_like_deepfacelab():
    """Two clipped RMSprop steps: the first batch's summed gradient is over the clip norm, the second's is not,
    so the update depends on the gradient's scale (a batch mean would be under the clip both times)."""
    batches = [np.array([[0.9, 0.8, 0.9], [0.8, 0.9, 0.7], [0.9, 0.9, 0.8], [0.7, 0.8, 0.9]]),
               np.array([[0.1, 0.2, 0.3], [0.2, 0.1, 0.5], [0.4, 0.4, 0.0], [0.2, 0.3, 0.2]])]
    w0 = np.array([0.35, 0.3, 0.25])
    model = Pull(w0.tolist())
    trainee = Trainee(model, model, {"G": RMSprop(model.parameters(), lr=0.01)})
    w, sums, means, reported = w0, [], [], []
    for colours in batches:
        result = train_step(trainee, constant_batch(colours), TrainOptions().knobs(), clipgrad=True,
                            mixed_precision=False)
        x = colours.astype(np.float32).astype(np.float64)
        per_sample_grads = w[None, :] - x  # d/dw of 0.5 ||w - x_i||^2 at this step's w
        sums.append(per_sample_grads.sum(axis=0))
        means.append(per_sample_grads.mean(axis=0))
        reported.append((result.losses["G_loss"], 0.5 * ((w - x) ** 2).sum(axis=1).mean()))
        w = model.w.detach().numpy().copy()
    assert np.sqrt((sums[0] ** 2).sum()) > 1.0 > np.sqrt((sums[1] ** 2).sum())
    np.testing.assert_allclose(w, dfl_rmsprop_steps(w0, sums, 0.01, 1.0), rtol=0, atol=1e-8)
    assert np.abs(dfl_rmsprop_steps(w0, means, 0.01, 1.0) - w).max() > 1e-3
    for got, want in reported:  # the reported loss stays the per-sample mean
        assert abs(got - want) < 1e-6
