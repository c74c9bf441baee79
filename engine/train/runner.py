"""``train(cfg, out)``: a whole training run, read top to bottom.

1. processes and devices (DDP from torchrun/SLURM variables), threads, seeds
2. the run folder (rank 0): ``config.yaml`` (resolved config + git commit), ``data.json``
   (what the data files are: sizes, index hashes, plan hashes, subset index files)
3. loaders (``loaders.mixing``), the label space checked against the model's head
4. the model (torchvision/timm, DualBN), the trainer (optimizer, schedule, AMP, EMA)
5. ``--resume``: the checkpoint restores everything, the config must match
6. the epochs (``Trainer.fit``)
7. rank 0: ``model_real.pt`` (plain torchvision/timm weights), ``metrics.json``, ``curves.png``
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from engine.config import to_dict
from engine.errors import ConfigError
from engine.runs import RunDir
from engine.train import checkpoint as ckpt_io
from engine.train.config import TrainConfig
from engine.train.distributed import (DistInfo, barrier, broadcast_object, init_distributed,
                                      shutdown)
from engine.train.loop import Trainer
from engine.train.models import build_model, model_source


def micro_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Rows per forward pass on one process: global batch / (processes x accumulation)."""
    parts = world_size * cfg.optim.accum_steps
    if cfg.data.batch_size % parts:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} does not split into "
                          f"{world_size} process(es) x optim.accum_steps={cfg.optim.accum_steps}"
                          f"; choose a multiple of {parts}")
    return cfg.data.batch_size // parts


def resolve_num_classes(num_classes: int | None, labels: dict) -> int:
    """The head size: ``num_classes`` checked against the data's labels, or their max + 1.

    ``labels``: ``{"data.real": array, "data.synthetic": array, "data.eval": array}`` (any
    may be missing). Errors name the file whose labels do not fit."""
    present = {k: np.asarray(v) for k, v in labels.items() if v is not None and len(v)}
    if not present:
        if num_classes is None:
            raise ConfigError("cannot infer model.num_classes without labelled data; set it")
        return num_classes
    for where, lab in present.items():
        if lab.min() < 0:
            raise ConfigError(f"{where} has negative labels ({int(lab.min())})")
    train = [present[k] for k in ("data.real", "data.synthetic") if k in present]
    top = max(int(v.max()) for v in (train or list(present.values())))
    n = num_classes if num_classes is not None else top + 1
    for where, lab in present.items():
        if int(lab.max()) >= n:
            raise ConfigError(
                f"the labels of {where} go up to {int(lab.max())}, but the model's head has {n} "
                f"outputs (model.num_classes={n}): set model.num_classes to at least "
                f"{int(lab.max()) + 1}, or use data packed with the same label space "
                "(ImageNet-1K indices vs --compact-labels)")
    if "data.real" in present and "data.synthetic" in present:
        if not set(np.unique(present["data.real"])) & set(np.unique(present["data.synthetic"])):
            raise ConfigError("data.real and data.synthetic share no label: one was probably "
                              "made with compact labels and the other with ImageNet-1K indices")
    return n


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _loader_labels(loader) -> np.ndarray | None:
    fn = getattr(loader, "labels", None)
    if fn is None:
        return None
    value = fn() if callable(fn) else fn
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def train(cfg: TrainConfig, out: str, *, resume: bool = False, overwrite: bool = False,
          loaders=None, labels: dict | None = None, callbacks=()) -> dict:
    """Run the training ``cfg`` describes into the folder ``out`` (see the module doc).

    ``loaders``: ``(train_loader, eval_loader_or_None)`` to use instead of building them from
    ``cfg.data`` (tensors in memory for tests and the benchmark); ``labels`` then optionally
    gives their labels for the label-space check (else ``loader.labels()`` when it exists).
    ``callbacks``: ``fn(event, trainer)`` for ``"step"``, ``"checkpoint"``.
    """
    # 1. processes, devices, threads, seeds
    info = init_distributed(cfg.run.device, cfg.run.dist_backend)
    try:
        return _train(cfg, out, info, resume, overwrite, loaders, labels, callbacks)
    finally:
        shutdown(info)


def _train(cfg: TrainConfig, out: str, info: DistInfo, resume: bool, overwrite: bool, loaders,
           labels, callbacks) -> dict:
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    model_source(cfg.model)  # an unknown model name fails before anything is written
    micro = micro_batch_size(cfg, info.world_size)

    # 2. the run folder (rank 0 decides; the others follow)
    run = None
    if info.is_main:
        run = RunDir.create(out, overwrite=overwrite, resume=resume)
    barrier(info)
    ckpt = None
    if resume:
        ckpt = ckpt_io.load(os.path.join(out, ckpt_io.CHECKPOINT))

    # 3. loaders and the label space
    if loaders is None:
        from engine.train.data import build_loaders

        loaders, labels, provenance = build_loaders(cfg, info, micro, out if info.is_main else None)
    else:
        provenance = {"source": "in-memory tensors"}
    train_loader, eval_loader = loaders
    if labels is None:
        labels = {"data.real": _loader_labels(train_loader)}
        if eval_loader is not None:
            labels["data.eval"] = _loader_labels(eval_loader)
    num_classes = resolve_num_classes(cfg.model.num_classes, labels)
    if run is not None:
        run.write_config({"train": to_dict(cfg), "resolved": {
            "num_classes": num_classes, "synthetic_weight": cfg.synthetic_weight,
            "synthetic_share": cfg.data.share, "world_size": info.world_size,
            "micro_batch_size": micro}})
        run.write_json("data.json", provenance)

    # 4. model and trainer (same initial weights on every rank; per-rank augmentation seeds)
    _seed_everything(cfg.run.seed)
    model = build_model(cfg.model, num_classes, distributed=info.enabled)
    _seed_everything(cfg.run.seed * 1000 + 1 + info.rank)
    trainer = Trainer(cfg, info, model, train_loader, eval_loader, num_classes,
                      run.path if run else None, callbacks)

    # 5. resume
    if ckpt is not None:
        trainer.restore(ckpt, os.path.join(out, ckpt_io.CHECKPOINT))

    # 6. the epochs
    try:
        summary = trainer.fit()
    finally:
        trainer.log.close()
        for loader in loaders:
            if hasattr(loader, "close"):
                loader.close()

    # 7. outputs (rank 0)
    summary.update({"num_classes": num_classes, "model": cfg.model.name,
                    "dual_bn": cfg.model.dual_bn, "synthetic_weight": cfg.synthetic_weight,
                    "synthetic_share": cfg.data.share, "world_size": info.world_size})
    if run is not None:
        if cfg.run.export:
            ckpt_io.export_real(trainer.eval_model, run.file(ckpt_io.EXPORT), {
                "model": cfg.model.name, "source": model_source(cfg.model),
                "num_classes": num_classes, "img_size": cfg.model.img_size,
                "weights": "ema" if trainer.ema is not None else "model",
                "load_with": _load_hint(cfg, num_classes)})
            summary["export"] = run.file(ckpt_io.EXPORT)
        from engine.train.plots import plot_curves

        summary["plot"] = plot_curves(run.file("metrics.jsonl"), run.file("curves.png"),
                                      title=f"{cfg.model.name}, p={cfg.data.share:g}, "
                                            f"λ={cfg.synthetic_weight:g}")
        run.write_json("metrics.json", summary)
    return broadcast_object(summary, info)


def _load_hint(cfg: TrainConfig, n: int) -> str:
    if model_source(cfg.model) == "timm":
        extra = f", img_size={cfg.model.img_size}" if cfg.model.img_size else ""
        return (f"timm.create_model({cfg.model.name!r}, num_classes={n}{extra})"
                ".load_state_dict(torch.load('model_real.pt'))")
    return (f"torchvision.models.get_model({cfg.model.name!r}, num_classes={n})"
            ".load_state_dict(torch.load('model_real.pt'))")
