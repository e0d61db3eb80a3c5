"""The training benchmark's ceiling: every kernel the model could use is a candidate, each pass of a direct
convolution alone too (a forward + backward rate understates a machine whose forward kernel is its fastest), with
the FLOPs torch counts for exactly what runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import ceiling  # noqa: E402

SHAPE = ceiling.LayerShape("conv", (2, 8, 8, 8), 16, kernel=3, stride=1, padding=1)


@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
@pytest.mark.parametrize(("passes", "times"), [("forward + backward", 3), ("forward", 1), ("input gradient", 1)])
def test_each_pass_counts_the_flops_it_runs(layout, passes, times):
    fn = ceiling._conv_fn(SHAPE, torch.device("cpu"), torch.float32, layout, passes)
    with FlopCounterMode(display=False) as counter:
        fn()
    assert counter.get_total_flops() == times * SHAPE.flops()


def test_candidates_name_every_pass_and_the_best_is_their_maximum():
    rates = ceiling.candidate_rates([SHAPE], torch.device("cpu"), torch.float32, seconds=0.0)
    names = {r.kernel for r in rates}
    for layout in ("contiguous", "channels-last"):
        assert {f"oneDNN conv {layout}", f"oneDNN conv {layout} (forward alone)",
                f"oneDNN conv {layout} (input gradient alone)"} <= names
    assert {"im2col + fp32 GEMM (torch.mm)", "im2col-cl + fp32 GEMM (torch.mm)"} <= names
    assert all(r.flops_per_s > 0 for r in rates)
    top = ceiling.best(rates)
    assert top.flops_per_s == max(r.flops_per_s for r in rates) and top.describe().startswith(top.kernel)
