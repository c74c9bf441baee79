"""Inception Score and FID from a local Inception-v3 file, with torch-fidelity's network and
formulas (seed 004 Table 2: per-class FID; seed 003 Fig. 7b).

The weights file is the one torch-fidelity (and torchmetrics' FID/IS, which build on it)
downloads: ``weights-inception-2015-12-05-6726825d.pth``, a ``torch.save``'d state dict of
``torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3`` (the TF-2015
Inception converted to PyTorch). Nothing is downloaded: pass its path (``--inception FILE``);
copy it from a machine with internet or from ``~/.cache/torch/hub/checkpoints/``.

* IS: ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` splits of the ``logits_unbiased``
  (torch-fidelity's ``isc_features_to_metric``; mean and std over splits). A network whose
  outputs are uniform gives 1.
* FID: ``|μ_a - μ_b|² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^½)`` of the 2048-d pool features,
  computed exactly but faster than torch-fidelity's ``fid_statistics_to_metric`` (see
  :func:`fid`; tests compare the two); a set against itself gives 0.
  Per-class FID is the FID between the two sets' images of one class, averaged over the
  classes both sets hold (with at least ``min_images`` each).
"""
from __future__ import annotations

import os

import numpy as np

from engine.errors import UserError

FEATURES = ("2048", "logits_unbiased")
INPUT_SIZE = 299


class InceptionError(UserError):
    """An Inception weights file that is missing or does not fit the network."""


def load_inception(path: str, device: str = "cpu"):
    """torch-fidelity's Inception-v3 feature extractor with weights from ``path``."""
    import pickle

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if not os.path.isfile(path):
        raise InceptionError(f"Inception weights not found: {path} (torch-fidelity's "
                             "weights-inception-2015-12-05-6726825d.pth; nothing is downloaded)")
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES),
                                          feature_extractor_weights_path=path)
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError) as exc:
        raise InceptionError(f"{path} is not torch-fidelity's Inception-v3 state dict "
                             f"({' '.join(str(exc).split())[:300]})") from None
    return net.to(device).eval()


def inception_features(net, dataset, *, batch_size=64, workers=0, device="cpu",
                       progress=False, desc="inception") -> tuple[np.ndarray, np.ndarray]:
    """``(pool (N, 2048), logits (N, 1008))`` of uint8 CHW images: an
    :class:`engine.eval.images.ImageDataset` or :class:`engine.eval.beton_input.BetonImages`."""
    import torch

    from engine.eval.images import image_batches

    pools, logits = [], []
    with torch.inference_mode():
        for images in image_batches(dataset, batch_size=batch_size, workers=workers,
                                    device=device, progress=progress, desc=desc):
            pool, logit = net(images)
            pools.append(pool.float().cpu())
            logits.append(logit.float().cpu())
    if not pools:
        return np.zeros((0, 2048), np.float32), np.zeros((0, 1008), np.float32)
    return torch.cat(pools).numpy(), torch.cat(logits).numpy()


def inception_score(logits, splits: int = 10, seed: int = 2020) -> dict:
    import torch
    from torch_fidelity.metric_isc import (KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD,
                                           isc_features_to_metric)

    logits = torch.as_tensor(np.asarray(logits))
    splits = max(1, min(splits, len(logits)))
    r = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return {"mean": r[KEY_METRIC_ISC_MEAN], "std": r[KEY_METRIC_ISC_STD], "splits": splits,
            "num_images": int(len(logits))}


def fid(features_a, features_b) -> float:
    """FID of two feature sets (N_a, D), (N_b, D), exact, without a D x D non-symmetric
    eigendecomposition (torch-fidelity's ``fid_statistics_to_metric`` takes ~1 min per call at
    D = 2048 on one CPU core, i.e. hours for a per-class FID over 1000 classes).

    With A = (X - μ) / sqrt(N - 1), Σ = AᵀA and the non-zero eigenvalues of Σ_a Σ_b are the
    squared singular values of A_a A_bᵀ, so tr (Σ_a Σ_b)^½ = ||A_a A_bᵀ||_* (nuclear norm; an
    N_a x N_b matrix, small for per-class sets). When both sets are larger than D it is
    tr (Σ_a^½ Σ_b Σ_a^½)^½ from two symmetric eigendecompositions instead. Tests compare both
    against torch-fidelity's formula."""
    a = _centered(features_a)
    b = _centered(features_b)
    mu_a = np.asarray(features_a, dtype=np.float64).mean(axis=0)
    mu_b = np.asarray(features_b, dtype=np.float64).mean(axis=0)
    diff = mu_a - mu_b
    traces = float((a * a).sum() + (b * b).sum())  # tr Σ_a + tr Σ_b
    if min(len(a), len(b)) <= a.shape[1]:
        tr_sqrt = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        sa, sb = a.T @ a, b.T @ b                                              # (D, D)
        w, v = np.linalg.eigh(sa)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T                        # Σ_a^½
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0, None)).sum())
    return float(diff @ diff + traces - 2.0 * tr_sqrt)


def fid_reference(features_a, features_b) -> float:
    """torch-fidelity's own FID (the reference :func:`fid` is tested against)."""
    import torch
    from torch_fidelity.metric_fid import (KEY_METRIC_FID, fid_features_to_statistics,
                                           fid_statistics_to_metric)

    a = fid_features_to_statistics(torch.as_tensor(np.asarray(features_a, dtype=np.float64)))
    b = fid_features_to_statistics(torch.as_tensor(np.asarray(features_b, dtype=np.float64)))
    return float(fid_statistics_to_metric(a, b, verbose=False)[KEY_METRIC_FID])


def _centered(x) -> np.ndarray:
    """(X - mean) / sqrt(N - 1), so that AᵀA is the unbiased covariance (np.cov's)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    return (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)


def per_class_fid(features_a, labels_a, features_b, labels_b, min_images: int = 2) -> dict:
    """``{"mean", "per_class": {label: fid}, "classes"}`` over the classes both sets hold."""
    labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
    common = sorted(set(labels_a.tolist()) & set(labels_b.tolist()))
    per = {}
    for c in common:
        fa, fb = features_a[labels_a == c], features_b[labels_b == c]
        if len(fa) >= min_images and len(fb) >= min_images:
            per[int(c)] = fid(fa, fb)
    return {"mean": float(np.mean(list(per.values()))) if per else float("nan"),
            "per_class": per, "classes": len(per)}
