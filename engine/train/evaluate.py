"""Top-1 / top-5 accuracy of a model on a held-out loader (real images; DualBN uses the branch
``model.eval_domain`` names, the real one by default). Under DDP each rank evaluates its shard
and the counts are summed."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from engine.train.distributed import DistInfo, all_reduce_sum


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, info: DistInfo | None = None,
             autocast=contextlib.nullcontext, channels_last: bool = False,
             num_classes: int | None = None) -> dict:
    """``{"top1", "top5", "loss", "images"}`` over ``loader`` (batches ``(images, labels, _)``)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss, n
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for batch in loader:
            images, labels = batch[0], batch[1]
            if num_classes is not None and len(labels) and int(labels.max()) >= num_classes:
                from engine.errors import ConfigError

                raise ConfigError(f"evaluation labels go up to {int(labels.max())} but the model "
                                  f"has {num_classes} outputs: evaluate on data with the "
                                  "training label space")
            images = images.to(device, non_blocking=True).contiguous(memory_format=fmt)
            labels = labels.to(device, non_blocking=True)
            with autocast():
                logits = model(images)
            logits = logits.float()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices  # (B, k)
            hit = top == labels[:, None]
            totals += torch.stack([hit[:, 0].sum().double(), hit.any(1).sum().double(),
                                   F.cross_entropy(logits, labels, reduction="sum").double(),
                                   torch.tensor(float(len(labels)), device=device,
                                                dtype=torch.float64)])
    finally:
        model.train(was_training)
    if info is not None:
        totals = all_reduce_sum(totals, info)
    c1, c5, loss, n = totals.tolist()
    if n == 0:
        return {"top1": None, "top5": None, "loss": None, "images": 0}
    return {"top1": c1 / n, "top5": c5 / n, "loss": loss / n, "images": int(n)}
