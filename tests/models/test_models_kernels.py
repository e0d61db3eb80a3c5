"""Convolution kernels chosen by measurement: every path computes nn.Conv2d's function and gradients, modules
dispatch on their own choices, plans are timed, applied and cached as JSON (never in the real user cache)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from facelab.models import conv_paths as P
from facelab.models import create_model
from facelab.models import kernels as K
from facelab.models.saehd.archi import Conv2d
from facelab.train.options import TrainOptions

TINY = {"ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}
FAST = K.KernelSearch(reps=1)

# (input, weight, stride, padding): 3x3 and 5x5, stride 1 and 2, padding 0-2, tiny and odd maps, 1x1
SHAPES = [((2, 6, 8, 8), (10, 6, 3, 3), 1, 1), ((2, 6, 9, 7), (10, 6, 5, 5), 2, 2), ((3, 4, 7, 7), (5, 4, 3, 3), 2, 0),
          ((2, 8, 2, 2), (16, 8, 3, 3), 1, 1), ((2, 5, 6, 6), (3, 5, 1, 1), 1, 0), ((1, 3, 5, 5), (4, 3, 3, 3), 1, 2)]


def _case(shape, bias: bool, layout: str, seed: int = 0):
    xs, ws, _, _ = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(xs, generator=g, dtype=torch.float64)
    w = torch.randn(ws, generator=g, dtype=torch.float64)
    if layout != "contiguous":
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "all-channels-last":
        w = w.contiguous(memory_format=torch.channels_last)
    b = torch.randn(ws[0], generator=g, dtype=torch.float64) if bias else None
    return x.requires_grad_(), w.requires_grad_(), None if b is None else b.requires_grad_()


def _grads(y, inputs, seed: int = 1):
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    return torch.autograd.grad(y, inputs, gy)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "input-channels-last", "all-channels-last"])
def test_every_path_matches_conv2d_outputs_and_gradients(shape, bias, layout):
    _, ws, stride, padding = shape
    x, w, b = _case(shape, bias, layout)
    inputs = [t for t in (x, w, b) if t is not None]
    ref = F.conv2d(x, w, b, stride, padding)
    ref_grads = _grads(ref, inputs)
    call = K.ConvCall(tuple(x.shape), ws, (stride, stride), (padding, padding), bias)
    assert call.output_hw == tuple(ref.shape[2:])
    for path in call.candidates():
        y = P.conv2d(path, x, w, b, (stride, stride), (padding, padding))
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10, msg=path)
        for got, want in zip(_grads(y, inputs), ref_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=path)
    x.requires_grad_(False)  # the first layer: no input gradient
    for path in (P.IM2COL, P.IM2COL_CL, P.SPLIT_WCONV, P.SPLIT_WGEMM):
        y = P.conv2d(path, x, w, b, (stride, stride), (padding, padding))
        for got, want in zip(_grads(y, inputs[1:]), ref_grads[1:], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=path)


@pytest.mark.parametrize("layout", ["contiguous", "all-channels-last"])
def test_every_path_runs_under_cpu_bf16_autocast_like_conv2d(layout):
    """``train --mixed-precision`` on CPU: each path computes in bf16 as autocast's own convolution does, and the
    float32 weights get float32 gradients."""
    x, w, b = (t.detach().float().requires_grad_() for t in _case(SHAPES[0], True, layout))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.conv2d(x, w, b, 1, 1)
    ref_grads = _grads(ref.float(), [x, w, b])
    for path in K.ConvCall(tuple(x.shape), tuple(w.shape), padding=(1, 1)).candidates():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = P.conv2d(path, x, w, b, (1, 1), (1, 1))
        assert y.dtype == ref.dtype == torch.bfloat16, path
        torch.testing.assert_close(y.float(), ref.float(), rtol=0.02, atol=0.05, msg=path)
        grads = _grads(y.float(), [x, w, b])
        for got, want in zip(grads, ref_grads, strict=True):
            assert got.dtype == torch.float32, path
            torch.testing.assert_close(got, want, rtol=0.02, atol=0.1, msg=path)


def test_im2col_gradients_pass_gradcheck():
    x, w, b = _case(SHAPES[1], True, "contiguous")
    x, w, b = x[:1, :3, :6, :5].detach().requires_grad_(), w[:2, :3].detach().requires_grad_(), b[:2].detach()
    assert torch.autograd.gradcheck(lambda *t: P.im2col_cl_conv2d(*t, (2, 2), (2, 1)), (x, w, b.requires_grad_()))


def test_candidates_and_the_fixed_rule():
    one = K.ConvCall((2, 5, 6, 6), (3, 5, 1, 1))
    assert one.candidates() == P.PATHS
    assert P.GEMM_1X1 not in K.ConvCall((2, 5, 6, 6), (3, 5, 1, 1), padding=(1, 1)).candidates()
    assert P.GEMM_1X1 not in K.ConvCall((2, 5, 6, 6), (3, 5, 3, 3)).candidates()
    assert K.rule_path(K.ConvCall((2, 5, 4, 4), (3, 5, 3, 3), padding=(1, 1))) == P.IM2COL  # 4x4 out
    assert K.rule_path(K.ConvCall((2, 5, 8, 8), (3, 5, 3, 3), padding=(1, 1))) == P.DIRECT  # 8x8 out
    with pytest.raises(ValueError, match="unknown convolution path"):
        P.conv2d("winograd", torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1), None, (1, 1), (0, 0))


def test_conv2d_module_runs_its_own_choice_per_input():
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, padding=1)
    x, small = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 2, 2)
    assert conv(x).is_contiguous() and not conv(small).is_contiguous()  # rule: direct; im2col (channels-last out)
    K.set_kernel_paths(conv, {K.dispatch_key(x): P.IM2COL, K.dispatch_key(small): P.DIRECT})
    assert P.is_channels_last(conv(x)) and conv(small).is_contiguous()
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1), rtol=1e-5, atol=1e-5)
    assert conv(x[:1]).is_contiguous()  # another batch size: no choice, the rule
    with pytest.raises(ValueError, match="unknown convolution paths"):
        K.set_kernel_paths(conv, {K.dispatch_key(x): "fft"})
    K.set_kernel_paths(conv, {})
    assert conv(x).is_contiguous()


def _tiny_model():
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": 32, "archi": "liae-ud", **TINY})
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    knobs = TrainOptions().knobs()
    return model, lambda: model(x, x, knobs)


def test_plan_sets_a_timed_path_on_every_call_and_keeps_results(tmp_path):
    model, forward = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        want = forward()
    plan = K.plan_kernels(model, forward, K.cache_file(tmp_path), FAST)
    calls = K.conv_calls(model, forward)
    assert {c.call for c in plan.choices} >= set(calls)
    for call, modules in calls.items():
        choice = next(c for c in plan.choices if c.call == call)
        assert choice.path == min(choice.seconds, key=choice.seconds.get) and set(choice.seconds) <= set(
            call.candidates())
        assert all(K.call_path(m, call) == choice.path for m in modules)
    assert any(c.call.weight[2:] == (1, 1) and P.GEMM_1X1 in c.seconds for c in plan.choices)
    with torch.no_grad():
        got = forward()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert "timed" in plan.describe()


def test_plan_is_cached_per_machine_as_json(tmp_path, monkeypatch):
    model, forward = _tiny_model()
    path = K.cache_file(tmp_path)
    first = K.plan_kernels(model, forward, path, FAST)
    data = json.loads(path.read_text())
    assert data["version"] == K.CACHE_VERSION and list(data["machines"]) == [K.machine_key()]
    assert len(data["machines"][K.machine_key()]) == len(first.choices)

    def no_timing(*args, **kwargs):
        raise AssertionError("timed although cached")

    monkeypatch.setattr(K, "time_call", no_timing)
    again = K.plan_kernels(model, forward, path, FAST)
    assert {c.call: c.path for c in again.choices} == {c.call: c.path for c in first.choices}
    assert not any(c.seconds for c in again.choices)
    monkeypatch.undo()
    monkeypatch.setattr(K, "machine_key", lambda threads=None: "another cpu | torch 0 | 3 threads")
    K.plan_kernels(model, forward, path, FAST)
    assert len(json.loads(path.read_text())["machines"]) == 2  # both kept
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]  # no temporary left


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"version": 99, "machines": {}}', "\xff\xfe"])
def test_a_broken_cache_is_ignored_with_a_warning_and_replaced(tmp_path, caplog, text):
    model, forward = _tiny_model()
    path = K.cache_file(tmp_path)
    path.write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger=K.__name__):
        plan = K.plan_kernels(model, forward, path, FAST)
    assert "ignoring the kernel cache" in caplog.text and plan.choices
    assert json.loads(path.read_text())["version"] == K.CACHE_VERSION


def test_an_earlier_versions_cache_is_timed_again_quietly_and_replaced(tmp_path, caplog):
    model, forward = _tiny_model()
    path = K.cache_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": K.CACHE_VERSION - 1, "machines": {K.machine_key(): {"x": P.DIRECT}}}))
    with caplog.at_level(logging.WARNING):
        plan = K.plan_kernels(model, forward, path, FAST)
    assert "ignoring" not in caplog.text and all(c.seconds for c in plan.choices)
    data = json.loads(path.read_text())
    assert data["version"] == K.CACHE_VERSION and "x" not in data["machines"][K.machine_key()]


def test_cache_entries_with_unknown_or_unfit_paths_are_retimed(tmp_path):
    model, forward = _tiny_model()
    path = K.cache_file(tmp_path)
    calls = K.conv_calls(model, forward)
    bad = {c.key(): ("gemm-1x1" if c.weight[2:] != (1, 1) else "nonsense") for c in calls}
    path.write_text(json.dumps({"version": K.CACHE_VERSION, "machines": {K.machine_key(): bad}}))
    plan = K.plan_kernels(model, forward, path, FAST)
    assert all(c.seconds and c.path in c.call.candidates() for c in plan.choices)


def test_no_cache_writes_nothing_and_cache_file_follows_the_environment(tmp_path, monkeypatch):
    model, forward = _tiny_model()
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "fc"))
    K.plan_kernels(model, forward, None, FAST)
    assert not (tmp_path / "fc").exists()
    assert K.cache_file() == tmp_path / "fc" / "kernels.json"
    monkeypatch.delenv("FACELAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert K.cache_file() == tmp_path / "xdg" / "facelab" / "kernels.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert K.cache_file() == tmp_path / "home" / ".cache" / "facelab" / "kernels.json"


def test_timing_takes_turns_and_gives_up_on_clearly_slower_paths(monkeypatch):
    call = K.ConvCall((2, 4, 8, 8), (4, 4, 3, 3), padding=(1, 1))
    assert K.time_path(call, P.DIRECT, K.KernelSearch(reps=2)) > 0
    cost = {P.DIRECT: 1.0, P.CHANNELS_LAST: 1.5, P.IM2COL: 5.0, P.IM2COL_CL: 0.9, P.SPLIT_WCONV: 1.2,
            P.SPLIT_WGEMM: 2.5}
    runs: list[str] = []
    monkeypatch.setattr(K, "_run_once", lambda c, path, t: runs.append(path) or cost[path])
    seconds = K.time_call(call, K.KernelSearch(reps=2, give_up=2.0))
    assert seconds == cost and K.fastest(seconds) == P.IM2COL_CL
    assert runs == list(cost) + [P.DIRECT, P.CHANNELS_LAST, P.IM2COL_CL, P.SPLIT_WCONV] * 2
    monkeypatch.undo()
    assert K.fastest({P.IM2COL: 1.0, P.DIRECT: 1.0, P.CHANNELS_LAST: 2.0}) == P.DIRECT
    assert set(K.time_call(call, K.KernelSearch(reps=1, max_im2col_bytes=16))) == {P.DIRECT, P.CHANNELS_LAST,
                                                                                     P.SPLIT_WCONV}
    assert set(K.time_call(call, K.KernelSearch(reps=1, exclude=(P.SPLIT_WCONV, P.SPLIT_WGEMM)))) == {
        P.DIRECT, P.CHANNELS_LAST, P.IM2COL, P.IM2COL_CL}
