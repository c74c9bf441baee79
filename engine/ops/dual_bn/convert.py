"""Swap a model's batch norms for ``DualBatchNorm2d`` (and back), for torchvision and timm models.

``convert_dual_bn(model)`` replaces every ``nn.BatchNorm2d`` / ``nn.SyncBatchNorm`` (including
timm's ``BatchNormAct2d``, whose ReLU is fused and other activations kept) by a dual module whose
two branches start as copies of the original weights and statistics; the real branch keeps the
original state-dict keys.  ``revert_dual_bn(model)`` turns dual modules back into plain
``BatchNorm2d`` carrying the real branch; ``real_state_dict(model)`` exports a checkpoint that
loads into the unconverted architecture.  ``fuse_resnet_tails(model)`` makes torchvision
ResNet blocks call their dual norms with the ReLU and the residual add + ReLU fused (one Triton
launch per norm on CUDA) without changing any state-dict key.
"""
from __future__ import annotations

import types

import torch
import torch.nn as nn

from engine.ops.dual_bn.module import DualBatchNorm2d

_CONVERTIBLE = (nn.BatchNorm2d, nn.SyncBatchNorm)


def convert_dual_bn(module: nn.Module, sync: bool = False, process_group=None,
                    **dual_kwargs) -> nn.Module:
    """``module`` with every 2-D batch norm made dual (in place for children; returns the root).

    ``sync=True`` makes ``DualSyncBatchNorm2d`` modules (statistics all-reduced over
    ``process_group`` in DDP).  ``dual_kwargs`` go to the dual modules (``eval_domain``, ``backend``).
    """
    if isinstance(module, DualBatchNorm2d):
        return module
    if isinstance(module, _CONVERTIBLE):
        if sync:
            from engine.ops.dual_bn.sync import DualSyncBatchNorm2d

            return DualSyncBatchNorm2d.from_bn(module, process_group=process_group, **dual_kwargs)
        return DualBatchNorm2d.from_bn(module, **dual_kwargs)
    for name, child in module.named_children():
        new = convert_dual_bn(child, sync, process_group, **dual_kwargs)
        if new is not child:
            module.add_module(name, new)
    return module


def revert_dual_bn(module: nn.Module) -> nn.Module:
    """``module`` with every ``DualBatchNorm2d`` replaced by a ``BatchNorm2d`` holding its real branch.

    A fused ReLU / kept activation comes back as ``nn.Sequential(bn, drop, act)`` only where one
    was there; use ``real_state_dict`` with the original constructor to get timm's exact classes.
    """
    if isinstance(module, DualBatchNorm2d):
        ref = module.weight if module.weight is not None else module.running_mean
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats,
                            device=ref.device if ref is not None else None,
                            dtype=ref.dtype if ref is not None else None)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                src = getattr(module, name)
                if src is not None:
                    getattr(bn, name).copy_(src)
        bn.train(module.training)
        tail = [m for m in (module.drop, module.act) if not isinstance(m, nn.Identity)]
        if module.relu:
            tail.append(nn.ReLU())
        return nn.Sequential(bn, *tail) if tail else bn
    for name, child in module.named_children():
        new = revert_dual_bn(child)
        if new is not child:
            module.add_module(name, new)
    return module


def _basic_block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn1(self.conv1(x), relu=True)
    return self.bn2(self.conv2(out), residual=identity, relu=True)


def _bottleneck_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn1(self.conv1(x), relu=True)
    out = self.bn2(self.conv2(out), relu=True)
    return self.bn3(self.conv3(out), residual=identity, relu=True)


def fuse_resnet_tails(model: nn.Module) -> int:
    """Route torchvision ``BasicBlock``/``Bottleneck`` forwards through fused dual norms.

    Each block's norm + ReLU pairs and its ``bn(last) + identity -> ReLU`` tail become single
    ``DualBatchNorm2d`` calls (``relu=True``, ``residual=``).  Only blocks whose norms are
    already dual and whose activation is ``nn.ReLU`` are changed; returns how many.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck

    count = 0
    for block in model.modules():
        if isinstance(block, Bottleneck):
            norms, fwd = (block.bn1, block.bn2, block.bn3), _bottleneck_forward
        elif isinstance(block, BasicBlock):
            norms, fwd = (block.bn1, block.bn2), _basic_block_forward
        else:
            continue
        if not all(isinstance(n, DualBatchNorm2d) and not n.relu for n in norms):
            continue
        if not isinstance(block.relu, nn.ReLU):
            continue
        block.forward = types.MethodType(fwd, block)
        count += 1
    return count
