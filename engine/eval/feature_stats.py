"""Feature diagnostics of seed 001 §3.3 / seed 002 App. B.1 (Fig. 5), on frozen features.

All four are computed on ℓ2-normalised features ``X`` (N samples x d dims): the papers state it
for sparsity and intra-class distance; Pearson correlation does not depend on a dimension's
scale, and the coding rate [Yu et al., MCR²] assumes features on the unit sphere.

* **sparsity**: percentage of entries with ``|x| < 1e-5`` (the share of dims "close to zero",
  averaged over samples);
* **intra-class distance**: per class, the mean ℓ2 distance over all pairs of its samples; the
  mean over classes with at least two samples;
* **redundancy** ``R = (1/d²) Σ_i Σ_j |ρ(X[:, i], X[:, j])|`` with ρ the Pearson correlation of
  two dimensions over the samples (the diagonal counts, ρ = 1). A constant dimension (a dead
  ReLU unit) has no correlation: its row and column count as 0;
* **coding length** ``R(X, ε) = ½ log det(I_d + d / (N ε²) XᵀX)`` with ε² = 0.5 (natural log,
  nats; the coding rate per sample of Ma et al. / Yu et al.).
"""
from __future__ import annotations

import numpy as np

SPARSITY_THRESHOLD = 1e-5
EPS_SQUARED = 0.5


CHUNK = 8192
"""Rows per block when accumulating XᵀX (bounded memory on 50k x 2048 features)."""


def l2_normalize(x) -> np.ndarray:
    """Rows scaled to unit ℓ2 norm (float32 stays float32; anything else becomes float64)."""
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _moments(x):
    """``(XᵀX, column sums)`` in float64, accumulated over row blocks."""
    d = x.shape[1]
    gram, total = np.zeros((d, d)), np.zeros(d)
    for start in range(0, len(x), CHUNK):
        block = np.asarray(x[start:start + CHUNK], dtype=np.float64)
        gram += block.T @ block
        total += block.sum(axis=0)
    return gram, total


def sparsity(x, threshold: float = SPARSITY_THRESHOLD) -> float:
    """Percent of entries of ``x`` with magnitude below ``threshold``."""
    x = np.asarray(x)
    return float(100.0 * np.mean(np.abs(x) < threshold))


def intra_class_distance(x, labels) -> float:
    """Mean over classes (>= 2 samples) of the mean pairwise ℓ2 distance within the class."""
    import torch

    x, labels = np.asarray(x), np.asarray(labels)
    means = []
    for c in np.unique(labels):
        xc = torch.from_numpy(np.ascontiguousarray(x[labels == c], dtype=np.float64))
        n = len(xc)
        if n < 2:
            continue
        d = torch.cdist(xc, xc)                                               # (n, n)
        means.append(float(d.sum()) / (n * (n - 1)))  # diagonal is 0
    return float(np.mean(means)) if means else float("nan")


def redundancy(x) -> float:
    """``(1/d²) Σ_i Σ_j |ρ_ij|``; constant dimensions contribute 0."""
    n, d = np.shape(x)
    gram, total = _moments(x)
    cov = gram - np.outer(total, total) / n                                   # n · covariance
    var = np.diag(cov).copy()
    live = var > 1e-10 * np.maximum(np.diag(gram), 1e-300)  # constant columns: var ~ 0
    std = np.sqrt(var[live])
    rho = cov[np.ix_(live, live)] / np.outer(std, std)                        # (d', d')
    return float(np.abs(rho).sum() / d ** 2)


def coding_length(x, eps_squared: float = EPS_SQUARED) -> float:
    """``½ log det(I_d + d/(N ε²) XᵀX)`` in nats."""
    n, d = np.shape(x)
    gram, _ = _moments(x)                                                     # (d, d)
    sign, logdet = np.linalg.slogdet(np.eye(d) + (d / (n * eps_squared)) * gram)
    assert sign > 0  # I + PSD is positive definite
    return float(0.5 * logdet)


def feature_diagnostics(features, labels) -> dict:
    """The four diagnostics on ℓ2-normalised ``features`` (N, d)."""
    x = l2_normalize(features)
    constant = int((np.ptp(x, axis=0) == 0).sum()) if len(x) else 0
    return {"sparsity_pct": sparsity(x), "intra_class_l2": intra_class_distance(x, labels),
            "redundancy": redundancy(x), "coding_length": coding_length(x),
            "num_samples": int(x.shape[0]), "dim": int(x.shape[1]),
            "constant_dims": constant, "normalized": "l2"}
