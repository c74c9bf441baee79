"""CLIP diversity and CLIP score of a dataset (seed 004 App. E Table 7 and §4.5), through the
product's one CLIP loader (:func:`engine.clip.load_clip`).

* **Diversity** of a class: ``1 - mean_{i != j} cos(e_i, e_j)`` over the ℓ2-normalised CLIP
  image embeddings of its images (seed 004 App. E, after [63]); the dataset's diversity is the
  mean over classes with at least two images. Identical images give 0.
* **CLIP score** of an image: the cosine between its embedding and the text embedding of
  ``"a photo of a {c}."`` for its class c (seed 004 §4.5, as the generation filter uses it);
  reported as mean, per class, and the share of images below the threshold (0.3).
"""
from __future__ import annotations

import numpy as np


def diversity(embeddings) -> float:
    """``1 - mean pairwise cosine`` of ℓ2-normalised embeddings (n >= 2; i != j)."""
    e = np.asarray(embeddings, dtype=np.float64)
    n = len(e)
    if n < 2:
        return float("nan")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    s = e.sum(axis=0)
    off_diagonal = (s @ s - (e * e).sum()) / (n * (n - 1))  # Σ_{i≠j} cos / (n(n-1))
    return float(1.0 - off_diagonal)


def per_class_diversity(embeddings, labels) -> dict[int, float]:
    labels = np.asarray(labels)
    return {int(c): diversity(embeddings[labels == c]) for c in np.unique(labels)
            if (labels == c).sum() >= 2}


def embed_images(clip, dataset, *, batch_size: int, workers: int, progress: bool, desc: str):
    """CLIP image embeddings (N, D) of an :class:`engine.eval.images.ImageDataset` whose
    transform returns PIL images."""
    import sys

    import torch
    from tqdm import tqdm

    from engine.eval.images import collate_list, make_loader

    loader = make_loader(dataset, batch_size, workers, collate_fn=collate_list)
    out = [clip.encode_images(images) for images, _ in
           tqdm(loader, desc=desc, unit="batch", disable=not progress, file=sys.stderr,
                leave=False)]
    return torch.cat(out).numpy() if out else np.zeros((0, clip.embed_dim), np.float32)


def clip_report(embeddings, labels, text_embeddings: dict | None, threshold: float):
    """``(summary, scores)``: diversity per class and overall; with ``text_embeddings``
    ({label: (D,)}), the CLIP score of every image against its class prompt (else None)."""
    from engine.catalog import imagenet_wnids

    labels = np.asarray(labels)
    div = per_class_diversity(embeddings, labels)
    wnid = (lambda l: imagenet_wnids()[l] if 0 <= l < 1000 else str(l))  # noqa: E731
    out = {"diversity": float(np.mean(list(div.values()))) if div else float("nan"),
           "diversity_per_class": {wnid(l): v for l, v in sorted(div.items())},
           "num_images": int(len(labels))}
    if text_embeddings is not None:
        t = np.stack([text_embeddings[int(l)] for l in labels])               # (N, D)
        scores = (np.asarray(embeddings) * t).sum(axis=1)                     # (N,)
        out.update(score_mean=float(scores.mean()), threshold=threshold,
                   share_below_threshold=float(np.mean(scores < threshold)),
                   score_per_class={wnid(int(c)): float(scores[labels == c].mean())
                                    for c in np.unique(labels)})
        return out, scores
    return out, None
