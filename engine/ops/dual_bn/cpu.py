"""CPU fast path for domain-specific batch norm: ATen's own batch-norm kernels, no glue copies.

Where the reference (``ref.dual_bn_ref``) normalizes the two domain views of ``x`` into two new
tensors and then ``cat``s them, adds the residual out of place and applies ReLU out of place,
this path

- runs ``aten::native_batch_norm.out`` once per domain, writing each domain straight into its
  rows of one output ``y`` (no ``cat``);
- adds the residual and applies ReLU in place on ``y`` (what torchvision's block does after a
  plain ``BatchNorm2d``);
- takes each domain's parameters and running statistics as separate tensors (``(real, synthetic)``
  pairs, the module's own ``weight`` / ``syn_weight`` ...), so the module neither stacks them
  into (2, C) tensors nor copies the updated statistics back on every call; (2, C) tensors work
  too (their rows are views);
- in backward masks the gradient by the ReLU (``threshold_backward``, as the reference's ReLU
  does) and runs ``aten::native_batch_norm_backward`` per domain on views of that gradient.

Every number therefore comes from the kernels the reference runs, on the same operands in the
same order: outputs, gradients and running statistics are bitwise equal to the reference's
(``tests/engine/ops/dual_bn/test_cpu.py``).  A domain with no sample in the batch gets zero
gradients for its weight and bias, as from the reference with (2, C) parameters, so DDP sees
every parameter used.  The one copy left is the backward's ``cat`` of the two domains' input
gradients (ATen's backward allocates its own; only a C++ op calling ATen's kernel on views of
one buffer could avoid it).

Preconditions (the registry's ``cpu`` backend in ``op.py``): a CPU tensor, fp32 / bf16 / fp16
(arithmetic in fp32 like the reference; the output is cast back), NCHW- or channels_last-
contiguous (the output keeps that layout).  Training and eval, residual and ReLU, ``affine=False``
and no running statistics are all handled.
"""
from __future__ import annotations

from typing import Sequence

import torch

from engine.ops.dual_bn.ref import check_dual_bn_args, domain_pair, momentum_pair

_BN_OUT = torch.ops.aten.native_batch_norm.out
_BN_BACKWARD = torch.ops.aten.native_batch_norm_backward.default
_RELU_BACKWARD = torch.ops.aten.threshold_backward.default


def _parts(t: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """``t`` cut at row ``k`` into the present domains' views (the views ``split`` makes)."""
    n = t.shape[0]
    if 0 < k < n:
        return t.split_with_sizes([k, n - k])
    return (t,)


def _present(k: int, n: int) -> tuple[int, ...]:
    """Domains (0 real, 1 synthetic) with samples in a batch of ``n`` rows, ``k`` real."""
    return (0, 1) if 0 < k < n else (int(k == 0),)


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return t if t is None or t.dtype == torch.float32 else t.float()


def dual_bn_cpu_forward(x, params, num_real: int, training: bool, eps: float,
                        residual: torch.Tensor | None, relu: bool):
    """``y`` and the saved per-domain ``[mean, invstd, ...]``; running statistics updated.

    ``x``: (N, C, H, W) fp32, NCHW- or channels_last-contiguous; ``params``: per domain
    ``(weight, bias, running_mean, running_var, momentum)``, tensors (C,) or None."""
    y = torch.empty_like(x)  # (N, C, H, W), x's strides
    stats = []
    for d, xd, yd in zip(_present(num_real, x.shape[0]), _parts(x, num_real), _parts(y, num_real)):
        w, b, rm, rv, m = params[d]
        mean, invstd = x.new_empty(0), x.new_empty(0)  # (C,) once written
        _BN_OUT(xd, w, b, rm, rv, training, m, eps, out=yd, save_mean=mean, save_invstd=invstd)
        stats += (mean, invstd)
    if residual is not None:
        y.add_(residual)
    if relu:
        y.relu_()
    return y, stats


class DualBNCPUFunction(torch.autograd.Function):
    """Autograd of the per-domain ATen kernels (fp32 tensors in, fp32 ``y`` out)."""

    @staticmethod
    def forward(ctx, x, w0, b0, w1, b1, residual, rm0, rv0, rm1, rv1, num_real: int,
                training: bool, m0: float, m1: float, eps: float, relu: bool):
        params = ((w0, b0, rm0, rv0, m0), (w1, b1, rm1, rv1, m1))
        y, stats = dual_bn_cpu_forward(x, params, num_real, training, eps, residual, relu)
        # training: the backward reads the batch statistics only (running ones are not needed)
        running = (None,) * 4 if training else (rm0, rv0, rm1, rv1)
        ctx.save_for_backward(x, y if relu else None, w0, w1, *running, *stats)
        ctx.num_real, ctx.training, ctx.eps, ctx.relu = num_real, training, eps, relu
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y, w0, w1, rm0, rv0, rm1, rv1, *stats = ctx.saved_tensors
        need = ctx.needs_input_grad  # x, w0, b0, w1, b1, residual, ...
        k = ctx.num_real
        g = _RELU_BACKWARD(gy, y, 0) if ctx.relu else gy  # (N, C, H, W): grad of y before ReLU
        dw, db = [None, None], [None, None]
        dx = None
        if any(need[:5]):
            params = ((w0, rm0, rv0), (w1, rm1, rv1))
            domains = _present(k, x.shape[0])
            dxs = []
            for i, (d, gd, xd) in enumerate(zip(domains, _parts(g, k), _parts(x, k))):
                w, rm, rv = params[d]
                mask = [need[0], need[1 + 2 * d], need[2 + 2 * d]]
                dxd, dw[d], db[d] = _BN_BACKWARD(gd, xd, w, rm, rv, stats[2 * i],
                                                 stats[2 * i + 1], ctx.training, ctx.eps, mask)
                dxs.append(dxd)
            if len(domains) == 1:  # the absent domain's weight and bias: zero gradients
                d = 1 - domains[0]
                w = (w0, w1)[d]
                dw[d] = torch.zeros_like(w) if need[1 + 2 * d] else None
                db[d] = torch.zeros_like(w) if need[2 + 2 * d] else None
            if need[0]:
                dx = torch.cat(dxs) if len(dxs) > 1 else dxs[0]  # (N, C, H, W)
        dres = g if need[5] else None
        return (dx, dw[0], db[0], dw[1], db[1], dres,
                None, None, None, None, None, None, None, None, None, None)


def dual_bn_cpu(x: torch.Tensor, num_real: int, weight, bias, running_mean, running_var,
                training: bool = True, momentum: float | Sequence[float] = 0.1, eps: float = 1e-5,
                residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """The CPU path with the reference's signature; per-domain tensors as (2, C) or pairs."""
    check_dual_bn_args(x, num_real, weight, bias, running_mean, running_var, training, residual)
    (w0, w1), (b0, b1) = domain_pair(weight), domain_pair(bias)
    (rm0, rm1), (rv0, rv1) = domain_pair(running_mean), domain_pair(running_var)
    m0, m1 = momentum_pair(momentum)
    args = (_f32(x), _f32(w0), _f32(b0), _f32(w1), _f32(b1), _f32(residual), rm0, rv0, rm1, rv1,
            int(num_real), bool(training), m0, m1, float(eps), bool(relu))
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args[:6]):
        y = DualBNCPUFunction.apply(*args)
    else:  # nothing to differentiate (eval, no_grad): skip autograd's bookkeeping
        xf, w0, b0, w1, b1, res = args[:6]
        params = ((w0, b0, rm0, rv0, m0), (w1, b1, rm1, rv1, m1))
        y, _ = dual_bn_cpu_forward(xf, params, int(num_real), bool(training), float(eps), res,
                                   bool(relu))
    return y if y.dtype == x.dtype else y.to(x.dtype)
