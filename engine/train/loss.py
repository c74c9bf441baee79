"""The dual-domain loss of seed 003 §3.3 and its per-domain metrics.

seed 003 writes ``L = -Σ_{i ∈ real} y_i log f(x_i) - λ · Σ_{j ∈ syn} y_j log f'(x_j)``: a sum
over the batch. We normalise it by the batch size B (DESIGN.md "Loss"), so that

    L = (Σ_real CE_i + λ · Σ_syn CE_j) / B

is exactly the usual mean cross-entropy when the batch holds no synthetic rows (or λ = 1),
and the learning rates of real-only recipes carry over. Rows ``[0, num_real)`` are real (the
loader's contract). ``targets`` are class indices, or soft targets ``(B, C)`` after
mixup/cutmix; label smoothing applies to class indices (timm's Mixup smooths soft targets).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each row, in fp32: ``(B, C), (B,) | (B, C) -> (B,)``."""
    logits = logits.float()
    if targets.dim() == 2:  # soft targets (mixup / cutmix), already smoothed
        return -(targets.float() * F.log_softmax(logits, dim=-1)).sum(-1)
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)


def domain_weights(batch_size: int, num_real: int, synthetic_weight: float,
                   device=None) -> torch.Tensor:
    """``[1] * num_real + [λ] * (B - num_real)`` as a (B,) fp32 tensor."""
    w = torch.full((batch_size,), float(synthetic_weight), dtype=torch.float32, device=device)
    w[:num_real] = 1.0
    return w


def dual_domain_loss(logits: torch.Tensor, targets: torch.Tensor, num_real: int,
                     synthetic_weight: float, label_smoothing: float = 0.0,
                     per_sample: torch.Tensor | None = None) -> torch.Tensor:
    """``(Σ_real CE + λ·Σ_syn CE) / B`` (scalar, fp32); see the module doc."""
    ce = per_sample_ce(logits, targets, label_smoothing) if per_sample is None else per_sample
    b = ce.shape[0]
    if not 0 <= num_real <= b:
        raise ValueError(f"num_real={num_real} is outside [0, B={b}]")
    return (ce * domain_weights(b, num_real, synthetic_weight, ce.device)).sum() / b


@dataclass
class LossOutput:
    loss: torch.Tensor
    """The scalar to back-propagate."""
    per_sample: list[torch.Tensor]
    """(B_v,) cross-entropy of each row of each view (detached), for the per-domain metrics."""


def multi_view_loss(views, synthetic_weight: float, label_smoothing: float) -> LossOutput:
    """The loss over several views of a batch (DINO multi-crop: the global and the local
    crops), ``views = [(logits, targets, num_real), ...]``: every crop is a row, so
    ``L = Σ_views (Σ_real CE + λ·Σ_syn CE) / Σ_views B_v``; one view is
    :func:`dual_domain_loss`."""
    total, rows, per_sample = 0.0, 0, []
    for logits, targets, num_real in views:
        ce = per_sample_ce(logits, targets, label_smoothing)
        w = domain_weights(ce.shape[0], num_real, synthetic_weight, ce.device)
        total = total + (ce * w).sum()
        rows += ce.shape[0]
        per_sample.append(ce.detach())
    return LossOutput(total / rows, per_sample)


class DomainMeter:
    """Running sums of loss and accuracy per domain, kept on the device (no sync per step).

    ``update(per_sample_ce, logits, labels, num_real)``; ``compute()`` (after an optional
    all-reduce of ``totals``) gives ``loss_real``, ``acc_real``, ``loss_syn``, ``acc_syn``,
    ``loss``/``acc`` (plain means over all rows) and ``objective`` (the λ-weighted loss, the
    mean of the optimized values over equal-sized batches); None where a domain had no rows.
    """

    FIELDS = ("loss_real", "n_real", "correct_real", "loss_syn", "n_syn", "correct_syn")

    def __init__(self, synthetic_weight: float = 1.0, device=None):
        self.synthetic_weight = float(synthetic_weight)
        self.totals = torch.zeros(len(self.FIELDS), dtype=torch.float64, device=device)

    def reset(self) -> None:
        self.totals.zero_()

    @torch.no_grad()
    def update(self, per_sample: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
               num_real: int) -> None:
        correct = (logits.argmax(-1) == labels).double()  # (B,)
        ce = per_sample.double()
        k = int(num_real)
        self.totals += torch.stack([
            ce[:k].sum(), ce.new_tensor(float(k)), correct[:k].sum(),
            ce[k:].sum(), ce.new_tensor(float(ce.shape[0] - k)), correct[k:].sum()])

    def compute(self, totals: torch.Tensor | None = None) -> dict:
        t = (self.totals if totals is None else totals).tolist()
        lr, nr, cr, ls, ns, cs = t
        ratio = lambda a, n: (a / n) if n else None  # noqa: E731
        return {"loss_real": ratio(lr, nr), "acc_real": ratio(cr, nr),
                "loss_syn": ratio(ls, ns), "acc_syn": ratio(cs, ns),
                "loss": ratio(lr + ls, nr + ns), "acc": ratio(cr + cs, nr + ns),
                "objective": ratio(lr + self.synthetic_weight * ls, nr + ns),
                "rows": int(nr + ns)}
