"""Plain-PyTorch domain-specific batch norm: the source of truth for the fused kernels.

A dual-domain batch ``x`` (N, C, H, W) holds ``num_real`` real samples first, then synthetic
ones (seed 003 §3.3).  Each domain d (0 = real, 1 = synthetic) is normalized with its own batch
statistics (training) or running statistics (eval) and its own affine parameters; then an
optional residual is added and an optional ReLU applied (the tail of a ResNet block).

Per-domain parameters are stacked as (2, C) tensors, row 0 real and row 1 synthetic.  Running
statistics are updated in place (unbiased variance, like ``nn.BatchNorm2d``); a domain with no
samples in the batch is left untouched.  Arithmetic is fp32 whatever the input dtype; the
output has the input's dtype and memory format.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def momentum_pair(momentum: float | Sequence[float]) -> tuple[float, float]:
    """``(real, synthetic)`` momentum from one float or a pair."""
    if isinstance(momentum, (int, float)):
        return float(momentum), float(momentum)
    m = tuple(float(v) for v in momentum)
    if len(m) != 2:
        raise ValueError(f"momentum must be a float or a (real, synthetic) pair, got {momentum!r}")
    return m  # type: ignore[return-value]


def check_dual_bn_args(x: torch.Tensor, num_real: int, weight, bias, running_mean, running_var,
                       training: bool, residual: torch.Tensor | None) -> None:
    """Raise ``ValueError`` saying what is wrong with a dual-BN call's arguments."""
    if x.dim() != 4:
        raise ValueError(f"dual batch norm expects (N, C, H, W) input, got {tuple(x.shape)}")
    n, c = x.shape[:2]
    if n == 0:
        raise ValueError("dual batch norm got an empty batch (N = 0)")
    if not 0 <= int(num_real) <= n:
        raise ValueError(f"num_real={num_real} is outside [0, N={n}]: the first num_real samples "
                         "of the batch are real, the rest synthetic")
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is None:
            continue
        if isinstance(t, torch.Tensor):
            ok = t.shape == (2, c)
        else:
            ok = len(t) == 2 and all(p is not None and p.shape == (c,) for p in t)
        if not ok:
            shapes = (tuple(t.shape) if isinstance(t, torch.Tensor)
                      else [None if p is None else tuple(p.shape) for p in t])
            raise ValueError(f"{name} must be a (2, C) = (2, {c}) tensor (row 0 real, row 1 "
                             f"synthetic) or a (real, synthetic) pair of ({c},) tensors, got "
                             f"shape(s) {shapes}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError("eval mode (training=False) needs running_mean and running_var")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} differs from input {tuple(x.shape)}")
    if training:
        hw = x.shape[2] * x.shape[3]
        for d, count in enumerate((int(num_real), n - int(num_real))):
            if count * hw == 1:
                raise ValueError(f"{('real', 'synthetic')[d]} part has a single value per channel; "
                                 "batch statistics need at least 2 (use a larger batch or eval mode)")


def domain_pair(t) -> tuple:
    """``(real, synthetic)`` of a per-domain argument: a (2, C) tensor's rows (views), a pair
    as given, or ``(None, None)``."""
    if t is None:
        return None, None
    if isinstance(t, torch.Tensor):
        return t[0], t[1]
    real, syn = t
    return real, syn


def stack_domains(t) -> torch.Tensor | None:
    """A per-domain argument as one (2, C) tensor: a pair is stacked (differentiably)."""
    if t is None or isinstance(t, torch.Tensor):
        return t
    return torch.stack(tuple(t))


def dual_bn_ref(x: torch.Tensor, num_real: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                training: bool = True, momentum: float | Sequence[float] = 0.1, eps: float = 1e-5,
                residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """Normalize ``x[:num_real]`` with domain 0 and ``x[num_real:]`` with domain 1 (see module doc)."""
    check_dual_bn_args(x, num_real, weight, bias, running_mean, running_var, training, residual)
    k, n = int(num_real), x.shape[0]
    moms = momentum_pair(momentum)
    xf = x.float()  # (N, C, H, W) fp32
    # One domain present: normalize x itself.  Both: ``split`` into two views, whose backward is
    # one ``cat`` of the two gradients (two ``xf[lo:hi]`` slices would each zero-fill a
    # full-size gradient and then add them: ~3x the memory traffic of this op's backward).
    domains = list(enumerate(xf.split([k, n - k]))) if 0 < k < n else [(int(k == 0), xf)]
    parts = []
    for d, part in domains:  # part: (n_d, C, H, W)
        parts.append(F.batch_norm(
            part,
            None if running_mean is None else running_mean[d],  # views: updated in place
            None if running_var is None else running_var[d],
            None if weight is None else weight[d].float(),
            None if bias is None else bias[d].float(),
            training, moms[d], eps))
    return dual_bn_tail(parts, x, residual, relu)


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for a channels-last (and not also NCHW-contiguous) tensor, else NCHW."""
    return (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous() else torch.contiguous_format)


def dual_bn_tail(parts: list[torch.Tensor], x: torch.Tensor, residual: torch.Tensor | None,
                 relu: bool) -> torch.Tensor:
    """The normalized fp32 domain parts (real first; an empty domain left out) -> the output:
    concatenated, ``+ residual``, ReLU, in ``x``'s dtype and memory format.  Shared by every
    plain-PyTorch path (the reference, the synchronized one)."""
    y = torch.cat(parts) if len(parts) > 1 else parts[0]  # (N, C, H, W) fp32
    if residual is not None:
        y = y + residual.float()
    if relu:
        y = torch.relu(y)
    return y.to(x.dtype).contiguous(memory_format=memory_format_of(x))
