"""Subsets of a labelled set for the papers' regimes, saved as index files beside a run.

* :func:`per_class`: ``n`` random samples of every class (low-data regime, seed 003 §4.3 and
  App. B: N in {100, 200, 500} real images per class).
* :func:`long_tail`: class ``k`` (1-based, in a seeded random class order) keeps
  ``n_k = floor(n_1 * gamma ** (-(k-1)/(K-1)))`` samples (seed 003 §4.3, Cui et al. 2019's
  exponential profile; gamma in {50, 100, 200}, n_1 = 1300 = the largest ImageNet class).
  A class with fewer samples than ``n_k`` keeps all it has (recorded as ``clipped``).
* :func:`fraction`: ``round(f * reference)`` samples, class-stratified (seed 004 §4.3: 25/50/100%
  of the real set; 50/100/200% generated relative to the real set's size).

Every function takes the label of each *position* of a source and returns sorted positions;
the result depends only on (labels, parameters, seed). :class:`SubsetSpec` is the documented
config form (``train: data: real_subset: {kind: per_class, n: 100}``), :func:`make_subset`
applies it to a :class:`loaders.sources.BetonSource`, and :func:`save_subset` /
:func:`load_subset` write and read the index file (JSON: kind, parameters, seed, the files and
their sizes, per-class counts, and the row indices of the concatenated files).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from typing import Literal

import numpy as np

from loaders.errors import LoaderConfigError, LoadersError

__all__ = ["per_class", "long_tail", "long_tail_sizes", "fraction", "SubsetSpec", "make_subset",
           "save_subset", "load_subset", "class_counts", "SubsetFileError", "SUBSET_FORMAT"]

SUBSET_FORMAT = "synthclone-subset/1"
"""``format`` value of an index file."""
_TAGS = {"per_class": 11, "long_tail": 12, "fraction": 13}
"""Per-kind seed tags, so subsets of different kinds with one seed are independent."""
_EPS = 1e-9
"""Added before flooring n_1 * gamma^x, so exact integers (1300/100 = 13) do not floor to 12."""


class SubsetFileError(LoadersError, ValueError):
    """An index file that is missing, unreadable or made for other files."""


def _classes(labels) -> tuple[np.ndarray, list[np.ndarray]]:
    labels = np.asarray(labels, dtype=np.int64)
    classes, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(classes) + 1))
    return classes, [order[bounds[i]:bounds[i + 1]] for i in range(len(classes))]


def _pick(positions: np.ndarray, n: int, seed: int, kind: str, label: int) -> np.ndarray:
    if n >= len(positions):
        return positions
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _TAGS[kind], int(label) & 0xFFFFFFFF])
    return np.sort(rng.choice(positions, size=n, replace=False))


def per_class(labels, n: int, seed: int = 0, allow_fewer: bool = False) -> np.ndarray:
    """``n`` random positions of every class (sorted). A class with fewer than ``n`` samples
    is an error naming it, unless ``allow_fewer`` (it then keeps all of them)."""
    if n < 1:
        raise LoaderConfigError(f"per-class subset size {n}: must be >= 1")
    classes, members = _classes(labels)
    short = [(int(c), len(m)) for c, m in zip(classes, members) if len(m) < n]
    if short and not allow_fewer:
        raise LoaderConfigError(f"{len(short)} classes have fewer than {n} samples (label, "
                                f"count: {short[:5]}); lower N or allow fewer")
    out = [_pick(m, n, seed, "per_class", c) for c, m in zip(classes, members)]
    return np.sort(np.concatenate(out))


def long_tail_sizes(num_classes: int, gamma: float, n1: int) -> np.ndarray:
    """``n_k = floor(n_1 * gamma ** (-(k-1)/(K-1)))`` for k = 1..K (seed 003 §4.3)."""
    if gamma < 1:
        raise LoaderConfigError(f"imbalance ratio gamma={gamma}: must be >= 1")
    if n1 < 1 or num_classes < 1:
        raise LoaderConfigError(f"long tail needs n1 >= 1 and >= 1 class (n1={n1}, "
                                f"K={num_classes})")
    if num_classes == 1:
        return np.array([n1], dtype=np.int64)
    k = np.arange(1, num_classes + 1)
    return np.array([math.floor(n1 * gamma ** (-(i - 1) / (num_classes - 1)) + _EPS)
                     for i in k], dtype=np.int64)


def long_tail(labels, gamma: float, n1: int | None = None, seed: int = 0,
              return_info: bool = False):
    """Long-tailed positions: the class at rank k of a seeded random class order keeps
    ``n_k`` samples (``long_tail_sizes``); ``n1`` defaults to the largest class's size.
    With ``return_info``: also ``{"class_order": [...], "target": {label: n_k},
    "clipped": [labels that had fewer than n_k]}``."""
    classes, members = _classes(labels)
    n1 = int(n1 or max(len(m) for m in members))
    sizes = long_tail_sizes(len(classes), gamma, n1)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _TAGS["long_tail"], 0])
    rank_of = np.empty(len(classes), dtype=np.int64)
    rank_of[rng.permutation(len(classes))] = np.arange(len(classes))
    out, target, clipped = [], {}, []
    for i, (c, m) in enumerate(zip(classes, members)):
        n_k = int(sizes[rank_of[i]])
        target[int(c)] = n_k
        if len(m) < n_k:
            clipped.append(int(c))
        out.append(_pick(m, n_k, seed, "long_tail", c))
    pos = np.sort(np.concatenate(out))
    if not return_info:
        return pos
    order = [int(classes[j]) for j in np.argsort(rank_of)]
    return pos, {"class_order": order, "target": target, "clipped": clipped, "n1": n1}


def fraction(labels, f: float, seed: int = 0, reference: int | None = None) -> np.ndarray:
    """``round(f * reference)`` positions (``reference`` defaults to ``len(labels)``), split
    over classes in proportion to their sizes (largest remainders; ties to the smaller label).
    More than the set holds is an error."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    reference = n if reference is None else int(reference)
    total = int(math.floor(f * reference + 0.5))
    if not 0 < total <= n:
        raise LoaderConfigError(f"a fraction {f:g} of {reference} is {total} samples, but the set"
                                f" has {n}; use 0 < fraction * {reference} <= {n}")
    classes, members = _classes(labels)
    counts = np.array([len(m) for m in members], dtype=np.float64)
    quota = total * counts / n
    take = np.floor(quota).astype(np.int64)
    rest = total - int(take.sum())
    if rest:
        by_remainder = np.lexsort((classes, -(quota - take)))
        take[by_remainder[:rest]] += 1
    out = [_pick(m, int(t), seed, "fraction", c) for c, m, t in zip(classes, members, take)]
    return np.sort(np.concatenate(out))


def class_counts(labels) -> dict[int, int]:
    """``{label: count}`` sorted by label."""
    classes, counts = np.unique(np.asarray(labels, dtype=np.int64), return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts)}


@dataclasses.dataclass
class SubsetSpec:
    """A subset of a source, reproducible from its seed (seed 003 §4.3; seed 004 §4.3)."""

    kind: Literal["per_class", "long_tail", "fraction"] = "per_class"
    """per_class: n samples of each class; long_tail: n_k = floor(n1*gamma^(-(k-1)/(K-1)));
    fraction: a class-stratified fraction of the set."""
    n: int = 100
    """per_class: samples per class (seed 003: 100, 200 or 500)."""
    gamma: float = 100.0
    """long_tail: imbalance ratio n_1/n_K (seed 003: 50, 100 or 200)."""
    n1: int | None = None
    """long_tail: size of the largest class (seed 003: 1300); default the largest class."""
    fraction: float = 1.0
    """fraction: share of the set to keep (seed 004: 0.25, 0.5, 1)."""
    reference: int | None = None
    """fraction: the size that 1.0 refers to (default: the set's own size)."""
    seed: int = 0
    """Seed of the random picks (and of the long-tail class order)."""

    def __post_init__(self):
        if self.kind not in _TAGS:
            raise LoaderConfigError(f"subset kind {self.kind!r}: use per_class, long_tail or "
                                    "fraction")
        if self.kind == "per_class" and self.n < 1:
            raise LoaderConfigError(f"per_class n={self.n}: must be >= 1")
        if self.kind == "long_tail" and self.gamma < 1:
            raise LoaderConfigError(f"long_tail gamma={self.gamma}: must be >= 1")
        if self.kind == "fraction" and not self.fraction > 0:
            raise LoaderConfigError(f"fraction={self.fraction}: must be > 0")

    def apply(self, labels):
        """-> (sorted positions, extra info dict)."""
        if self.kind == "per_class":
            return per_class(labels, self.n, self.seed), {}
        if self.kind == "long_tail":
            return long_tail(labels, self.gamma, self.n1, self.seed, return_info=True)
        return fraction(labels, self.fraction, self.seed, self.reference), {}


def make_subset(source, spec: SubsetSpec) -> tuple[np.ndarray, dict]:
    """Apply ``spec`` to a :class:`BetonSource`: -> (rows of its concatenated files, record).
    The record is what :func:`save_subset` writes."""
    pos, info = spec.apply(source.labels)
    rows = np.asarray(source.rows)[pos]
    record = {"format": SUBSET_FORMAT, "spec": dataclasses.asdict(spec),
              "files": [{"path": os.path.abspath(p), "num_samples": int(n)}
                        for p, n in zip(source.paths, source.sizes)],
              "num_rows": int(len(rows)), "counts": class_counts(source.labels_all[rows]),
              **info}
    return rows, record


def save_subset(path: str, rows, record: dict) -> str:
    """Write an index file atomically (temp file + rename): ``record`` plus ``indices``."""
    data = {**record, "indices": [int(i) for i in np.asarray(rows)]}
    data["counts"] = {str(k): v for k, v in data.get("counts", {}).items()}
    if "target" in data:
        data["target"] = {str(k): v for k, v in data["target"].items()}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".subset-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            json.dump(data, f, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_subset(path: str, source=None) -> tuple[np.ndarray, dict]:
    """Read an index file -> (rows, record). With ``source``, check that the file was made for
    files of the same sizes (a subset of other files is an error naming both)."""
    try:
        with open(path, encoding="utf8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SubsetFileError(f"{path}: no such subset index file") from None
    except (OSError, ValueError) as exc:
        raise SubsetFileError(f"{path}: not a readable subset index file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SUBSET_FORMAT:
        raise SubsetFileError(f"{path}: not a subset index file (format is not "
                              f"{SUBSET_FORMAT!r})")
    rows = np.asarray(data.pop("indices"), dtype=np.int64)
    if source is not None:
        made_for = [int(f["num_samples"]) for f in data.get("files", [])]
        if made_for != [int(n) for n in source.sizes]:
            raise SubsetFileError(f"{path}: made for files of sizes {made_for}, but "
                                  f"{source.name} has sizes {[int(n) for n in source.sizes]}")
    return rows, data
