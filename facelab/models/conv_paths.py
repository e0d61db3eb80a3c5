"""Convolution kernel paths: each computes ``F.conv2d`` (groups 1, dilation 1) and its gradients for the same
weights, by a different kernel (:data:`PATHS`; which is fastest is measured per machine in
:mod:`facelab.models.kernels`):

- ``direct``: oneDNN's direct convolution on the input as it comes (contiguous or channels-last);
- ``channels-last``: oneDNN's direct convolution after converting the input to channels-last;
- ``im2col``: unfold + one GEMM, (B*Ho*Wo, Cin*kh*kw) @ (Cin*kh*kw, Cout), the weight used as it is stored;
- ``im2col-cl``: the same GEMM over patches gathered channels-last, (B*Ho*Wo, kh*kw*Cin) @ (kh*kw*Cin, Cout):
  cheaper patches, but the weight is reordered unless it is stored channels-last;
- ``split-wconv``: oneDNN's direct convolution (channels-last) for the forward and for the input gradient, the
  weight gradient as one more forward convolution, over the batch: oneDNN's own weight-gradient kernel is the
  slowest of its three on some CPUs, while its forward kernel is its fastest;
- ``split-wgemm``: the same, the weight gradient as one GEMM over channels-last patches;
- ``gemm-1x1``: a 1x1 convolution (stride 1, no padding) as one GEMM over the channels.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

DIRECT = "direct"
CHANNELS_LAST = "channels-last"
IM2COL = "im2col"
IM2COL_CL = "im2col-cl"
SPLIT_WCONV = "split-wconv"
SPLIT_WGEMM = "split-wgemm"
GEMM_1X1 = "gemm-1x1"
PATHS = (DIRECT, CHANNELS_LAST, IM2COL, IM2COL_CL, SPLIT_WCONV, SPLIT_WGEMM, GEMM_1X1)
PATCH_PATHS = (IM2COL, IM2COL_CL, SPLIT_WGEMM)  # the paths that build an im2col matrix
OWN_BACKWARD = (IM2COL_CL, SPLIT_WCONV, SPLIT_WGEMM)  # the paths that are autograd Functions of their own


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def cl_patches(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
               ) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """The im2col matrix of ``x`` (B, Cin, H, W) gathered channels-last, (B*Ho*Wo, kh*kw*Cin) (one copy), with the
    output size (Ho, Wo) and the padded input size (Hp, Wp)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph)).contiguous()  # (B, Hp, Wp, Cin)
    hp, wp = xp.shape[1], xp.shape[2]
    cols = xp.as_strided((n, ho, wo, kh, kw, c), (hp * wp * c, sh * wp * c, sw * c, wp * c, c, 1))
    return cols.reshape(n * ho * wo, kh * kw * c), (ho, wo), (hp, wp)


class _Im2colConv(torch.autograd.Function):
    """Convolution as one GEMM over channels-last patches: forward (B*Ho*Wo, kh*kw*Cin) @ (kh*kw*Cin, Cout);
    backward the two GEMMs of the gradients, then the input gradient as kh*kw strided adds (col2im)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
        n, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        cols, (ho, wo), (hp, wp) = cl_patches(x, (kh, kw), stride, padding)
        wk = weight.permute(0, 2, 3, 1).reshape(cout, kh * kw * c)  # a view when the weight is channels-last
        y = cols @ wk.t() if bias is None else torch.addmm(bias, cols, wk.t())
        ctx.save_for_backward(cols, wk)
        ctx.geometry = (x.shape, (kh, kw), stride, padding, (ho, wo), (hp, wp))
        return y.view(n, ho, wo, cout).permute(0, 3, 1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        cols, wk = ctx.saved_tensors
        (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (ho, wo), (hp, wp) = ctx.geometry
        cout = wk.shape[0]
        gy2 = gy.permute(0, 2, 3, 1).reshape(n * ho * wo, cout)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            gw = (gy2.t() @ cols).view(cout, kh, kw, c).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[2]:
            gb = gy2.sum(0)
        if ctx.needs_input_grad[0]:
            gcols = (gy2 @ wk).view(n, ho, wo, kh, kw, c)
            gxp = gy2.new_zeros(n, hp, wp, c)
            for i in range(kh):
                for j in range(kw):
                    gxp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += gcols[:, :, :, i, j]
            gx = gxp[:, ph:ph + h, pw:pw + w].permute(0, 3, 1, 2)
        return gx, gw, gb, None, None


def im2col_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                  padding: tuple[int, int]) -> torch.Tensor:
    """Convolution as unfold + one GEMM: (B, Cin, H, W) -> (B, Cout, Ho, Wo) in channels-last memory. The weight
    is used as it is stored (a view); the patches take a transpose, their gradient a col2im."""
    n, _, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho, wo = out_size(h, kh, stride[0], padding[0]), out_size(w, kw, stride[1], padding[1])
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (B, Cin*kh*kw, Ho*Wo)
    cols = cols.transpose(1, 2).reshape(n * ho * wo, -1)
    wt = weight.reshape(cout, -1).t()
    y = cols @ wt if bias is None else torch.addmm(bias, cols, wt)
    return y.view(n, ho, wo, cout).permute(0, 3, 1, 2)


def im2col_cl_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                     padding: tuple[int, int]) -> torch.Tensor:
    """Convolution as one GEMM over patches gathered channels-last: (B, Cin, H, W) -> (B, Cout, Ho, Wo) in
    channels-last memory. Each patch row is kh*kw runs of Cin contiguous values (one copy, no transpose; the
    input gradient is kh*kw strided adds, no col2im); the weight is reordered unless stored channels-last."""
    return _Im2colConv.apply(x, weight, bias, tuple(stride), tuple(padding))


def weight_grad_by_conv(x: torch.Tensor, gy: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int]) -> torch.Tensor:
    """The weight gradient of a convolution as one forward convolution over the batch: the input with batch and
    channels swapped, (Cin, B, H, W), convolved with the output gradient as the kernel, (Cout, B, Ho, Wo), dilated by
    the stride, gives (Cin, Cout, >=kh, >=kw); its first kh x kw taps, transposed, are (Cout, Cin, kh, kw)."""
    fmt = torch.channels_last
    xt = x.transpose(0, 1).contiguous(memory_format=fmt)
    gt = gy.transpose(0, 1).contiguous(memory_format=fmt)
    out = F.conv2d(xt, gt, None, 1, padding, stride)
    return out[:, :, : kernel[0], : kernel[1]].transpose(0, 1)


def weight_grad_by_gemm(x: torch.Tensor, gy: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int]) -> torch.Tensor:
    """The weight gradient of a convolution as one GEMM: (Cout, B*Ho*Wo) @ (B*Ho*Wo, kh*kw*Cin) over the input's
    channels-last patches; the result is already in a channels-last weight's layout (the transposed GEMM is a few
    per cent faster alone, but its result needs a transposing copy into the weight's layout)."""
    cols, _, _ = cl_patches(x, kernel, stride, padding)
    cout = gy.shape[1]
    gy2 = gy.permute(0, 2, 3, 1).reshape(-1, cout)
    return (gy2.t() @ cols).view(cout, kernel[0], kernel[1], x.shape[1]).permute(0, 3, 1, 2)


class _SplitConv(torch.autograd.Function):
    """oneDNN's direct convolution (channels-last) for the forward and the input gradient; the weight gradient by
    ``weight_grad`` (:func:`weight_grad_by_conv` or :func:`weight_grad_by_gemm`), returned in the weight's layout."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int],
                weight_grad: Callable[..., torch.Tensor]) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, weight_grad, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, weight_grad, has_bias = ctx.conf
        gy = gy.contiguous(memory_format=torch.channels_last)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(gy, x, weight, None, stride, padding, (1, 1), False, (0, 0), 1,
                                                     (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            fmt = torch.channels_last if is_channels_last(weight) else torch.contiguous_format
            gw = weight_grad(x, gy, tuple(weight.shape[2:]), stride, padding).contiguous(memory_format=fmt)
        if has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3))
        return gx, gw, gb, None, None, None


def split_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], weight_grad: Callable[..., torch.Tensor] = weight_grad_by_conv
                 ) -> torch.Tensor:
    """Convolution by oneDNN's forward kernel (channels-last), its input gradient by oneDNN, its weight gradient
    by ``weight_grad``; the output is channels-last."""
    return _SplitConv.apply(x, weight, bias, tuple(stride), tuple(padding), weight_grad)


def gemm_conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution (stride 1, no padding) as one GEMM over the channels, in the input's layout."""
    w2 = weight.reshape(weight.shape[0], weight.shape[1])
    if is_channels_last(x):
        return F.linear(x.permute(0, 2, 3, 1), w2, bias).permute(0, 3, 1, 2)
    n, c, h, w = x.shape
    y = torch.matmul(w2, x.reshape(n, c, h * w))
    if bias is not None:
        y = y + bias[:, None]
    return y.view(n, -1, h, w)


def conv2d(path: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
           padding: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1) computed by kernel ``path``.

    Under CPU autocast the paths with their own backward (:data:`OWN_BACKWARD`) run on inputs cast to the autocast
    dtype, as autocast runs a convolution; their gradients come back in each input's dtype."""
    if path in OWN_BACKWARD and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        with torch.autocast("cpu", enabled=False):
            return conv2d(path, x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype), stride,
                          padding)
    if path == DIRECT:
        return F.conv2d(x, weight, bias, stride, padding)
    if path == CHANNELS_LAST:
        return F.conv2d(x.contiguous(memory_format=torch.channels_last), weight, bias, stride, padding)
    if path == IM2COL:
        return im2col_conv2d(x, weight, bias, stride, padding)
    if path == IM2COL_CL:
        return im2col_cl_conv2d(x, weight, bias, stride, padding)
    if path == SPLIT_WCONV:
        return split_conv2d(x, weight, bias, stride, padding, weight_grad_by_conv)
    if path == SPLIT_WGEMM:
        return split_conv2d(x, weight, bias, stride, padding, weight_grad_by_gemm)
    if path == GEMM_1X1:
        return gemm_conv1x1(x, weight, bias)
    raise ValueError(f"unknown convolution path {path!r}; one of {', '.join(PATHS)}")


def is_channels_last(x: torch.Tensor) -> bool:
    """True when ``x`` (B, C, H, W) is laid out channels-last and not also plain contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
