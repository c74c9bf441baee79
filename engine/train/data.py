"""What the training loop needs from a loader, and batches from tensors held in memory.

The loop accepts any *train loader*: an iterable of :class:`loaders.batch.Batch`
(``images, labels, num_real = batch``; real rows first) with

* ``len(loader)`` — batches per epoch for this process;
* ``set_epoch(epoch, start_batch=0)`` — the next iteration is epoch ``epoch`` (a seeded order,
  the same on every rank) from its batch ``start_batch`` (an exact resume skips the batches
  already trained on without decoding them);
* ``set_image_size(size)`` (optional) — progressive resizing (ffcv-imagenet 160 -> 192).

``loaders.mixing.DualDomainLoader`` is the product's loader (FFCV / DALI / torchvision
backends); :class:`TensorSource` yields the same batches from tensors in memory (the model's
throughput limit in ``bench train_step``, and tiny tests).
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from loaders.batch import Batch


def split_batch(batch_size: int, synthetic_share: float) -> tuple[int, int]:
    """``(num_real, num_synthetic)`` of a batch: exactly ``round(B * p)`` synthetic rows."""
    n_syn = int(round(batch_size * synthetic_share))
    return batch_size - n_syn, n_syn


class TensorSource:
    """Dual-domain batches from in-memory tensors, with the train-loader contract above.

    ``real`` / ``synthetic`` are ``(images (N, 3, H, W), labels (N,))`` pairs (either may be
    None). Every batch of this process holds ``batch_size`` rows: ``round(batch_size * p)``
    synthetic after ``batch_size - round(batch_size * p)`` real. Each epoch permutes each
    domain with a generator seeded by ``(seed, epoch, domain)``; the epoch ends when the
    *driving* domain (real when present) is used up once across all ranks; the other domain
    continues through its own permutations. Rank ``r`` of ``world_size`` takes the ``r``-th
    slice of every global batch.
    """

    def __init__(self, real=None, synthetic=None, *, batch_size: int, synthetic_share: float,
                 seed: int = 0, rank: int = 0, world_size: int = 1, device=None):
        if real is None and synthetic is None:
            raise ValueError("TensorSource needs real and/or synthetic tensors")
        self.domains = {"real": real, "synthetic": synthetic}
        self.n_real, self.n_syn = split_batch(batch_size, synthetic_share)
        if self.n_real and real is None or self.n_syn and synthetic is None:
            raise ValueError(f"synthetic_share={synthetic_share} needs both domains")
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.device = device
        self.epoch, self.start_batch, self.resolution = 0, 0, None
        self._perms: dict = {}
        drive = "real" if self.n_real else "synthetic"
        per_batch = (self.n_real if drive == "real" else self.n_syn) * world_size
        self._len = len(self.domains[drive][1]) // per_batch
        if self._len < 1:
            raise ValueError(f"{len(self.domains[drive][1])} {drive} rows make no batch of "
                             f"{per_batch} {drive} rows across {world_size} process(es)")

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= self._len:
            raise ValueError(f"start_batch={start_batch} outside [0, {self._len}]")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def set_image_size(self, size: int) -> None:
        self.resolution = int(size)

    def labels(self) -> torch.Tensor:
        """All labels of both domains (for the label-space check)."""
        return torch.cat([d[1] for d in self.domains.values() if d is not None])

    def _order(self, domain: str, index: int, count: int) -> torch.Tensor:
        """Rows ``[index, index + count)`` of the domain's endless epoch-seeded order."""
        n = len(self.domains[domain][1])
        out, pos = [], index
        while len(out) < count:
            cycle, offset = divmod(pos, n)
            perm = self._perm(domain, cycle, n)
            take = min(count - len(out), n - offset)
            out += perm[offset:offset + take].tolist()
            pos += take
        return torch.tensor(out, dtype=torch.long)

    def _perm(self, domain: str, cycle: int, n: int) -> torch.Tensor:
        key = (self.epoch, cycle, domain)
        if key not in self._perms:
            seed = np.random.SeedSequence([self.seed, self.epoch, cycle, domain == "real"])
            g = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
            self._perms = {key: torch.randperm(n, generator=g), **{
                k: v for k, v in self._perms.items() if k[0] == self.epoch}}
        return self._perms[key]

    def _batch(self, i: int) -> Batch:
        parts_x, parts_y, parts_id, parts_src = [], [], [], []
        for source, (domain, n) in enumerate((("real", self.n_real), ("synthetic", self.n_syn))):
            if not n:
                continue
            start = (i * self.world_size + self.rank) * n
            idx = self._order(domain, start, n)
            x, y = self.domains[domain]
            parts_x.append(x[idx])
            parts_y.append(y[idx])
            parts_id.append(idx)
            parts_src.append(torch.full((n,), source, dtype=torch.long))
        images, labels = torch.cat(parts_x), torch.cat(parts_y)
        if self.resolution and images.shape[-1] != self.resolution:
            images = F.interpolate(images.float(), size=(self.resolution, self.resolution),
                                   mode="bilinear", antialias=True, align_corners=False)
        if self.device is not None:
            images, labels = images.to(self.device), labels.to(self.device)
        # sample_id: the row of its domain; source: 0 real, 1 synthetic (as loaders' batches)
        return Batch(images, labels, self.n_real, sample_id=torch.cat(parts_id),
                     source=torch.cat(parts_src))

    def __iter__(self):
        start, self.start_batch = self.start_batch, 0
        for i in range(start, self._len):
            yield self._batch(i)


class EvalTensorSource:
    """Evaluation batches (all rows once, in order) from ``(images, labels)`` in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 rank: int = 0, world_size: int = 1):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.rows = torch.arange(rank, len(labels), world_size)

    def __len__(self) -> int:
        return (len(self.rows) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for i in range(0, len(self.rows), self.batch_size):
            idx = self.rows[i:i + self.batch_size]
            yield Batch(self.images[idx], self.labels[idx], len(idx))


# ----------------------------------------------------------------------------- provenance


def beton_labels(path: str):
    """The ``label`` field of every sample of a .beton, read from its metadata table (no
    image is decoded)."""
    from loaders.beton import BetonReader

    with BetonReader(path) as r:
        names = list(r.fields)
        if "label" not in names:
            raise ValueError(f"{path} has no 'label' field (fields: {', '.join(names)})")
        return r.metadata[f"f{names.index('label')}"].astype("int64").copy()


def beton_record(path: str) -> dict:
    """What the run folder records about a .beton: size, sample count, ``index_sha256`` (the
    SHA-256 of its header and per-sample metadata: labels, sizes, data pointers; hashing the
    pixel pages of a multi-GB file would take longer than it is worth) and, when it was
    generated, the plan hash from its run folder (``clone.run/summary.json``)."""
    from loaders.beton import BetonReader

    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(24))
    with BetonReader(path) as r:
        h.update(r.metadata.tobytes())
        n = len(r)
    rec = {"path": os.path.abspath(path), "bytes": os.path.getsize(path), "samples": n,
           "index_sha256": h.hexdigest()}
    summary = os.path.join(os.path.splitext(path)[0] + ".run", "summary.json")
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as f:
            rec["plan_hash"] = json.load(f).get("plan_hash")
    return rec


# ----------------------------------------------------------------------------- the loaders


def _check_file(path: str | None, key: str) -> None:
    from engine.errors import ConfigError

    if path is not None and not os.path.exists(path):
        raise ConfigError(f"{key}: {path} not found; set {key}=PATH (a .beton from synthclone "
                          "pack / generate)")


def multicrop_view(cfg, base):
    """The train loader's config: ``base``, or with DINO multi-crop (``augment.local_crops``)
    the base view ``engine.train.augment.MultiCrop`` cuts its crops from: each whole image
    (``crop_scale`` 1-1, no flip; its aspect clamped to 3/4-4/3 as RandomResizedCrop's
    fallback does) as uint8 pixels at ``max(data.resolution, multicrop_base_view(...))`` px, so
    the smallest global crop is not upsampled (356 px for 224 px at 40 %) and no float image is
    normalised only to be turned back into pixels."""
    from engine.errors import ConfigError
    from engine.train.augment import multicrop_base_view

    a = cfg.augment
    if not a.local_crops:
        return base
    if cfg.data.min_resolution is not None:
        raise ConfigError("augment.local_crops (multi-crop) and data.min_resolution "
                          "(progressive resizing) do not combine: multi-crop sets the crop "
                          "sizes itself (augment.global_crop_size); unset one of them")
    size = multicrop_base_view(a.global_crop_size, a.global_crop_scale, cfg.data.resolution)
    return base.replace(dtype="uint8", crop_scale=(1.0, 1.0), flip=False, image_size=size)


def build_loaders(cfg, info, micro_batch: int, run_dir: str | None):
    """The training and evaluation loaders of ``cfg.data`` (``loaders.mixing``), the labels of
    each file (for the label-space check) and what the run folder records about the data.

    Low-data / long-tail subsets of the real set are drawn here (``loaders.subsets``, seeded by
    ``data.subset_seed``) and their index file is written into the run folder."""
    from engine.errors import ConfigError
    from engine.train.optim import resolution_at
    from loaders import subsets
    from loaders.config import LoaderConfig, MixConfig
    from loaders.mixing import DualDomainLoader, make_eval_loader
    from loaders.sources import as_source

    d = cfg.data
    if d.real is None and d.synthetic is None:
        raise ConfigError("no training data: set data.real and/or data.synthetic (.beton files)")
    for key in ("real", "synthetic", "eval"):
        _check_file(getattr(d, key), f"data.{key}")
    device = str(info.device) if info.device.type == "cuda" else "cpu"
    channels_last = (cfg.run.channels_last if cfg.run.channels_last is not None
                     else info.device.type == "cuda")
    base = LoaderConfig(backend=d.backend, batch_size=micro_batch, pipeline="train",
                        image_size=resolution_at(d, 0), device=device,
                        channels_last=channels_last, workers=d.workers, seed=cfg.run.seed,
                        os_cache=d.os_cache, distributed=info.enabled, rank=info.rank,
                        world_size=info.world_size, crop_scale=tuple(d.crop_scale),
                        flip=d.flip)
    train_cfg = multicrop_view(cfg, base)
    provenance = {key: beton_record(getattr(d, key)) for key in ("real", "synthetic", "eval")
                  if getattr(d, key) is not None and os.path.isfile(getattr(d, key))}
    real_subset = None
    if d.real is not None and (d.low_data_per_class or d.long_tail_gamma):
        spec = (subsets.SubsetSpec(kind="per_class", n=d.low_data_per_class, seed=d.subset_seed)
                if d.low_data_per_class else
                subsets.SubsetSpec(kind="long_tail", gamma=d.long_tail_gamma, seed=d.subset_seed))
        real_subset, record = subsets.make_subset(as_source(d.real), spec)
        if run_dir:
            path = subsets.save_subset(os.path.join(run_dir, "real_subset.json"), real_subset,
                                       record)
            provenance["real_subset"] = {"path": path, "rows": int(len(real_subset)),
                                         "spec": record["spec"]}
    share = d.share
    real = d.real if (share < 1 or d.mix_mode == "union") else None
    syn = d.synthetic if (share > 0 or d.mix_mode == "union") else None
    train = DualDomainLoader(real, syn, train_cfg,
                             MixConfig(synthetic_share=share, mode=d.mix_mode),
                             real_subset=real_subset if real is not None else None)
    evaluation = None
    if d.eval is not None:
        evaluation = make_eval_loader(d.eval, base, batch_size=d.eval_batch_size or micro_batch,
                                      image_size=d.eval_resolution,
                                      center_crop_ratio=d.eval_crop_ratio)
    labels = {"data.real": train.real.labels if train.real is not None else None,
              "data.synthetic": train.synthetic.labels if train.synthetic is not None else None,
              "data.eval": evaluation.sources[0].labels if evaluation is not None else None}
    return (train, evaluation), labels, provenance
