"""``DualSyncBatchNorm2d``: ``DualBatchNorm2d`` whose per-domain batch statistics are all-reduced
across the processes of a DDP group (like ``nn.SyncBatchNorm``, once per domain).

In training with an initialized process group of more than one process, each domain's
per-channel sum, sum of squares and count are packed into one (6, C) tensor and summed with a
differentiable all-reduce (``AllReduceSum``), so the backward pass all-reduces the gradient sums
as SyncBatchNorm does.  A rank whose batch has no sample of a
domain still takes part.  Otherwise (one process, eval) it is a ``DualBatchNorm2d``.  The output
goes through the reference's tail (``dual_bn_tail``): residual, ReLU, the input's dtype and
memory format.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from engine.ops.dual_bn.module import DualBatchNorm2d
from engine.ops.dual_bn.op import copy_back
from engine.ops.dual_bn.ref import dual_bn_tail, stack_domains


class AllReduceSum(torch.autograd.Function):
    """Sum over the group; the gradient of a sum of per-rank losses is the summed gradient."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return AllReduceSum.apply(grad, ctx.group), None


def sync_dual_bn(x, num_real, weight, bias, running_mean, running_var, momentum, eps,
                 residual=None, relu=False, process_group=None):
    """Training-mode dual batch norm with statistics over all ranks (same arguments as dual_bn_ref)."""
    n, c = x.shape[:2]
    hw = x.shape[2] * x.shape[3]
    k = int(num_real)
    xf = x.float()  # (N, C, H, W)
    packed = []
    for lo, hi in ((0, k), (k, n)):
        part = xf[lo:hi]
        packed += [part.sum((0, 2, 3)), (part * part).sum((0, 2, 3)),
                   torch.full((c,), float((hi - lo) * hw), device=x.device)]
    totals = AllReduceSum.apply(torch.stack(packed), process_group or dist.group.WORLD)  # (6, C)
    parts = []
    for d, (lo, hi) in enumerate(((0, k), (k, n))):
        s, ss, cnt = totals[3 * d], totals[3 * d + 1], totals[3 * d + 2]
        count = float(cnt[0].detach())
        if count == 0:
            continue
        mean = s / count
        var = (ss / count - mean * mean).clamp_min(0)  # biased, for normalization
        if running_mean is not None and count > 1:
            with torch.no_grad():
                running_mean[d].mul_(1 - momentum[d]).add_(momentum[d] * mean)
                running_var[d].mul_(1 - momentum[d]).add_(momentum[d] * var * count / (count - 1))
        if hi == lo:
            continue
        scale = torch.rsqrt(var + eps)
        if weight is not None:
            scale = scale * weight[d].float()
        shift = -mean * scale + (bias[d].float() if bias is not None else 0)
        parts.append(xf[lo:hi] * scale[None, :, None, None] + shift[None, :, None, None])
    return dual_bn_tail(parts, x, residual, relu)


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
