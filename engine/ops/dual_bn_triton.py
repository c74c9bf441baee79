"""Triton kernels for domain-specific batch norm (one launch normalizes both domains).

Forward: one program per (block of channels, domain).  It reads its domain's rows of the batch
(samples ``[0, num_real)`` or ``[num_real, N)``) three times: the mean, the centred variance
(fp32 accumulation, two passes for accuracy), then ``y = x * scale + shift (+ residual) (relu)``.
It stores the batch mean and 1/std for the backward pass and updates the running statistics in
place.  Backward: the same grid; one pass for ``sum(g)`` and ``sum(g * xhat)`` (dbias, dweight),
one pass for ``dx`` (and ``dresidual = g``), where ``g = dy`` masked by the ReLU.

Layouts: element (n, c, s) of a (N, C, H, W) tensor whose H and W merge into one spatial index s
lives at ``n * stride_n + c * stride_c + s * stride_s``: NCHW has stride_s = 1, channels_last
stride_c = 1.  A program's tile is (BLOCK_M rows of (n, s), BLOCK_C channels): NCHW uses
BLOCK_C = 1 with long rows, channels_last a block of contiguous channels.

The kernels are ``triton.jit``-ed on first use (``kernels()``) so that ``TRITON_INTERPRET=1``
set by a caller before then runs them on the CPU (tests).  Import this module only on the
Triton path: the registry in ``engine.ops.dual_bn`` does.
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl


def _dual_bn_fwd(
    X,  # input (N, C, H, W), any float dtype; element (n, c, s) at n*stride_n + c*stride_c + s*stride_s
    Y,  # output, same shape, dtype and strides as X
    RES,  # residual, same strides as X (read only when HAS_RES)
    W,  # weight (2, C) fp32 contiguous, row d = domain d
    B,  # bias (2, C) fp32 contiguous
    RM,  # running mean (2, C) fp32; read in eval, updated in place when UPDATE_RUNNING
    RV,  # running variance (2, C) fp32 (unbiased), same
    MEAN,  # out: (2, C) fp32 mean used for normalization (saved for backward)
    RSTD,  # out: (2, C) fp32 1/sqrt(var + eps) used for normalization
    num_real, N, C, HW,  # split point, batch size, channels, H*W
    stride_n, stride_c, stride_s,  # element strides of X / Y / RES
    mom0, mom1, eps,  # running-stat momentum of domain 0 / 1, variance epsilon
    TRAINING: tl.constexpr,  # batch statistics (True) or running statistics (False)
    UPDATE_RUNNING: tl.constexpr,  # update RM / RV (training with running stats)
    HAS_RES: tl.constexpr,  # add RES before the activation
    RELU: tl.constexpr,  # apply max(0, .) at the end
    BLOCK_M: tl.constexpr,  # rows (n, s) per tile
    BLOCK_C: tl.constexpr,  # channels per tile
):
    pid_c = tl.program_id(0)
    d = tl.program_id(1)  # 0 = real, 1 = synthetic
    n0 = tl.where(d == 0, 0, num_real)
    n1 = tl.where(d == 0, num_real, N)
    rows = (n1 - n0) * HW
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)  # (BLOCK_C,)
    cmask = chans < C
    if rows > 0:
        count = rows.to(tl.float32)
        col_off = chans.to(tl.int64)[None, :] * stride_c  # (1, BLOCK_C)
        if TRAINING:
            acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
            for start in range(0, rows, BLOCK_M):
                r = start + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
                n = (n0 + r // HW).to(tl.int64)
                s = (r % HW).to(tl.int64)
                m = (r < rows)[:, None] & cmask[None, :]
                off = (n * stride_n + s * stride_s)[:, None] + col_off
                acc += tl.load(X + off, mask=m, other=0.0).to(tl.float32)
            mean = tl.sum(acc, axis=0) / count  # (BLOCK_C,)
            acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
            for start in range(0, rows, BLOCK_M):
                r = start + tl.arange(0, BLOCK_M)
                n = (n0 + r // HW).to(tl.int64)
                s = (r % HW).to(tl.int64)
                m = (r < rows)[:, None] & cmask[None, :]
                off = (n * stride_n + s * stride_s)[:, None] + col_off
                xc = tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]
                acc += tl.where(m, xc * xc, 0.0)
            var = tl.sum(acc, axis=0) / count
            if UPDATE_RUNNING:
                mom = tl.where(d == 0, mom0, mom1)
                unbiased = var * count / tl.maximum(count - 1.0, 1.0)
                rm = tl.load(RM + d * C + chans, mask=cmask, other=0.0)
                rv = tl.load(RV + d * C + chans, mask=cmask, other=0.0)
                tl.store(RM + d * C + chans, (1.0 - mom) * rm + mom * mean, mask=cmask)
                tl.store(RV + d * C + chans, (1.0 - mom) * rv + mom * unbiased, mask=cmask)
        else:
            mean = tl.load(RM + d * C + chans, mask=cmask, other=0.0)
            var = tl.load(RV + d * C + chans, mask=cmask, other=1.0)
        rstd = 1.0 / tl.sqrt(var + eps)
        tl.store(MEAN + d * C + chans, mean, mask=cmask)
        tl.store(RSTD + d * C + chans, rstd, mask=cmask)
        w = tl.load(W + d * C + chans, mask=cmask, other=1.0)
        b = tl.load(B + d * C + chans, mask=cmask, other=0.0)
        for start in range(0, rows, BLOCK_M):
            r = start + tl.arange(0, BLOCK_M)
            n = (n0 + r // HW).to(tl.int64)
            s = (r % HW).to(tl.int64)
            m = (r < rows)[:, None] & cmask[None, :]
            off = (n * stride_n + s * stride_s)[:, None] + col_off
            x = tl.load(X + off, mask=m, other=0.0).to(tl.float32)
            y = (x - mean[None, :]) * rstd[None, :] * w[None, :] + b[None, :]
            if HAS_RES:
                y += tl.load(RES + off, mask=m, other=0.0).to(tl.float32)
            if RELU:
                y = tl.maximum(y, 0.0)
            tl.store(Y + off, y.to(Y.dtype.element_ty), mask=m)


def _dual_bn_bwd(
    DY,  # upstream gradient, same strides as X
    X,  # forward input
    Y,  # forward output (read only when RELU: the ReLU mask is y > 0)
    MEAN, RSTD,  # (2, C) fp32 saved by the forward
    W,  # weight (2, C) fp32
    DX,  # out: input gradient, same strides as X
    DRES,  # out: residual gradient (= masked DY), same strides as X (written when HAS_RES)
    DW, DB,  # out: (2, C) fp32 weight / bias gradients
    num_real, N, C, HW,
    stride_n, stride_c, stride_s,
    TRAINING: tl.constexpr,  # batch statistics were used (mean/var depend on x)
    HAS_RES: tl.constexpr,
    RELU: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid_c = tl.program_id(0)
    d = tl.program_id(1)
    n0 = tl.where(d == 0, 0, num_real)
    n1 = tl.where(d == 0, num_real, N)
    rows = (n1 - n0) * HW
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = chans < C
    if rows > 0:
        count = rows.to(tl.float32)
        col_off = chans.to(tl.int64)[None, :] * stride_c
        mean = tl.load(MEAN + d * C + chans, mask=cmask, other=0.0)
        rstd = tl.load(RSTD + d * C + chans, mask=cmask, other=0.0)
        w = tl.load(W + d * C + chans, mask=cmask, other=0.0)
        acc_g = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        acc_gx = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        for start in range(0, rows, BLOCK_M):
            r = start + tl.arange(0, BLOCK_M)
            n = (n0 + r // HW).to(tl.int64)
            s = (r % HW).to(tl.int64)
            m = (r < rows)[:, None] & cmask[None, :]
            off = (n * stride_n + s * stride_s)[:, None] + col_off
            g = tl.load(DY + off, mask=m, other=0.0).to(tl.float32)
            if RELU:
                y = tl.load(Y + off, mask=m, other=0.0).to(tl.float32)
                g = tl.where(y > 0.0, g, 0.0)
            xhat = (tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]) * rstd[None, :]
            acc_g += g
            acc_gx += tl.where(m, g * xhat, 0.0)
        sum_g = tl.sum(acc_g, axis=0)  # (BLOCK_C,)
        sum_gx = tl.sum(acc_gx, axis=0)
        tl.store(DB + d * C + chans, sum_g, mask=cmask)
        tl.store(DW + d * C + chans, sum_gx, mask=cmask)
        for start in range(0, rows, BLOCK_M):
            r = start + tl.arange(0, BLOCK_M)
            n = (n0 + r // HW).to(tl.int64)
            s = (r % HW).to(tl.int64)
            m = (r < rows)[:, None] & cmask[None, :]
            off = (n * stride_n + s * stride_s)[:, None] + col_off
            g = tl.load(DY + off, mask=m, other=0.0).to(tl.float32)
            if RELU:
                y = tl.load(Y + off, mask=m, other=0.0).to(tl.float32)
                g = tl.where(y > 0.0, g, 0.0)
            if HAS_RES:
                tl.store(DRES + off, g.to(DRES.dtype.element_ty), mask=m)
            if TRAINING:
                xhat = (tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]) * rstd[None, :]
                dx = (w * rstd)[None, :] * (g - sum_g[None, :] / count - xhat * (sum_gx / count)[None, :])
            else:
                dx = g * (w * rstd)[None, :]
            tl.store(DX + off, dx.to(DX.dtype.element_ty), mask=m)


@functools.lru_cache(maxsize=2)
def _jit(interpret: bool):
    del interpret  # part of the cache key: triton.jit reads TRITON_INTERPRET when called
    return triton.jit(_dual_bn_fwd), triton.jit(_dual_bn_bwd)


def kernels():
    """``(forward, backward)`` jitted kernels (interpreted when ``TRITON_INTERPRET=1``)."""
    return _jit(os.environ.get("TRITON_INTERPRET", "0") == "1")


def spatial_strides(x: torch.Tensor) -> tuple[int, int, int] | None:
    """``(stride_n, stride_c, stride_s)`` when H and W merge into one index, else ``None``."""
    n, c, h, w = x.shape
    if h > 1 and w > 1 and x.stride(2) != w * x.stride(3):
        return None
    stride_s = x.stride(3) if w > 1 else x.stride(2)
    return x.stride(0), x.stride(1), stride_s


def _blocks(x: torch.Tensor, interpret: bool) -> tuple[int, int]:
    """Tile shape (BLOCK_M, BLOCK_C): long rows for NCHW, channel blocks for channels_last."""
    c = x.shape[1]
    rows = max(1, x.shape[0] * x.shape[2] * x.shape[3])
    if x.stride(1) == 1 and c > 1:  # channels_last
        block_c = min(64, triton.next_power_of_2(c))
        block_m = min(4096 // block_c, triton.next_power_of_2(rows))
    else:
        block_c = 1
        block_m = min(1024, triton.next_power_of_2(rows))
    if interpret:  # the numpy interpreter pays per element of a tile, not per launch
        block_m = min(block_m, 64)
    return block_m, block_c


class _Layout:
    """Strides and launch geometry shared by the forward and backward of one call."""

    def __init__(self, x: torch.Tensor, num_real: int):
        strides = spatial_strides(x)
        if strides is None:
            raise ValueError("dual_bn_triton: H and W of x must be mergeable (NCHW or "
                             "channels_last); call .contiguous() first")
        self.strides = strides
        n, c, h, w = x.shape
        self.dims = (int(num_real), n, c, h * w)
        interpret = os.environ.get("TRITON_INTERPRET", "0") == "1"
        self.block_m, self.block_c = _blocks(x, interpret)
        self.grid = (triton.cdiv(c, self.block_c), 2)


def dual_bn_forward(x, num_real, weight, bias, running_mean, running_var, residual,
                    training: bool, momentum: tuple[float, float], eps: float, relu: bool):
    """Launch the forward kernel; returns ``(y, mean, rstd, layout)``. Running stats updated in place."""
    lay = _Layout(x, num_real)
    c = x.shape[1]
    y = torch.empty_like(x)  # same strides as x (dense input)
    if residual is not None and residual.stride() != x.stride():
        residual = torch.empty_like(x).copy_(residual)
    mean = torch.zeros(2, c, device=x.device, dtype=torch.float32)
    rstd = torch.zeros(2, c, device=x.device, dtype=torch.float32)
    update = training and running_mean is not None
    rm = running_mean if running_mean is not None else mean
    rv = running_var if running_var is not None else rstd
    fwd, _ = kernels()
    fwd[lay.grid](x, y, residual if residual is not None else x, weight, bias, rm, rv, mean, rstd,
                  *lay.dims, *lay.strides, momentum[0], momentum[1], eps,
                  TRAINING=training, UPDATE_RUNNING=update, HAS_RES=residual is not None,
                  RELU=relu, BLOCK_M=lay.block_m, BLOCK_C=lay.block_c)
    return y, mean, rstd, lay


def dual_bn_backward(dy, x, y, mean, rstd, weight, lay: _Layout, training: bool,
                     has_res: bool, relu: bool):
    """Launch the backward kernel; returns ``(dx, dweight, dbias, dresidual or None)``."""
    if dy.stride() != x.stride():
        dy = torch.empty_like(x).copy_(dy)
    dx = torch.empty_like(x)
    dres = torch.empty_like(x) if has_res else None
    dw = torch.zeros_like(mean)
    db = torch.zeros_like(mean)
    _, bwd = kernels()
    bwd[lay.grid](dy, x, y if relu else x, mean, rstd, weight, dx, dres if has_res else dx, dw, db,
                  *lay.dims, *lay.strides, TRAINING=training, HAS_RES=has_res, RELU=relu,
                  BLOCK_M=lay.block_m, BLOCK_C=lay.block_c)
    return dx, dw, db, dres
