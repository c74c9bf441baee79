"""Plan rows: the fields of one image to generate, their checks, and the per-row seeds.

A row is ``(sample_id, label, wnid, recipe, prompt, seed, guidance, steps, height, width,
sampler)`` (+ optional ``negative_prompt``, ``init_image``, ``strength``). A row's ``seed``
depends only on (master seed, sample_id) (:func:`row_seed`), so any shard regenerates exactly the
images of the full plan. This module is the one home of :data:`SAMPLERS` and :func:`check_row`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

SAMPLERS = ("pndm", "ddim", "dpmpp")
"""Sampler names a plan row may carry: pndm (PLMS), ddim, dpmpp (DPM-Solver++).
``engine.generate`` maps each to a diffusers scheduler."""
SEED_BITS = 63


@dataclasses.dataclass(frozen=True)
class PlanRow:
    """One image to generate."""

    sample_id: int
    label: int
    wnid: str | None
    recipe: str
    prompt: str
    seed: int
    guidance: float
    steps: int
    height: int
    width: int
    sampler: str
    negative_prompt: str | None = None
    init_image: str | None = None
    strength: float | None = None

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        for k in ("negative_prompt", "init_image", "strength"):
            if d[k] is None:
                del d[k]
        return json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sampling_problem(guidance, steps, height, width, sampler) -> str | None:
    """What is wrong with the sampling settings of a config or a row (None if nothing)."""
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
            or not math.isfinite(guidance) or guidance < 0:
        return f"guidance must be a finite number >= 0, got {guidance!r}"
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        return f"steps must be a whole number >= 1, got {steps!r}"
    for side, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 8:
            return f"{side} must be a positive multiple of 8, got {v!r}"
    if sampler not in SAMPLERS:
        return f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"
    return None


def check_row(row: "PlanRow") -> None:
    """Raise ``ValueError`` naming the first bad value of a row (types and ranges)."""
    for name in ("sample_id", "label", "seed"):
        v = getattr(row, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
    if row.seed >= 1 << 64:
        raise ValueError(f"seed must be < 2**64, got {row.seed}")
    for name in ("recipe", "prompt"):
        if not isinstance(getattr(row, name), str):
            raise ValueError(f"{name} must be text, got {getattr(row, name)!r}")
    for name in ("wnid", "negative_prompt", "init_image"):
        v = getattr(row, name)
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{name} must be text or absent, got {v!r}")
    problem = sampling_problem(row.guidance, row.steps, row.height, row.width, row.sampler)
    if problem:
        raise ValueError(problem)
    if row.strength is not None:
        s = row.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1:
            raise ValueError(f"strength must be in (0, 1], got {s!r}")
        if row.init_image is None:
            raise ValueError("strength is given but init_image is not")


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (stable across runs, platforms and Python versions)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << SEED_BITS) - 1)


def row_seed(master_seed: int, sample_id: int) -> int:
    """The generation seed of a row: depends only on (master seed, sample_id)."""
    return derive_seed("row", master_seed, sample_id)
