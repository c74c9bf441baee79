"""Which rows form each batch: pure numpy, deterministic given (seed, epoch, rank, world size).

A plan decides every batch's rows before any backend decodes them, so the FFCV, DALI and
torchvision backends deliver the same rows in the same order (each backend only decodes). Rows
are numbered in one space for the whole loader: the real source's rows ``0..R_total-1`` first,
then the synthetic source's rows offset by ``R_total``.

* :class:`DualPlan` (seed 003 §3.3): every batch holds exactly ``n_syn = round(B*p)`` synthetic
  rows after ``n_real = B - n_syn`` real ones. An epoch is one pass over the real positions
  (a fresh permutation per epoch, cut to whole batches on every rank). The synthetic positions
  form one endless stream of permutations, epoch ``e`` taking the next ``K`` of them, so every
  synthetic row is used once before any repeats, across epochs. ``p = 1`` (no real rows) makes
  the synthetic stream define the epoch.
* :class:`UnionPlan` (seed 004 §4.3, "equal mix"): both domains pooled into one permutation per
  epoch; each batch's real rows are moved first (stable) and ``num_real`` varies.
* :class:`SequentialPlan`: every row once in file order, last batch short (evaluation).

Distributed: at each global step the ``W * n`` rows of the step are split into ``W`` contiguous
blocks, block ``r`` for rank ``r``: ranks get disjoint rows and the same number of batches.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from loaders.config import synthetic_rows
from loaders.errors import LoaderConfigError

__all__ = ["EpochPlan", "DualPlan", "UnionPlan", "SequentialPlan", "permutation",
           "quasi_random_order", "ORDER_TAGS"]

ORDER_TAGS = {"real": 1, "synthetic": 2, "union": 3}
"""Stream tags mixed into the seed so each stream has its own random sequence."""


def permutation(n: int, seed: int, tag: int, index: int, order: str = "random",
                pages: np.ndarray | None = None, window: int = 1) -> np.ndarray:
    """Permutation ``index`` (an epoch or a synthetic cycle) of ``range(n)`` for stream ``tag``.

    ``order``: ``random`` (uniform), ``sequential`` (identity) or ``quasi_random`` (page-local,
    needs ``pages``; see :func:`quasi_random_order`). Depends only on its arguments.
    """
    if order == "sequential":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(tag), int(index)])
    if order == "random":
        return rng.permutation(n).astype(np.int64)
    if order == "quasi_random":
        return quasi_random_order(pages, rng, window)
    raise LoaderConfigError(f"order={order!r}: use random, quasi_random or sequential")


def quasi_random_order(pages: np.ndarray, rng: np.random.Generator, window: int) -> np.ndarray:
    """A random order that reads .beton pages in small groups (FFCV's QUASI_RANDOM idea).

    Pages are shuffled and cut into windows of ``window`` pages; rows are shuffled within each
    window, and windows follow each other. A loader that caches pages (FFCV's process cache)
    then needs only about one window of pages in memory at a time.
    """
    pages = np.asarray(pages)
    uniq, inverse = np.unique(pages, return_inverse=True)
    page_rank = rng.permutation(len(uniq))[inverse]
    win = page_rank // max(1, int(window))
    noise = rng.random(len(pages))
    return np.lexsort((noise, win)).astype(np.int64)


@dataclasses.dataclass
class EpochPlan:
    """The batches of one epoch on one rank: ``rows`` concatenated, ``sizes[b]`` rows each,
    ``num_real[b]`` of them real (first)."""

    rows: np.ndarray
    sizes: np.ndarray
    num_real: np.ndarray

    def __post_init__(self):
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.sizes)

    def batch(self, b: int) -> np.ndarray:
        return self.rows[self.starts[b]:self.starts[b + 1]]

    def skip(self, start_batch: int) -> "EpochPlan":
        """The same epoch without its first ``start_batch`` batches (resume mid-epoch)."""
        s = int(self.starts[min(start_batch, len(self))])
        return EpochPlan(self.rows[s:], self.sizes[start_batch:], self.num_real[start_batch:])


def _rank_block(flat: np.ndarray, steps: int, world: int, rank: int, n: int) -> np.ndarray:
    """From ``steps * world * n`` rows in step order, rank ``rank``'s ``(steps, n)`` block."""
    return flat[:steps * world * n].reshape(steps, world, n)[:, rank]


@dataclasses.dataclass
class _Domain:
    """What a plan needs of one source: its rows (in the loader's row space) and pages."""

    rows: np.ndarray
    pages: np.ndarray

    @classmethod
    def of(cls, source, offset: int) -> "_Domain":
        return cls(np.asarray(source.rows, np.int64) + offset, np.asarray(source.pages))

    def __len__(self) -> int:
        return len(self.rows)


class _Plan:
    batch_size: int
    num_batches: int

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int) -> EpochPlan:  # pragma: no cover - interface
        raise NotImplementedError


class DualPlan(_Plan):
    """Fixed split: ``n_real`` real rows then ``n_syn`` synthetic rows per batch (module doc)."""

    def __init__(self, real, synthetic, batch_size: int, share: float, seed: int = 0,
                 rank: int = 0, world: int = 1, order: str = "random", window_pages: int = 0,
                 real_offset: int = 0, synthetic_offset: int = 0):
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.order = order
        self.n_syn = synthetic_rows(batch_size, share)
        self.n_real = batch_size - self.n_syn
        self.real = _Domain.of(real, real_offset) if real is not None else None
        self.syn = _Domain.of(synthetic, synthetic_offset) if synthetic is not None else None
        self.window = window_pages or 2 * batch_size
        if self.n_real and self.real is None:
            raise LoaderConfigError(f"synthetic_share={share} asks for {self.n_real} real rows "
                                    "per batch but no real source was given")
        if self.n_syn and self.syn is None:
            raise LoaderConfigError(f"synthetic_share={share} asks for {self.n_syn} synthetic "
                                    "rows per batch but no synthetic source was given")
        if 0 < share < 1 and (self.n_real == 0 or self.n_syn == 0):
            raise LoaderConfigError(
                f"batch_size={batch_size} cannot hold a {share:g} synthetic share: round(B*p) "
                f"gives {self.n_syn} synthetic and {self.n_real} real rows; use a batch size "
                f">= {math.ceil(1 / min(share, 1 - share))} or synthetic_share 0 or 1")
        lead, n_lead = (self.real, self.n_real) if self.n_real else (self.syn, self.n_syn)
        self.num_batches = len(lead) // (world * n_lead)
        if self.num_batches == 0:
            what = "real" if self.n_real else "synthetic"
            raise LoaderConfigError(
                f"the {what} set has {len(lead)} rows, fewer than one batch of {n_lead} {what} "
                f"rows on each of {world} process(es); use a smaller batch_size")

    def _real_rows(self, epoch: int) -> np.ndarray:
        d = self.real
        perm = permutation(len(d), self.seed, ORDER_TAGS["real"], epoch, self.order, d.pages,
                           self.window)
        return _rank_block(d.rows[perm], self.num_batches, self.world, self.rank, self.n_real)

    def synthetic_positions(self, start: int, count: int) -> np.ndarray:
        """Positions ``start..start+count-1`` of the endless synthetic stream (each cycle of
        ``S`` positions is one permutation of the synthetic set)."""
        d = self.syn
        s = len(d)
        pos = np.arange(start, start + count, dtype=np.int64)
        cycle, offset = np.divmod(pos, s)
        out = np.empty(count, dtype=np.int64)
        for c in np.unique(cycle):
            m = cycle == c
            perm = permutation(s, self.seed, ORDER_TAGS["synthetic"], int(c), self.order,
                               d.pages, self.window)
            out[m] = perm[offset[m]]
        return out

    def _synthetic_rows(self, epoch: int) -> np.ndarray:
        per_epoch = self.num_batches * self.world * self.n_syn
        pos = self.synthetic_positions(epoch * per_epoch, per_epoch)
        return _rank_block(self.syn.rows[pos], self.num_batches, self.world, self.rank,
                           self.n_syn)

    def epoch(self, epoch: int) -> EpochPlan:
        nb = self.num_batches
        parts = []
        if self.n_real:
            parts.append(self._real_rows(epoch))
        if self.n_syn:
            parts.append(self._synthetic_rows(epoch))
        rows = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return EpochPlan(rows.reshape(-1), np.full(nb, self.batch_size, np.int64),
                         np.full(nb, self.n_real, np.int64))


class UnionPlan(_Plan):
    """Both domains pooled and shuffled together; real rows first in each batch (module doc).
    With one domain it is the plain single-source train order."""

    def __init__(self, domains: list, batch_size: int, seed: int = 0, rank: int = 0,
                 world: int = 1, order: str = "random", window_pages: int = 0,
                 num_real_domains: int = 1, offsets=None, drop_last: bool = True):
        offsets = offsets or [0] * len(domains)
        ds = [_Domain.of(s, o) for s, o in zip(domains, offsets)]
        self.rows = np.concatenate([d.rows for d in ds])
        self.pages = np.concatenate([d.pages for d in ds])
        self.n_real_rows = sum(len(d) for d in ds[:num_real_domains])
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.order, self.window = order, window_pages or 2 * batch_size
        self.drop_last = drop_last
        n = len(self.rows)
        per_step = world * batch_size
        self.num_batches = n // per_step if drop_last else -(-n // per_step)
        if self.num_batches == 0:
            raise LoaderConfigError(f"{n} rows are fewer than one batch of {batch_size} on each "
                                    f"of {world} process(es); use a smaller batch_size")

    def epoch(self, epoch: int) -> EpochPlan:
        n, nb, b = len(self.rows), self.num_batches, self.batch_size
        perm = permutation(n, self.seed, ORDER_TAGS["union"], epoch, self.order, self.pages,
                           self.window)
        if not self.drop_last and nb * self.world * b > n:
            # pad by wrapping around (as torch's DistributedSampler does) so ranks stay equal
            perm = np.concatenate([perm, perm[:nb * self.world * b - n]])
        block = _rank_block(perm, nb, self.world, self.rank, b)  # (nb, b) positions
        is_syn = block >= self.n_real_rows
        block = np.take_along_axis(block, np.argsort(is_syn, axis=1, kind="stable"), axis=1)
        num_real = (~is_syn).sum(axis=1).astype(np.int64)
        return EpochPlan(self.rows[block.reshape(-1)], np.full(nb, b, np.int64), num_real)


class SequentialPlan(_Plan):
    """Every row once, in order; rank ``r`` takes the ``r``-th contiguous share (sizes differ
    by at most one row); the last batch of a rank may be short (evaluation)."""

    def __init__(self, source, batch_size: int, rank: int = 0, world: int = 1, offset: int = 0,
                 real: bool = True):
        d = _Domain.of(source, offset)
        bounds = np.linspace(0, len(d), world + 1).round().astype(np.int64)
        self.rows = d.rows[bounds[rank]:bounds[rank + 1]]
        self.batch_size, self.real = batch_size, real
        self.num_batches = -(-len(self.rows) // batch_size)

    def epoch(self, epoch: int) -> EpochPlan:
        n, b = len(self.rows), self.batch_size
        sizes = np.full(self.num_batches, b, np.int64)
        if n % b:
            sizes[-1] = n % b
        return EpochPlan(self.rows.copy(), sizes, sizes.copy() if self.real else 0 * sizes)
