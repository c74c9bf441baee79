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


def l2_normalize(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def sparsity(x, threshold: float = SPARSITY_THRESHOLD) -> float:
    """Percent of entries of ``x`` with magnitude below ``threshold``."""
    x = np.asarray(x)
    return float(100.0 * np.mean(np.abs(x) < threshold))


def intra_class_distance(x, labels) -> float:
    """Mean over classes (>= 2 samples) of the mean pairwise ℓ2 distance within the class."""
    import torch

    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    means = []
    for c in np.unique(labels):
        xc = torch.from_numpy(x[labels == c])
        n = len(xc)
        if n < 2:
            continue
        d = torch.cdist(xc, xc)                                               # (n, n)
        means.append(float(d.sum()) / (n * (n - 1)))  # diagonal is 0
    return float(np.mean(means)) if means else float("nan")


def redundancy(x) -> float:
    """``(1/d²) Σ_i Σ_j |ρ_ij|``; constant dimensions contribute 0."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    xc = x - x.mean(axis=0)
    std = np.sqrt((xc ** 2).sum(axis=0))
    live = std > 0
    z = xc[:, live] / std[live]
    rho = z.T @ z                                                             # (d', d')
    return float(np.abs(rho).sum() / d ** 2)


def coding_length(x, eps_squared: float = EPS_SQUARED) -> float:
    """``½ log det(I_d + d/(N ε²) XᵀX)`` in nats."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    gram = x.T @ x                                                            # (d, d)
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
