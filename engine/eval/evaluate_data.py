"""``synthclone eval-data``'s pipeline: diagnostics of a dataset (.beton), generated or real.

1. read the labels, draw at most ``images_per_class`` images per class (seeded);
2. CLIP diversity per class and the CLIP score against "a photo of a {c}." (needs
   ``--clip-pretrained``);
3. Inception Score of the file; FID and per-class FID against ``--reference`` (needs
   ``--inception``);
4. the generated-image detector of seed 000 A.7 (needs ``--reference`` and
   ``--detector.weights``).

Each part whose inputs are missing is skipped and listed in ``skipped`` with the flag to pass.
"""
from __future__ import annotations

import os

import numpy as np

from engine.eval.beton_input import BetonImages
from engine.eval.config import EvalDataConfig
from engine.eval.evaluate import log
from engine.eval.images import ImageDataset, file_fingerprint, identity, resolve_device
from engine.eval.sets import read_labelled_beton

SCHEMA = "synthclone.eval-data/1"


def per_class_draw(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices: at most ``limit`` per class (a seeded draw), all when None."""
    if limit is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:limit] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def describe_file(path: str, labels: np.ndarray) -> dict:
    counts = np.bincount(labels) if len(labels) else np.zeros(0)
    present = counts[counts > 0]
    return {"path": os.path.abspath(path), "hash": file_fingerprint(path),
            "num_images": int(len(labels)), "num_classes": int(len(present)),
            "images_per_class": {"min": int(present.min()) if len(present) else 0,
                                 "max": int(present.max()) if len(present) else 0}}


def evaluate_data(path: str, cfg: EvalDataConfig) -> tuple[dict, dict]:
    """``(results, extras)``; extras holds arrays for plots (CLIP scores)."""
    labels = read_labelled_beton(path, "eval-data")
    ref_labels = read_labelled_beton(cfg.reference, "--reference") if cfg.reference else None
    device = resolve_device(cfg.device)
    results = {"schema": SCHEMA, "command": "eval-data", "file": describe_file(path, labels),
               "reference": describe_file(cfg.reference, ref_labels) if cfg.reference else None,
               "skipped": []}
    extras = {}
    chosen = per_class_draw(labels, cfg.images_per_class, cfg.seed)
    ref_chosen = (per_class_draw(ref_labels, cfg.images_per_class, cfg.seed)
                  if cfg.reference else None)
    if cfg.images_per_class is not None:
        results["images_per_class"] = cfg.images_per_class

    # 2. CLIP
    if cfg.clip_pretrained:
        results["clip"], extras["clip_scores"] = _clip(path, labels, chosen, cfg, device)
    else:
        results["skipped"].append("clip: pass --clip-pretrained TAG_OR_FILE")

    # 3. Inception: IS and FID
    if cfg.inception:
        results["inception"] = _inception(path, labels, chosen, ref_labels, ref_chosen, cfg,
                                          device)
    else:
        results["skipped"].append("inception score / FID: pass --inception FILE")

    # 4. detector
    if cfg.reference and cfg.detector.weights:
        results["detector"] = _detector(path, labels, cfg, device)
    else:
        results["skipped"].append("detector: pass --reference real.beton and "
                                  "--detector.weights FILE")
    return results, extras


def _clip(path, labels, chosen, cfg: EvalDataConfig, device):
    from engine.clip import TEMPLATE, load_clip
    from engine.eval.clip_stats import clip_report, embed_images
    from engine.catalog import class_names

    clip = load_clip(cfg.clip_model, cfg.clip_pretrained, device=device,
                     batch_size=cfg.batch_size)
    emb = embed_images(clip, ImageDataset(chosen.tolist(), identity, path),
                       batch_size=cfg.batch_size, workers=cfg.workers, progress=cfg.progress,
                       desc="clip")
    sel = labels[chosen]
    classes = sorted(set(sel.tolist()))
    text = None
    if all(0 <= c < 1000 for c in classes):
        names = class_names()
        t = clip.encode_texts([TEMPLATE.format(names[c]) for c in classes]).numpy()
        text = dict(zip(classes, t))
    summary, scores = clip_report(emb, sel, text, cfg.score_threshold)
    summary.update(model=cfg.clip_model, pretrained=cfg.clip_pretrained, template=TEMPLATE)
    if text is None:
        summary["score_note"] = "labels outside ImageNet-1K: no class names, no CLIP score"
    log(f"clip: diversity {summary['diversity']:.4f}"
        + (f", score {summary['score_mean']:.4f}, {summary['share_below_threshold']:.1%} below "
           f"{cfg.score_threshold}" if text is not None else ""))
    return summary, scores


def _inception(path, labels, chosen, ref_labels, ref_chosen, cfg: EvalDataConfig, device):
    from engine.eval.inception import (INPUT_SIZE, fid, inception_features, inception_score,
                                       load_inception)
    from engine.catalog import imagenet_wnids

    net = load_inception(cfg.inception, device)
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers, device=device,
              progress=cfg.progress)

    def pixels(file, items):  # uint8, short side to 299 and center crop (the net resizes again)
        return BetonImages(file, items.tolist(), crop=INPUT_SIZE, resize=INPUT_SIZE,
                           backend=cfg.backend, dtype="uint8")

    pool, logits = inception_features(net, pixels(path, chosen), desc="inception", **kw)
    out = {"weights": os.path.abspath(cfg.inception),
           "inception_score": inception_score(logits, cfg.is_splits, cfg.seed)}
    log(f"inception score {out['inception_score']['mean']:.3f}")
    if ref_labels is not None:
        from engine.eval.inception import per_class_fid

        ref_pool, _ = inception_features(net, pixels(cfg.reference, ref_chosen),
                                         desc="inception (reference)", **kw)
        pc = per_class_fid(pool, labels[chosen], ref_pool, ref_labels[ref_chosen])
        wnid = (lambda l: imagenet_wnids()[l] if 0 <= l < 1000 else str(l))  # noqa: E731
        out["fid"] = fid(pool, ref_pool)
        out["fid_per_class"] = {"mean": pc["mean"], "classes": pc["classes"],
                                "per_class": {wnid(l): v for l, v in pc["per_class"].items()}}
        log(f"FID {out['fid']:.3f}; per-class FID {pc['mean']:.3f} over {pc['classes']} classes")
    return out


def _detector(path, labels, cfg: EvalDataConfig, device):
    from engine.eval.checkpoint import load_model
    from engine.eval.detector import detector_report, split_real_generated
    from engine.eval.inference import run_model

    d = cfg.detector
    backbone = load_model(d.weights, model=d.arch, device=device)
    ref_labels = read_labelled_beton(cfg.reference, "--reference")
    real_idx, gen_idx, n_train = split_real_generated(len(ref_labels), len(labels),
                                                      d.train_images, d.test_images, cfg.seed)
    kw = dict(batch_size=cfg.batch_size, workers=cfg.workers, device=device,
              progress=cfg.progress)
    # resize 256, center crop 224 (BetonImages' default), as the backbone was trained
    real = run_model(backbone, BetonImages(cfg.reference, real_idx.tolist(), backend=cfg.backend),
                     desc="detector (real)", **kw)["features"]
    gen = run_model(backbone, BetonImages(path, gen_idx.tolist(), backend=cfg.backend),
                    desc="detector (generated)", **kw)["features"]
    out = detector_report(real, gen, n_train, d, cfg.seed)
    out["weights"] = {"path": os.path.abspath(d.weights), "sha256": backbone.sha256}
    if len(real_idx) * 2 < d.train_images + d.test_images:
        out["note"] = (f"only {len(real_idx)} images per domain available; seed 000 uses "
                       f"{(d.train_images + d.test_images) // 2}")
    log(f"detector: linear {out['linear']['top1']:.2f}, mlp {out['mlp']['top1']:.2f}")
    return out
