"""Domain-specific batch norm (seed 003 §3.3) as a package: reference, fast path, module, DDP.

- ``ref``: ``dual_bn_ref``, the plain-PyTorch source of truth (and the tail every plain path
  shares);
- ``op``: the functional op ``dual_bn``, dispatched through ``engine.ops.registry``
  (``triton`` on CUDA, ``cpu`` on CPU, ``ref`` elsewhere, ``ref_compiled`` on request);
- ``cpu``: the CPU fast path, ATen's batch-norm kernels per domain straight into one output,
  with its ``autograd.Function`` (bitwise equal to ``ref``);
- ``triton``: the fused kernels with their ``autograd.Function`` (imported only on that path);
- ``module``: ``DualBatchNorm2d`` and the helpers that pass the batch's split to a model;
- ``sync``: ``DualSyncBatchNorm2d`` (statistics all-reduced over a DDP group);
- ``convert``: swapping a torchvision/timm model's batch norms for dual ones and back.

::

    from engine.ops.dual_bn import convert_dual_bn, dual_bn_split, real_state_dict
    model = convert_dual_bn(torchvision.models.resnet50())
    with dual_bn_split(model, num_real):     # rows [0, num_real) of the batch are real
        logits = model(images)
"""
from engine.ops.dual_bn.convert import convert_dual_bn, fuse_resnet_tails, revert_dual_bn
from engine.ops.dual_bn.module import (DualBatchNorm2d, dual_bn_split, num_real_from_mask,
                                       real_state_dict, set_eval_domain, set_num_real)
from engine.ops.dual_bn.op import dual_bn
from engine.ops.dual_bn.ref import dual_bn_ref
from engine.ops.dual_bn.sync import DualSyncBatchNorm2d

__all__ = [
    "DualBatchNorm2d", "DualSyncBatchNorm2d", "convert_dual_bn", "revert_dual_bn",
    "dual_bn_split", "set_num_real", "num_real_from_mask", "real_state_dict",
    "set_eval_domain", "fuse_resnet_tails", "dual_bn", "dual_bn_ref",
]
