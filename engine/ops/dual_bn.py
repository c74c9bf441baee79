"""Domain-specific batch norm: the functional entry point and its backend registry.

``dual_bn(x, num_real, weight, bias, running_mean, running_var, ...)`` has the semantics of
``engine.ops.dual_bn_ref.dual_bn_ref`` (read it first).  Backends (op ``"dual_bn"``), in
preference order:

* ``triton`` — fused Triton kernels (``dual_bn_triton``) behind an ``autograd.Function``;
  needs a CUDA tensor, or ``TRITON_INTERPRET=1`` (CPU interpreter: tests, tiny shapes);
  fp32/fp16/bf16 input, NCHW or channels_last;
* ``ref`` — the plain-PyTorch reference (eager), any device;
* ``ref_compiled`` — the reference under ``torch.compile`` (only when asked for: the first
  compile costs about a minute on our CPU; compiling the whole model gets the same fusion).

Force one with ``backend=`` or ``SYNTHCLONE_OPS_BACKEND=dual_bn=<name>``.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from typing import Sequence

import torch

from engine.ops import registry
from engine.ops.dual_bn_ref import check_dual_bn_args, dual_bn_ref, momentum_pair

OP = "dual_bn"
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_device(ctx: dict) -> str | None:
    if ctx["device_type"] == "cuda":
        return None
    if os.environ.get("TRITON_INTERPRET", "0") == "1" and ctx["device_type"] == "cpu":
        return None
    return (f"Triton needs a CUDA tensor (got {ctx['device_type']}); on the CPU only under "
            "TRITON_INTERPRET=1")


def _triton_installed(ctx: dict) -> str | None:
    return None if importlib.util.find_spec("triton") else "triton is not installed"


def _triton_dtype(ctx: dict) -> str | None:
    return None if ctx["dtype"] in TRITON_DTYPES else f"dtype {ctx['dtype']} is not fp32/fp16/bf16"


def _never_by_default(ctx: dict) -> str | None:
    return None if ctx.get("explicit") else "opt-in only (backend='ref_compiled')"


class DualBNFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton forward / backward kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, running_mean, running_var, num_real, training,
                momentum, eps, relu):
        from engine.ops import dual_bn_triton as kt

        y, mean, rstd, lay = kt.dual_bn_forward(x, num_real, weight, bias, running_mean,
                                                running_var, residual, training, momentum, eps, relu)
        ctx.save_for_backward(x, y if relu else None, mean, rstd, weight)
        ctx.layout, ctx.training, ctx.relu = lay, training, relu
        ctx.has_res = residual is not None
        ctx.mark_non_differentiable(mean, rstd)
        return y, mean, rstd

    @staticmethod
    def backward(ctx, dy, _dmean, _drstd):
        from engine.ops import dual_bn_triton as kt

        x, y, mean, rstd, weight = ctx.saved_tensors
        dx, dw, db, dres = kt.dual_bn_backward(dy, x, y, mean, rstd, weight, ctx.layout,
                                               ctx.training, ctx.has_res, ctx.relu)
        return dx, dw, db, dres, None, None, None, None, None, None, None


@registry.register(OP, "triton", constraints=[_triton_device, _triton_installed, _triton_dtype],
                   doc="fused Triton kernels (CUDA; CPU only under TRITON_INTERPRET=1)")
def dual_bn_triton(x, num_real, weight, bias, running_mean, running_var, training=True,
                   momentum=0.1, eps=1e-5, residual=None, relu=False):
    """The Triton path with the reference's signature (affine defaults to 1 / 0)."""
    check_dual_bn_args(x, num_real, weight, bias, running_mean, running_var, training, residual)
    c = x.shape[1]
    fmt = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                  and not x.is_contiguous()) else torch.contiguous_format
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


registry.register(OP, "ref", doc="plain PyTorch reference (any device)")(dual_bn_ref)


@functools.lru_cache(maxsize=1)
def compiled_ref():
    """``torch.compile(dual_bn_ref)`` (dynamic=False: one graph per shape/split)."""
    return torch.compile(dual_bn_ref, dynamic=False)


@registry.register(OP, "ref_compiled", constraints=[_never_by_default],
                   doc="the reference under torch.compile (opt-in)")
def dual_bn_ref_compiled(*args, **kwargs):
    return compiled_ref()(*args, **kwargs)


def dual_bn(x: torch.Tensor, num_real: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
            running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
            training: bool = True, momentum: float | Sequence[float] = 0.1, eps: float = 1e-5,
            residual: torch.Tensor | None = None, relu: bool = False,
            backend: str | None = None) -> torch.Tensor:
    """Domain-specific batch norm of ``x`` (N, C, H, W) split at ``num_real`` (see ``dual_bn_ref``)."""
    explicit = (backend or registry.forced_backend(OP)) == "ref_compiled"
    chosen = registry.select(OP, backend=backend, device_type=x.device.type, dtype=x.dtype,
                             explicit=explicit)
    return chosen.fn(x, num_real, weight, bias, running_mean, running_var, training, momentum,
                     eps, residual, relu)
