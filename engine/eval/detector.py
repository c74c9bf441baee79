"""Seed 000 A.7's detector of generated images: can a classifier on frozen features tell real
from generated?

Features of an ImageNet-pretrained ResNet-50 (2048-d, the classifier's input) for equal numbers
of real and generated images; a linear classifier and a 2-layer MLP (1024 hidden units, ReLU)
trained with Adam, batch 128, 5,000 iterations on 10,000 vectors and tested on the other 2,000
(seed 000 reports 83 % and 86 %). The learning rate is not stated: Adam's default 1e-3.
"""
from __future__ import annotations

import numpy as np


def build_head(kind: str, dim: int, hidden: int):
    import torch.nn as nn

    if kind == "linear":
        return nn.Linear(dim, 2)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def train_classifier(kind, train, test, *, hidden=1024, iterations=5000, batch_size=128,
                     lr=1e-3, seed=0) -> dict:
    """Train a ``linear`` or ``mlp`` head on ``train=(x, y)``; test accuracy (percent) on
    ``test``. Batches walk seeded permutations of the training set, epoch after epoch."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    xtr = torch.as_tensor(np.asarray(train[0]), dtype=torch.float32)
    ytr = torch.as_tensor(np.asarray(train[1]), dtype=torch.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(kind, xtr.shape[1], hidden)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    order, pos = torch.randperm(len(xtr), generator=g), 0
    for _ in range(iterations):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(xtr), generator=g), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(head(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        xte = torch.as_tensor(np.asarray(test[0]), dtype=torch.float32)
        pred = head(xte).argmax(dim=1).numpy()
    return {"top1": float(100.0 * np.mean(pred == np.asarray(test[1]))),
            "final_train_loss": float(loss.item())}


def split_real_generated(n_real: int, n_gen: int, train: int, test: int, seed: int):
    """Seeded draws of real and generated indices and the train/test split of seed 000 A.7
    (half real, half generated; fewer when a set is smaller, keeping train:test)."""
    per_domain = min((train + test) // 2, n_real, n_gen)
    rng = np.random.default_rng(seed)
    real = np.sort(rng.permutation(n_real)[:per_domain])
    gen = np.sort(rng.permutation(n_gen)[:per_domain])
    n_train = int(round(per_domain * train / (train + test)))
    return real, gen, n_train


def detector_report(real_feats, gen_feats, n_train_per_domain: int, cfg, seed: int) -> dict:
    """Linear and MLP test accuracy on real (label 0) vs generated (label 1) features."""
    rng = np.random.default_rng(seed + 1)
    pr, pg = rng.permutation(len(real_feats)), rng.permutation(len(gen_feats))
    k = n_train_per_domain
    xtr = np.concatenate([real_feats[pr[:k]], gen_feats[pg[:k]]])
    ytr = np.concatenate([np.zeros(k, np.int64), np.ones(k, np.int64)])
    xte = np.concatenate([real_feats[pr[k:]], gen_feats[pg[k:]]])
    yte = np.concatenate([np.zeros(len(pr) - k, np.int64), np.ones(len(pg) - k, np.int64)])
    out = {"train_images": int(len(xtr)), "test_images": int(len(xte)),
           "iterations": cfg.iterations, "batch_size": cfg.batch_size, "lr": cfg.lr,
           "optimizer": "adam", "backbone": cfg.arch, "feature_dim": int(xtr.shape[1])}
    for kind in ("linear", "mlp"):
        out[kind] = train_classifier(kind, (xtr, ytr), (xte, yte), hidden=cfg.hidden,
                                     iterations=cfg.iterations, batch_size=cfg.batch_size,
                                     lr=cfg.lr, seed=seed)
    out["mlp"]["hidden"] = cfg.hidden
    return out
