"""Run a model over a set once: logits and frozen features (the classifier's input) together.

Features are read by a forward hook on the classifier layer, so one pass gives both, for any
torchvision/timm model. Results are cached per (checkpoint hash, set fingerprint, items,
transform) under ``$SYNTHCLONE_CACHE/eval/outputs`` (``--no-feature-cache`` turns it off):
re-evaluating a checkpoint with other metrics, or a transfer probe with other settings, reads
the cache instead of the images.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

CACHE_VERSION = "1"


def outputs_key(checkpoint_sha: str, fingerprint: dict, items, transform_key: str) -> str:
    h = hashlib.sha256()
    for part in (CACHE_VERSION, checkpoint_sha, fingerprint["value"], transform_key):
        h.update(str(part).encode() + b"\0")
    for item in items:  # the exact selection (subsets, splits) and its order
        h.update(str(item).encode() + b"\n")
    return h.hexdigest()


def cache_path(key: str) -> str:
    from engine.paths import cache_dir

    return os.path.join(cache_dir("eval", "outputs"), key[:2], key + ".npz")


def _load_cached(path: str):
    try:
        with np.load(path) as z:
            return {"logits": z["logits"], "features": z["features"]}
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is recomputed


def _save_cached(path: str, out: dict) -> None:
    from engine.paths import atomic_write

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, logits=out["logits"], features=out["features"])


def run_model(loaded, dataset, *, batch_size: int = 64, workers: int = 0, device: str = "cpu",
              progress: bool = False, desc: str = "eval", cache_key: str | None = None) -> dict:
    """``{"logits": (N, K) float32, "features": (N, D) float32, "cached": bool}`` of ``loaded``
    (an :class:`engine.eval.checkpoint.LoadedModel`) over ``dataset`` (an
    :class:`engine.eval.images.ImageDataset` of files, or the
    :class:`engine.eval.beton_input.BetonImages` of a .beton, or an open
    :class:`engine.eval.beton_input.BetonStream`)."""
    path = cache_path(cache_key) if cache_key else None
    if path and os.path.isfile(path):
        hit = _load_cached(path)
        if hit is not None and len(hit["logits"]) == len(dataset):
            return {**hit, "cached": True}
    out = _forward_all(loaded, dataset, batch_size, workers, device, progress, desc)
    if path:
        _save_cached(path, out)
    return {**out, "cached": False}


def _forward_all(loaded, dataset, batch_size, workers, device, progress, desc) -> dict:
    import torch

    from engine.eval.images import image_batches

    captured = {}

    def hook(module, inputs, output):
        captured["features"] = inputs[0]

    model = loaded.model
    handle = loaded.head.register_forward_hook(hook)
    logits, feats = [], []
    try:
        with torch.inference_mode():
            for images in image_batches(dataset, batch_size=batch_size, workers=workers,
                                        device=device, progress=progress, desc=desc):
                # copies: the loader reuses its buffers and features may be views of them
                logits.append(model(images).float().cpu().clone())                # (B, K)
                feats.append(captured.pop("features").flatten(1).float().cpu().clone())  # (B, D)
    finally:
        handle.remove()
    if not logits:
        k, d = loaded.num_classes, loaded.head.in_features
        return {"logits": np.zeros((0, k), np.float32), "features": np.zeros((0, d), np.float32)}
    return {"logits": torch.cat(logits).numpy(), "features": torch.cat(feats).numpy()}
