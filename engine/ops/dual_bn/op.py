"""Domain-specific batch norm: the functional op ``dual_bn`` and its backends in the registry.

``dual_bn(x, num_real, weight, bias, running_mean, running_var, ...)`` has the semantics of
``engine.ops.dual_bn.ref.dual_bn_ref`` (read it first).  Backends (op ``"dual_bn"``), in
preference order:

* ``triton`` — fused Triton kernels with their ``autograd.Function`` (``dual_bn.triton``);
  needs a CUDA tensor, or ``TRITON_INTERPRET=1`` (CPU interpreter: tests, tiny shapes);
  fp32/fp16/bf16 input, NCHW or channels_last;
* ``cpu`` — ATen's batch-norm kernels run per domain straight into one output, residual and
  ReLU in place, per-domain tensors used as they are (``dual_bn.cpu``); needs a CPU tensor,
  fp32/bf16/fp16, NCHW- or channels_last-contiguous; bitwise equal to ``ref``;
* ``ref`` — the plain-PyTorch reference (eager), any device;
* ``ref_compiled`` — the reference under ``torch.compile`` (only when asked for: the first
  compile costs about a minute on our CPU; compiling the whole model gets the same fusion).

Force one with ``backend=`` or ``SYNTHCLONE_OPS_BACKEND=dual_bn=<name>``.

Per-domain arguments (weight, bias, running statistics) are (2, C) tensors or ``(real,
synthetic)`` pairs of (C,) tensors (what ``DualBatchNorm2d`` passes: its own parameters and
buffers).  Backends that take (2, C) tensors get pairs stacked, and the updated running
statistics copied back into the pair; ``cpu`` uses pairs as they are.
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Sequence

import torch

from engine.ops import registry
from engine.ops.dual_bn.ref import dual_bn_ref, stack_domains

OP = "dual_bn"
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
CPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
PER_DOMAIN_BACKENDS = frozenset({"cpu"})
"""Backends that take per-domain arguments as pairs (no stacking, no copy back)."""


def _triton_device(ctx: dict) -> str | None:
    if ctx["device_type"] == "cuda":
        return None
    from engine import env

    if env.triton_interpret() and ctx["device_type"] == "cpu":
        return None
    return (f"Triton needs a CUDA tensor (got {ctx['device_type']}); on the CPU only under "
            "TRITON_INTERPRET=1")


def _triton_installed(ctx: dict) -> str | None:
    return None if importlib.util.find_spec("triton") else "triton is not installed"


def _triton_dtype(ctx: dict) -> str | None:
    return None if ctx["dtype"] in TRITON_DTYPES else f"dtype {ctx['dtype']} is not fp32/fp16/bf16"


def _never_by_default(ctx: dict) -> str | None:
    return None if ctx.get("explicit") else "opt-in only (backend='ref_compiled')"


@registry.register(OP, "triton", constraints=[_triton_device, _triton_installed, _triton_dtype],
                   doc="fused Triton kernels (CUDA; CPU only under TRITON_INTERPRET=1)")
def _dual_bn_triton(*args):
    from engine.ops.dual_bn.triton import dual_bn_triton  # imports triton: only on this path

    return dual_bn_triton(*args)


def _cpu_device(ctx: dict) -> str | None:
    return None if ctx["device_type"] == "cpu" else f"needs a CPU tensor (got {ctx['device_type']})"


def _cpu_dtype(ctx: dict) -> str | None:
    return None if ctx["dtype"] in CPU_DTYPES else f"dtype {ctx['dtype']} is not fp32/bf16/fp16"


def _cpu_layout(ctx: dict) -> str | None:
    if ctx.get("dense", True):
        return None
    return "x is neither NCHW- nor channels_last-contiguous (the reference takes any strides)"


@registry.register(OP, "cpu", constraints=[_cpu_device, _cpu_dtype, _cpu_layout],
                   doc="ATen batch-norm kernels per domain into one output (CPU; exact vs ref)")
def _dual_bn_cpu(*args):
    from engine.ops.dual_bn.cpu import dual_bn_cpu

    return dual_bn_cpu(*args)


registry.register(OP, "ref", doc="plain PyTorch reference (any device)")(dual_bn_ref)


@functools.lru_cache(maxsize=1)
def compiled_ref():
    """``torch.compile(dual_bn_ref)`` (dynamic=False: one graph per shape/split)."""
    return torch.compile(dual_bn_ref, dynamic=False)


@registry.register(OP, "ref_compiled", constraints=[_never_by_default],
                   doc="the reference under torch.compile (opt-in)")
def dual_bn_ref_compiled(*args, **kwargs):
    return compiled_ref()(*args, **kwargs)


def backend_for(x: torch.Tensor, backend: str | None = None) -> registry.Backend:
    """The ``dual_bn`` backend that runs on ``x`` (``backend=`` or the env var forces one)."""
    explicit = (backend or registry.forced_backend(OP)) == "ref_compiled"
    dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    return registry.select(OP, backend=backend, device_type=x.device.type, dtype=x.dtype,
                           explicit=explicit, dense=dense)


def dual_bn(x: torch.Tensor, num_real: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
            running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
            training: bool = True, momentum: float | Sequence[float] = 0.1, eps: float = 1e-5,
            residual: torch.Tensor | None = None, relu: bool = False,
            backend: str | None = None) -> torch.Tensor:
    """Domain-specific batch norm of ``x`` (N, C, H, W) split at ``num_real`` (see ``dual_bn_ref``).

    ``weight``, ``bias``, ``running_mean``, ``running_var``: (2, C) tensors or (real, synthetic)
    pairs (see the module doc)."""
    chosen = backend_for(x, backend)
    args = (training, momentum, eps, residual, relu)
    if chosen.name in PER_DOMAIN_BACKENDS:
        return chosen.fn(x, num_real, weight, bias, running_mean, running_var, *args)
    rm, rv = stack_domains(running_mean), stack_domains(running_var)
    y = chosen.fn(x, num_real, stack_domains(weight), stack_domains(bias), rm, rv, *args)
    if training:
        copy_back((running_mean, running_var), (rm, rv))
    return y


def copy_back(given, stacked) -> None:
    """Copy updated (2, C) running statistics into the pairs they were stacked from."""
    with torch.no_grad():
        for pair, rows in zip(given, stacked):
            if pair is not None and not isinstance(pair, torch.Tensor):
                for dst, src in zip(pair, rows):
                    dst.copy_(src)
