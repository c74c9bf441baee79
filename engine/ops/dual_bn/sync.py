"""``DualSyncBatchNorm2d``: ``DualBatchNorm2d`` whose per-domain batch statistics are computed over
all the processes of a DDP group (``nn.SyncBatchNorm``, once per domain).

Forward (training, a process group of more than one process), as ``nn.SyncBatchNorm`` does it:

1. each rank computes, per domain, its local count (values per channel), mean and biased
   variance with ``torch.var_mean`` (two-pass / Welford accuracy); a rank with no row of a
   domain sends zeros with count 0;
2. one ``all_gather`` of these (2, 2C + 1) rows (fp64: exact counts);
3. every rank merges them with Chan et al.'s parallel formula, for W partitions at once
   (``torch.batch_norm_gather_stats_with_counts`` applies it rank by rank):
   ``mean = Σ n_r mean_r / N``, ``M2 = Σ n_r var_r + Σ n_r (mean_r - mean)²``, ``var = M2 / N``,
   so nothing cancels when |mean| ≫ std (E[x²] − E[x]² in fp32 is ~20% off at mean 1000,
   std 1);
4. the running statistics move towards the global mean and the unbiased global variance
   ``M2 / (N - 1)``; each rank normalizes its rows as ``(x - mean) * invstd * w + b``.

Backward (``SyncDualBatchNormFunction``), as ``nn.SyncBatchNorm``'s: each rank reduces, per
domain, ``Σ dy`` and ``Σ dy·x̂`` over its rows, one ``all_reduce`` sums them over the group, and
``dx = w·invstd·(dy − Σdy/N − x̂·Σ(dy·x̂)/N)`` with the global sums and count.  The weight and
bias gradients are the local sums (DDP all-reduces parameter gradients itself).  A rank with no
row of a domain (or no row at all) still takes part in both collectives, so nothing hangs.
``num_batches_tracked`` of a branch counts the batch when the domain has rows on *any* rank, so
every rank keeps the same counters and, with ``momentum=None``, the same running averages.

One process, eval, or no initialized group: a plain ``DualBatchNorm2d`` (its registry backend,
bitwise equal to the reference on the CPU).  The output goes through the reference's tail
(``dual_bn_tail``): residual, ReLU, the input's dtype and memory format.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.distributed as dist

from engine.ops.dual_bn.module import DualBatchNorm2d
from engine.ops.dual_bn.op import copy_back
from engine.ops.dual_bn.ref import dual_bn_tail, momentum_pair, stack_domains

STATS_DTYPE = torch.float64
"""dtype of the gathered per-rank statistics and of their merge ((W, 2, 2C + 1) numbers: exact
counts and no extra rounding for the price of a few bytes)."""


def _rows(k: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Row ranges of the real (0) and synthetic (1) domain in a batch of ``n`` rows, ``k`` real."""
    return (0, k), (k, n)


def _bc(t: torch.Tensor) -> torch.Tensor:
    """A (C,) per-channel tensor broadcast against (N, C, H, W)."""
    return t[None, :, None, None]


def local_domain_stats(xf: torch.Tensor, k: int) -> torch.Tensor:
    """This rank's per-domain ``[count, mean (C), biased var (C)]`` as a (2, 2C + 1) tensor in
    ``STATS_DTYPE`` (zeros for a domain with no row here)."""
    n, c = xf.shape[:2]
    hw = xf.shape[2] * xf.shape[3]
    out = torch.zeros(2, 2 * c + 1, dtype=STATS_DTYPE, device=xf.device)
    for d, (lo, hi) in enumerate(_rows(k, n)):
        if hi == lo:
            continue
        var, mean = torch.var_mean(xf[lo:hi], dim=(0, 2, 3), correction=0)  # (C,), (C,)
        out[d, 0] = float((hi - lo) * hw)
        out[d, 1:c + 1] = mean
        out[d, c + 1:] = var
    return out


def merge_domain_stats(gathered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W, 2, 2C + 1) per-rank ``[count, mean, var]`` -> global ``(count (2,), mean (2, C),
    biased var (2, C))`` by Chan et al.'s parallel formula; ranks with count 0 add nothing."""
    c = (gathered.shape[-1] - 1) // 2
    counts = gathered[..., :1]  # (W, 2, 1)
    means, variances = gathered[..., 1:c + 1], gathered[..., c + 1:]  # (W, 2, C) each
    total = counts.sum(0)  # (2, 1)
    mean = (counts * means).sum(0) / total.clamp_min(1)  # (2, C)
    m2 = (counts * variances).sum(0) + (counts * (means - mean) ** 2).sum(0)  # (2, C)
    return total[:, 0], mean, m2 / total.clamp_min(1)


def gather_domain_stats(xf: torch.Tensor, k: int, group) -> tuple[torch.Tensor, ...]:
    """Global per-domain ``(count (2,), mean (2, C), biased var (2, C))`` over ``group``
    (``STATS_DTYPE``; one ``all_gather``, every rank must call it)."""
    local = local_domain_stats(xf, k)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, local, group=group)
    return merge_domain_stats(torch.stack(gathered))


class SyncDualBatchNormFunction(torch.autograd.Function):
    """Per-domain normalization with given global statistics; backward all-reduces the
    per-domain ``Σ dy`` and ``Σ dy·x̂`` (``nn.SyncBatchNorm``'s backward, once per domain)."""

    @staticmethod
    def forward(ctx, x, weight, bias, num_real, mean, invstd, counts, group):
        # x (N, C, H, W) any float dtype; weight, bias (2, C) or None; mean, invstd (2, C) fp32;
        # counts: the global values per channel of each domain (Python floats).
        n = x.shape[0]
        xf = x.float()
        y = torch.empty_like(xf)  # keeps x's memory format
        for d, (lo, hi) in enumerate(_rows(num_real, n)):
            if hi == lo:
                continue
            scale = invstd[d] if weight is None else invstd[d] * weight[d].float()
            part = (xf[lo:hi] - _bc(mean[d])) * _bc(scale)  # no cancellation when |mean| ≫ std
            y[lo:hi] = part if bias is None else part + _bc(bias[d].float())
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.num_real, ctx.counts, ctx.group = num_real, counts, group
        ctx.bias_dtype = None if bias is None else bias.dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, mean, invstd = ctx.saved_tensors
        n, c = x.shape[:2]
        xf, gy = x.float(), grad_y.float()
        rows = _rows(ctx.num_real, n)
        # 1. local per-domain sums: sums[d] = (Σ dy, Σ dy·x̂) over this rank's rows
        sums = torch.zeros(2, 2, c, dtype=torch.float32, device=x.device)
        xhats = [None, None]
        for d, (lo, hi) in enumerate(rows):
            if hi == lo:
                continue
            xhats[d] = (xf[lo:hi] - _bc(mean[d])) * _bc(invstd[d])
            sums[d, 0] = gy[lo:hi].sum((0, 2, 3))
            sums[d, 1] = (gy[lo:hi] * xhats[d]).sum((0, 2, 3))
        grad_w = (sums[:, 1].to(weight.dtype, copy=True)  # local: DDP reduces parameter grads
                  if weight is not None and ctx.needs_input_grad[1] else None)
        grad_b = (sums[:, 0].to(ctx.bias_dtype, copy=True)
                  if ctx.bias_dtype is not None and ctx.needs_input_grad[2] else None)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # 2. the global sums (every rank calls this, rows of a domain or not)
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=ctx.group)
            # 3. dx = w·invstd·(dy − Σdy/N − x̂·Σ(dy·x̂)/N) per domain
            grad_x = torch.empty_like(xf)  # keeps x's memory format
            for d, (lo, hi) in enumerate(rows):
                if hi == lo:
                    continue
                scale = invstd[d] if weight is None else invstd[d] * weight[d].float()
                count = ctx.counts[d]
                grad_x[lo:hi] = (gy[lo:hi] - _bc(sums[d, 0] / count)
                                 - xhats[d] * _bc(sums[d, 1] / count)) * _bc(scale)
            grad_x = grad_x.to(x.dtype)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def sync_dual_bn(x: torch.Tensor, num_real: int, weight: torch.Tensor | None,
                 bias: torch.Tensor | None, running_mean: torch.Tensor | None,
                 running_var: torch.Tensor | None,
                 momentum: float | Sequence[float] | Callable[[tuple[bool, bool]], Sequence[float]],
                 eps: float, residual: torch.Tensor | None = None, relu: bool = False,
                 process_group=None) -> torch.Tensor:
    """Training-mode dual batch norm with statistics over every rank of ``process_group``
    (arguments as ``dual_bn_ref``'s with (2, C) tensors; ``momentum`` may also be a function of
    which domains have rows on some rank, returning the (real, synthetic) factors)."""
    n = x.shape[0]
    k = int(num_real)
    if not 0 <= k <= n:
        raise ValueError(f"num_real={k} is outside [0, N={n}]")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} differs from input "
                         f"{tuple(x.shape)}")
    group = process_group or dist.group.WORLD
    # 1-3. global per-domain statistics (no autograd: the Function's backward covers them)
    with torch.no_grad():
        counts, mean, var = gather_domain_stats(x.detach().float(), k, group)
    counts = counts.tolist()
    for d, count in enumerate(counts):
        if count == 1:  # every rank sees the same counts, so every rank raises
            raise ValueError(f"{('real', 'synthetic')[d]} part has a single value per channel over "
                             "all ranks; batch statistics need at least 2 (use a larger batch)")
    present = (counts[0] > 0, counts[1] > 0)
    # 4. running statistics: global mean, unbiased global variance
    if running_mean is not None:
        moms = momentum_pair(momentum(present) if callable(momentum) else momentum)
        with torch.no_grad():
            for d, count in enumerate(counts):
                if count == 0:
                    continue
                unbiased = var[d] * (count / (count - 1))
                running_mean[d].mul_(1 - moms[d]).add_((moms[d] * mean[d]).to(running_mean.dtype))
                running_var[d].mul_(1 - moms[d]).add_((moms[d] * unbiased).to(running_var.dtype))
    invstd = torch.rsqrt(var + eps).float()  # (2, C)
    y = SyncDualBatchNormFunction.apply(x, weight, bias, k, mean.float(), invstd, counts, group)
    return dual_bn_tail([y], x, residual, relu)


class DualSyncBatchNorm2d(DualBatchNorm2d):
    """``DualBatchNorm2d`` with statistics synchronized over ``process_group`` in training."""

    def __init__(self, *args, process_group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group
        """The DDP group to sync over (None: the default world group)."""

    @classmethod
    def from_bn(cls, bn, process_group=None, **kwargs):
        new = super().from_bn(bn, **kwargs)
        new.process_group = process_group
        return new

    def _synced(self) -> bool:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group) > 1

    def _momenta(self, k, n):
        if self._synced():
            return self._global_momenta  # decided once the global counts are known
        return super()._momenta(k, n)

    def _global_momenta(self, present: tuple[bool, bool]) -> tuple[float, float]:
        """The parent's counting with "has rows on some rank" for "has rows here"."""
        real, syn = int(present[0]), int(present[1])
        return super()._momenta(real, real + syn)

    def _normalize(self, x, k, weight, bias, running_mean, running_var, batch_stats, momentum,
                   residual, relu):
        if not (batch_stats and self._synced()):
            return super()._normalize(x, k, weight, bias, running_mean, running_var, batch_stats,
                                      momentum, residual, relu)
        rm, rv = stack_domains(running_mean), stack_domains(running_var)
        y = sync_dual_bn(x, k, stack_domains(weight), stack_domains(bias), rm, rv, momentum,
                         self.eps, residual, relu, self.process_group)
        copy_back((running_mean, running_var), (rm, rv))
        return y
