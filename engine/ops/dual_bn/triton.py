"""Triton kernels for domain-specific batch norm: one launch normalizes both domains.

Grid ``(channel blocks, 2 domains, SPLIT row chunks)``.  Domain d (0 = real, 1 = synthetic) owns
samples ``[0, num_real)`` or ``[num_real, N)``; its rows ``(n, s)`` (s = spatial index) are cut
into SPLIT chunks so that a GPU has enough programs even for few channels.

Forward, training: ``_stats`` stores per chunk the count, mean and centred sum of squares (two
passes, fp32); ``_fwd`` merges the chunks (Chan's parallel-variance formula), the first chunk's
program stores mean / rstd and updates the running statistics, and every program writes
``y = (x - mean) * rstd * w + b (+ residual) (relu)`` for its chunk.  Eval skips ``_stats`` and
reads the running statistics.  Backward: ``_bwd_stats`` stores per-chunk ``sum(g)`` and
``sum(g * xhat)`` (g = dy masked by the ReLU); ``_bwd`` merges them (dbias, dweight) and writes
``dx`` (and ``dresidual = g``) for its chunk.

Layouts: element (n, c, s) of a (N, C, H, W) tensor whose H and W merge into one index lives at
``n * stride_n + c * stride_c + s * stride_s``: NCHW has stride_s = 1, channels_last
stride_c = 1.  A tile is (BLOCK_M rows, BLOCK_C channels): NCHW uses BLOCK_C = 1 and long rows,
channels_last a block of contiguous channels.

``DualBNFunction`` (autograd) and ``dual_bn_triton`` (the reference's signature) at the end wrap
the launches.  Import this module only on the Triton path (the registry's ``triton`` backend in
``engine.ops.dual_bn.op`` does).  On a
CPU the kernels run under the interpreter only if ``TRITON_INTERPRET=1`` was set before triton
was first imported in the process.
"""
from __future__ import annotations


import torch
import triton
import triton.language as tl

from engine.ops.dual_bn.ref import check_dual_bn_args, memory_format_of, momentum_pair


@triton.jit
def _rows(pid_d, pid_s, num_real, N, HW, SPLIT):
    """Domain row range start sample, chunk [lo, hi) of its rows, and the domain's row count."""
    n0 = tl.where(pid_d == 0, 0, num_real)
    n1 = tl.where(pid_d == 0, num_real, N)
    rows = (n1 - n0) * HW
    chunk = tl.cdiv(rows, SPLIT)
    lo = pid_s * chunk
    hi = tl.minimum(lo + chunk, rows)
    return n0, lo, hi, rows


@triton.jit
def _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M: tl.constexpr):
    """Offsets (BLOCK_M, BLOCK_C) and mask of the tile of rows [start, start + BLOCK_M) < hi."""
    r = start + tl.arange(0, BLOCK_M)
    n = (n0 + r // HW).to(tl.int64)
    s = (r % HW).to(tl.int64)
    off = (n * stride_n + s * stride_s)[:, None] + col_off
    return off, (r < hi)[:, None] & cmask[None, :]


@triton.jit
def _stats(
    X,  # input (N, C, H, W); element (n, c, s) at n*stride_n + c*stride_c + s*stride_s
    PART,  # out: (3, 2, SPLIT, C) fp32 per-chunk count, mean, centred sum of squares
    num_real, N, C, HW, stride_n, stride_c, stride_s, SPLIT,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_c, pid_d, pid_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n0, lo, hi, rows = _rows(pid_d, pid_s, num_real, N, HW, SPLIT)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = chans < C
    col_off = chans.to(tl.int64)[None, :] * stride_c
    cnt = tl.maximum(hi - lo, 0).to(tl.float32)
    mean = tl.zeros([BLOCK_C], dtype=tl.float32)
    m2 = tl.zeros([BLOCK_C], dtype=tl.float32)
    if hi > lo:
        acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        for start in range(lo, hi, BLOCK_M):
            off, m = _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M)
            acc += tl.load(X + off, mask=m, other=0.0).to(tl.float32)
        mean = tl.sum(acc, axis=0) / cnt
        acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
        for start in range(lo, hi, BLOCK_M):
            off, m = _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M)
            xc = tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]
            acc += tl.where(m, xc * xc, 0.0)
        m2 = tl.sum(acc, axis=0)
    base = (pid_d * SPLIT + pid_s) * C + chans
    plane = 2 * SPLIT * C
    tl.store(PART + base, tl.zeros([BLOCK_C], dtype=tl.float32) + cnt, mask=cmask)
    tl.store(PART + plane + base, mean, mask=cmask)
    tl.store(PART + 2 * plane + base, m2, mask=cmask)


@triton.jit
def _fwd(
    X,  # input, as in _stats
    Y,  # output, same shape, dtype and strides as X
    RES,  # residual, same strides as X (read only when HAS_RES)
    W, B,  # affine (2, C) fp32, row d = domain d
    RM, RV,  # running mean / unbiased variance (2, C) fp32; read in eval, updated when UPDATE_RUNNING
    PART,  # (3, 2, SPLIT, C) fp32 from _stats (read when TRAINING)
    MEAN, RSTD,  # out: (2, C) fp32 mean and 1/sqrt(var + eps) used, for the backward
    num_real, N, C, HW, stride_n, stride_c, stride_s, SPLIT,
    mom0, mom1, eps,  # running-stat momentum of domain 0 / 1, variance epsilon
    TRAINING: tl.constexpr,  # batch statistics (True) or running statistics (False)
    UPDATE_RUNNING: tl.constexpr,
    HAS_RES: tl.constexpr,
    RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,  # power of two >= SPLIT
):
    pid_c, pid_d, pid_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n0, lo, hi, rows = _rows(pid_d, pid_s, num_real, N, HW, SPLIT)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = chans < C
    if rows > 0:
        if TRAINING:
            splits = tl.arange(0, BLOCK_S)
            poff = (pid_d * SPLIT + splits[:, None]) * C + chans[None, :]  # (BLOCK_S, BLOCK_C)
            pm = (splits < SPLIT)[:, None] & cmask[None, :]
            plane = 2 * SPLIT * C
            cnt_i = tl.load(PART + poff, mask=pm, other=0.0)
            mean_i = tl.load(PART + plane + poff, mask=pm, other=0.0)
            m2_i = tl.load(PART + 2 * plane + poff, mask=pm, other=0.0)
            count = tl.maximum(tl.sum(cnt_i, axis=0), 1.0)
            mean = tl.sum(cnt_i * mean_i, axis=0) / count
            dm = mean_i - mean[None, :]
            var = (tl.sum(m2_i, axis=0) + tl.sum(cnt_i * dm * dm, axis=0)) / count
            if UPDATE_RUNNING:
                if pid_s == 0:
                    mom = tl.where(pid_d == 0, mom0, mom1)
                    unbiased = var * count / tl.maximum(count - 1.0, 1.0)
                    rm = tl.load(RM + pid_d * C + chans, mask=cmask, other=0.0)
                    rv = tl.load(RV + pid_d * C + chans, mask=cmask, other=0.0)
                    tl.store(RM + pid_d * C + chans, (1.0 - mom) * rm + mom * mean, mask=cmask)
                    tl.store(RV + pid_d * C + chans, (1.0 - mom) * rv + mom * unbiased, mask=cmask)
        else:
            mean = tl.load(RM + pid_d * C + chans, mask=cmask, other=0.0)
            var = tl.load(RV + pid_d * C + chans, mask=cmask, other=1.0)
        rstd = 1.0 / tl.sqrt(var + eps)
        if pid_s == 0:
            tl.store(MEAN + pid_d * C + chans, mean, mask=cmask)
            tl.store(RSTD + pid_d * C + chans, rstd, mask=cmask)
        w = tl.load(W + pid_d * C + chans, mask=cmask, other=1.0)
        b = tl.load(B + pid_d * C + chans, mask=cmask, other=0.0)
        col_off = chans.to(tl.int64)[None, :] * stride_c
        for start in range(lo, hi, BLOCK_M):
            off, m = _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M)
            x = tl.load(X + off, mask=m, other=0.0).to(tl.float32)
            y = (x - mean[None, :]) * rstd[None, :] * w[None, :] + b[None, :]
            if HAS_RES:
                y += tl.load(RES + off, mask=m, other=0.0).to(tl.float32)
            if RELU:
                y = tl.maximum(y, 0.0)
            tl.store(Y + off, y.to(Y.dtype.element_ty), mask=m)


@triton.jit
def _bwd_stats(
    DY,  # upstream gradient, same strides as X
    X,  # forward input
    Y,  # forward output (read only when RELU: the ReLU mask is y > 0)
    MEAN, RSTD,  # (2, C) fp32 saved by the forward
    PART,  # out: (2, 2, SPLIT, C) fp32 per-chunk sum(g), sum(g * xhat)
    num_real, N, C, HW, stride_n, stride_c, stride_s, SPLIT,
    RELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_c, pid_d, pid_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n0, lo, hi, rows = _rows(pid_d, pid_s, num_real, N, HW, SPLIT)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = chans < C
    col_off = chans.to(tl.int64)[None, :] * stride_c
    mean = tl.load(MEAN + pid_d * C + chans, mask=cmask, other=0.0)
    rstd = tl.load(RSTD + pid_d * C + chans, mask=cmask, other=0.0)
    acc_g = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    acc_gx = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_M):
        off, m = _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M)
        g = tl.load(DY + off, mask=m, other=0.0).to(tl.float32)
        if RELU:
            g = tl.where(tl.load(Y + off, mask=m, other=0.0).to(tl.float32) > 0.0, g, 0.0)
        xhat = (tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]) * rstd[None, :]
        acc_g += g
        acc_gx += tl.where(m, g * xhat, 0.0)
    base = (pid_d * SPLIT + pid_s) * C + chans
    tl.store(PART + base, tl.sum(acc_g, axis=0), mask=cmask)
    tl.store(PART + 2 * SPLIT * C + base, tl.sum(acc_gx, axis=0), mask=cmask)


@triton.jit
def _bwd(
    DY, X, Y,  # as in _bwd_stats
    MEAN, RSTD, W,  # (2, C) fp32
    PART,  # (2, 2, SPLIT, C) fp32 from _bwd_stats
    DX,  # out: input gradient, same strides as X
    DRES,  # out: residual gradient (= masked DY), same strides as X (written when HAS_RES)
    DW, DB,  # out: (2, C) fp32 weight / bias gradients
    num_real, N, C, HW, stride_n, stride_c, stride_s, SPLIT,
    TRAINING: tl.constexpr,  # batch statistics were used (mean / var depend on x)
    HAS_RES: tl.constexpr, RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    pid_c, pid_d, pid_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n0, lo, hi, rows = _rows(pid_d, pid_s, num_real, N, HW, SPLIT)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = chans < C
    if rows > 0:
        splits = tl.arange(0, BLOCK_S)
        poff = (pid_d * SPLIT + splits[:, None]) * C + chans[None, :]
        pm = (splits < SPLIT)[:, None] & cmask[None, :]
        sum_g = tl.sum(tl.load(PART + poff, mask=pm, other=0.0), axis=0)  # (BLOCK_C,)
        sum_gx = tl.sum(tl.load(PART + 2 * SPLIT * C + poff, mask=pm, other=0.0), axis=0)
        if pid_s == 0:
            tl.store(DB + pid_d * C + chans, sum_g, mask=cmask)
            tl.store(DW + pid_d * C + chans, sum_gx, mask=cmask)
        count = rows.to(tl.float32)
        mean = tl.load(MEAN + pid_d * C + chans, mask=cmask, other=0.0)
        rstd = tl.load(RSTD + pid_d * C + chans, mask=cmask, other=0.0)
        w = tl.load(W + pid_d * C + chans, mask=cmask, other=0.0)
        col_off = chans.to(tl.int64)[None, :] * stride_c
        for start in range(lo, hi, BLOCK_M):
            off, m = _tile(start, hi, n0, HW, stride_n, stride_s, col_off, cmask, BLOCK_M)
            g = tl.load(DY + off, mask=m, other=0.0).to(tl.float32)
            if RELU:
                g = tl.where(tl.load(Y + off, mask=m, other=0.0).to(tl.float32) > 0.0, g, 0.0)
            if HAS_RES:
                tl.store(DRES + off, g.to(DRES.dtype.element_ty), mask=m)
            if TRAINING:
                xhat = (tl.load(X + off, mask=m, other=0.0).to(tl.float32) - mean[None, :]) * rstd[None, :]
                dx = (w * rstd)[None, :] * (g - sum_g[None, :] / count - xhat * (sum_gx / count)[None, :])
            else:
                dx = g * (w * rstd)[None, :]
            tl.store(DX + off, dx.to(DX.dtype.element_ty), mask=m)


def spatial_strides(x: torch.Tensor) -> tuple[int, int, int] | None:
    """``(stride_n, stride_c, stride_s)`` when H and W merge into one index, else ``None``."""
    n, c, h, w = x.shape
    if h > 1 and w > 1 and x.stride(2) != w * x.stride(3):
        return None
    stride_s = x.stride(3) if w > 1 else x.stride(2)
    return x.stride(0), x.stride(1), stride_s


class _Layout:
    """Strides, tile shape and grid shared by the forward and backward of one call."""

    INTERPRETER_SPLIT = 2
    """Row chunks per domain under the interpreter: small, but > 1 so the merge is exercised."""
    PROGRAMS_PER_SM = 4
    """GPU target occupancy: programs launched per streaming multiprocessor."""
    MAX_MERGE_TILE = 4096
    """Upper bound on SPLIT * BLOCK_C (the partial-statistics tile each program merges)."""

    def __init__(self, x: torch.Tensor, num_real: int):
        strides = spatial_strides(x)
        if strides is None:
            raise ValueError("dual_bn_triton: H and W of x must be mergeable (NCHW or "
                             "channels_last); call .contiguous() first")
        self.strides = strides
        n, c, h, w = x.shape
        self.dims = (int(num_real), n, c, h * w)
        from engine import env

        interpret = env.triton_interpret()
        rows = max(1, n * h * w)
        if x.stride(1) == 1 and c > 1:  # channels_last: channel blocks are contiguous
            self.block_c = min(64, triton.next_power_of_2(c))
            self.block_m = min(4096 // self.block_c, triton.next_power_of_2(rows))
        else:
            self.block_c = 1
            self.block_m = min(1024, triton.next_power_of_2(rows))
        cblocks = triton.cdiv(c, self.block_c)
        if interpret or not x.is_cuda:
            self.block_m = min(self.block_m, 64)  # the interpreter pays per tile element
            self.split = self.INTERPRETER_SPLIT
        else:
            sms = torch.cuda.get_device_properties(x.device).multi_processor_count
            want = triton.cdiv(self.PROGRAMS_PER_SM * sms, 2 * cblocks)
            # The merge loads a (BLOCK_S, BLOCK_C) tile of partials: keep it register-sized.
            cap = max(1, self.MAX_MERGE_TILE // self.block_c)
            self.split = max(1, min(want, triton.cdiv(rows // 2 + 1, self.block_m), cap))
        self.block_s = triton.next_power_of_2(self.split)
        self.grid = (cblocks, 2, self.split)


def dual_bn_forward(x, num_real, weight, bias, running_mean, running_var, residual,
                    training: bool, momentum: tuple[float, float], eps: float, relu: bool):
    """Launch the forward kernels; returns ``(y, mean, rstd, layout)``; running stats updated in place."""
    lay = _Layout(x, num_real)
    c = x.shape[1]
    y = torch.empty_like(x)  # same strides as x (dense input)
    if residual is not None and residual.stride() != x.stride():
        residual = torch.empty_like(x).copy_(residual)
    mean = torch.zeros(2, c, device=x.device, dtype=torch.float32)
    rstd = torch.zeros(2, c, device=x.device, dtype=torch.float32)
    part = torch.empty(3, 2, lay.split, c, device=x.device, dtype=torch.float32)
    if training:
        _stats[lay.grid](x, part, *lay.dims, *lay.strides, lay.split,
                         BLOCK_M=lay.block_m, BLOCK_C=lay.block_c)
    update = training and running_mean is not None
    rm = running_mean if running_mean is not None else mean
    rv = running_var if running_var is not None else rstd
    _fwd[lay.grid](x, y, residual if residual is not None else x, weight, bias, rm, rv, part,
                   mean, rstd, *lay.dims, *lay.strides, lay.split, momentum[0], momentum[1], eps,
                   TRAINING=training, UPDATE_RUNNING=update, HAS_RES=residual is not None,
                   RELU=relu, BLOCK_M=lay.block_m, BLOCK_C=lay.block_c, BLOCK_S=lay.block_s)
    return y, mean, rstd, lay


def dual_bn_backward(dy, x, y, mean, rstd, weight, lay: _Layout, training: bool,
                     has_res: bool, relu: bool):
    """Launch the backward kernels; returns ``(dx, dweight, dbias, dresidual or None)``."""
    if dy.stride() != x.stride():
        dy = torch.empty_like(x).copy_(dy)
    dx = torch.empty_like(x)
    dres = torch.empty_like(x) if has_res else None
    dw, db = torch.zeros_like(mean), torch.zeros_like(mean)
    part = torch.empty(2, 2, lay.split, x.shape[1], device=x.device, dtype=torch.float32)
    yy = y if relu else x
    _bwd_stats[lay.grid](dy, x, yy, mean, rstd, part, *lay.dims, *lay.strides, lay.split,
                         RELU=relu, BLOCK_M=lay.block_m, BLOCK_C=lay.block_c)
    _bwd[lay.grid](dy, x, yy, mean, rstd, weight, part, dx, dres if has_res else dx, dw, db,
                   *lay.dims, *lay.strides, lay.split, TRAINING=training, HAS_RES=has_res,
                   RELU=relu, BLOCK_M=lay.block_m, BLOCK_C=lay.block_c, BLOCK_S=lay.block_s)
    return dx, dw, db, dres


class DualBNFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton forward / backward kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, running_mean, running_var, num_real, training,
                momentum, eps, relu):
        y, mean, rstd, lay = dual_bn_forward(x, num_real, weight, bias, running_mean,
                                             running_var, residual, training, momentum, eps, relu)
        ctx.save_for_backward(x, y if relu else None, mean, rstd, weight)
        ctx.layout, ctx.training, ctx.relu = lay, training, relu
        ctx.has_res = residual is not None
        ctx.mark_non_differentiable(mean, rstd)
        return y, mean, rstd

    @staticmethod
    def backward(ctx, dy, _dmean, _drstd):
        x, y, mean, rstd, weight = ctx.saved_tensors
        dx, dw, db, dres = dual_bn_backward(dy, x, y, mean, rstd, weight, ctx.layout,
                                            ctx.training, ctx.has_res, ctx.relu)
        return dx, dw, db, dres, None, None, None, None, None, None, None


def dual_bn_triton(x, num_real, weight, bias, running_mean, running_var, training=True,
                   momentum=0.1, eps=1e-5, residual=None, relu=False):
    """The Triton path with the reference's signature (affine defaults to 1 / 0)."""
    check_dual_bn_args(x, num_real, weight, bias, running_mean, running_var, training, residual)
    c = x.shape[1]
    fmt = memory_format_of(x)
    x = x.contiguous(memory_format=fmt)
    if residual is not None:
        residual = residual.to(x.dtype).contiguous(memory_format=fmt)
    w = weight.float() if weight is not None else x.new_ones(2, c, dtype=torch.float32)
    b = bias.float() if bias is not None else x.new_zeros(2, c, dtype=torch.float32)
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and (t.dtype != torch.float32 or not t.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous fp32 (2, C) tensor for the Triton path")
    y, _, _ = DualBNFunction.apply(x, w.contiguous(), b.contiguous(), residual, running_mean,
                                   running_var, int(num_real), bool(training),
                                   momentum_pair(momentum), float(eps), bool(relu))
    return y
