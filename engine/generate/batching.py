"""Batching: plan rows grouped by everything that must be equal inside one UNet call, and
per-row initial noise so an image depends only on its plan row (never on batch or shard).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

MODES = ("text", "img2img", "variation")
"""Conditioning modes: text prompt; img2img (init image + strength, with the prompt); image
variation (init image alone, through a CLIP image encoder; seed 004 §2.4)."""


class BatchKey(NamedTuple):
    """What every row of one batch shares (one UNet call needs equal values of all of these)."""

    sampler: str
    steps: int
    guidance: float
    height: int
    width: int
    mode: str
    """One of :data:`MODES`."""
    strength: float | None
    """img2img strength (None for the other modes)."""


def conditioning_mode(row) -> str:
    """``"img2img"`` (init image + strength), ``"variation"`` (init image alone) or ``"text"``."""
    if row.init_image is None:
        return "text"
    return "img2img" if row.strength is not None else "variation"


def batch_key(row) -> BatchKey:
    return BatchKey(row.sampler, row.steps, float(row.guidance), row.height, row.width,
                    conditioning_mode(row), row.strength)


@dataclass
class Batch:
    key: BatchKey
    rows: list
    attempt: int = 0
    """0 for the first try; k for the k-th re-sample of rows that failed a guard."""


def group_batches(rows, batch_size: int, group: bool = True) -> list[Batch]:
    """Split rows into batches of at most ``batch_size`` with one key per batch.

    With ``group`` rows are bucketed by key first (order of first appearance, then plan order
    inside a bucket), so mixed plans still give full batches; without it a batch is closed as
    soon as the key changes (the order of the plan is kept).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches: list[Batch] = []
    if group:
        buckets: dict[BatchKey, list] = {}
        for r in rows:
            buckets.setdefault(batch_key(r), []).append(r)
        for key, rs in buckets.items():
            batches += [Batch(key, rs[i:i + batch_size]) for i in range(0, len(rs), batch_size)]
        return batches
    cur: list = []
    for r in rows:
        if cur and (batch_key(r) != batch_key(cur[0]) or len(cur) == batch_size):
            batches.append(Batch(batch_key(cur[0]), cur))
            cur = []
        cur.append(r)
    if cur:
        batches.append(Batch(batch_key(cur[0]), cur))
    return batches


def resample_seed(seed: int, attempt: int) -> int:
    """The seed of the ``attempt``-th re-sample of a row (attempt 0 is the plan's seed)."""
    if attempt == 0:
        return seed
    from engine.plan import derive_seed

    return derive_seed("resample", seed, attempt)


def initial_noise(seed: int, shape: tuple, device="cpu", dtype=None, draws: int = 1):
    """Gaussian noise of ``shape`` from a CPU generator seeded with ``seed`` (device-independent);
    ``draws > 1``: a tuple of that many consecutive draws from the same generator."""
    import torch

    g = torch.Generator("cpu").manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    xs = tuple(torch.randn(shape, generator=g, dtype=torch.float32).to(
        device=device, dtype=dtype or torch.float32) for _ in range(draws))
    return xs[0] if draws == 1 else xs


def batch_noise(seeds: list[int], shape: tuple, device="cpu", dtype=None, draws: int = 1):
    """(B, *shape) noise: row i's noise depends only on ``seeds[i]``; ``draws > 1``: a tuple of
    (B, *shape) tensors, the k-th from each row generator's k-th draw."""
    import torch

    if draws == 1:
        return torch.stack([initial_noise(s, shape, device, dtype) for s in seeds])
    rows = [initial_noise(s, shape, device, dtype, draws=draws) for s in seeds]
    return tuple(torch.stack([r[k] for r in rows]) for k in range(draws))
