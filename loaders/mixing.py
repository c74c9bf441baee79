"""The loaders the trainer and the evaluation iterate: dual-domain, single-source and eval.

    from loaders.config import LoaderConfig, MixConfig
    from loaders.mixing import DualDomainLoader, make_loader, make_eval_loader

    cfg = LoaderConfig(backend="ffcv", batch_size=256, device="cuda", channels_last=True)
    train = DualDomainLoader("real.beton", ["syn_0.beton", "syn_1.beton"], cfg, MixConfig())
    for epoch in range(start_epoch, epochs):
        train.set_epoch(epoch)                     # optional: iterating advances the epoch
        for images, labels, num_real in train:     # loaders.batch.Batch, real rows first
            logits = model(images)                 # dual_bn_split(model, num_real)
    val = make_eval_loader("val.beton", cfg)       # center crop 224/256, every sample once

Every batch is a :class:`loaders.batch.Batch` (``images, labels, num_real`` plus ``sample_id``
and ``source``). Which rows form each batch is decided by :mod:`loaders.plan` from (seed, epoch,
rank, world size) alone, then decoded by the backend named in ``LoaderConfig.backend`` (ffcv,
dali, torchvision). Images are valid until the next batch is requested (FFCV reuses
its buffers): clone a batch to keep it longer.

Resume: ``state_dict()`` -> ``{"epoch", "batch"}``; ``load_state_dict(state)`` continues at
that batch of that epoch without decoding the skipped ones.
"""
from __future__ import annotations

import os

import numpy as np

from loaders.backends import get_backend
from loaders.config import LoaderConfig, MixConfig
from loaders.errors import LoaderConfigError
from loaders.plan import DualPlan, SequentialPlan, UnionPlan
from loaders.sources import BetonSource, as_source

__all__ = ["BatchLoader", "DualDomainLoader", "make_loader", "make_eval_loader",
           "resolve_rank", "LabelSpaceError"]


class LabelSpaceError(LoaderConfigError):
    """Two domains whose classes differ (e.g. compact labels vs ImageNet-1K indices)."""


def resolve_rank(config: LoaderConfig) -> tuple[int, int]:
    """``(rank, world_size)``: explicit config values, else torch.distributed when it is
    initialised, else the RANK/WORLD_SIZE variables torchrun sets; ``(0, 1)`` when not
    distributed."""
    if not config.distributed:
        return (config.rank or 0, config.world_size or 1)
    rank, world = config.rank, config.world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world = dist.get_world_size() if world is None else world
    except ImportError:  # pragma: no cover - torch is a base dependency
        pass
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
    if not 0 <= rank < world:
        raise LoaderConfigError(f"rank {rank} is outside world size {world}")
    return rank, world


class BatchLoader:
    """Iterate the batches of a plan through a backend (see module doc). Built by
    :class:`DualDomainLoader`, :func:`make_loader` and :func:`make_eval_loader`."""

    def __init__(self, sources: list[BetonSource], plan, config: LoaderConfig):
        self.sources, self.plan, self.config = sources, plan, config
        self.backend = get_backend(config.backend)(sources, config)
        self.epoch, self._start_batch, self._position = 0, 0, 0

    def __len__(self) -> int:
        """Batches per epoch on this process."""
        return self.plan.num_batches

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration epoch ``epoch``, starting at its batch ``start_batch``."""
        if epoch < 0 or not 0 <= start_batch <= len(self):
            raise LoaderConfigError(f"set_epoch({epoch}, start_batch={start_batch}): need "
                                    f"epoch >= 0 and 0 <= start_batch <= {len(self)}")
        self.epoch, self._start_batch = int(epoch), int(start_batch)

    def epoch_plan(self, epoch: int | None = None):
        """The :class:`loaders.plan.EpochPlan` of an epoch (default: the next one)."""
        return self.plan.epoch(self.epoch if epoch is None else epoch)

    def __iter__(self):
        epoch, start = self.epoch, self._start_batch
        plan = self.plan.epoch(epoch).skip(start)
        self._position = start
        for batch in self.backend.batches(plan, epoch):
            self._position += 1
            yield batch
        self.epoch, self._start_batch, self._position = epoch + 1, 0, 0

    def state_dict(self) -> dict:
        """Where the loader is: the epoch being read (or next) and batches already delivered."""
        return {"epoch": self.epoch, "batch": self._position or self._start_batch}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(int(state["epoch"]), int(state.get("batch", 0)))

    def set_image_size(self, size: int) -> None:
        """Output size of the following epochs (progressive resizing, e.g. 160 -> 192)."""
        if size < 1:
            raise LoaderConfigError(f"image size {size}: must be >= 1")
        self.backend.set_image_size(int(size))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_labels(real: BetonSource, syn: BetonSource, how: str) -> None:
    """Refuse domains whose label spaces differ (``how``: equal | subset | off), naming both:
    by the classes the files record (:mod:`loaders.sources`) when both do, else by label
    numbers."""
    if how == "off":
        return
    if real.classes and syn.classes:
        _check_recorded_classes(real, syn, how)
        return
    lr, ls = set(np.unique(real.labels).tolist()), set(np.unique(syn.labels).tolist())
    bad = ls - lr if how == "subset" else ls ^ lr
    if not bad:
        return
    def span(s):
        return f"{len(s)} classes, labels {min(s)}..{max(s)}" if s else "no classes"
    only_syn, only_real = sorted(ls - lr), sorted(lr - ls)
    raise LabelSpaceError(
        f"label spaces differ: real {real.name} has {span(lr)}; synthetic {syn.name} has "
        f"{span(ls)}" + (f"; only synthetic: {only_syn[:5]}" if only_syn else "")
        + (f"; only real: {only_real[:5]}" if only_real and how == "equal" else "")
        + f". {_LABEL_HINT}, or set label_check=subset/off if this is intended")


_LABEL_HINT = ("Were both made with the same labels (ImageNet-1K index vs --compact-labels)? "
               "Re-pack one of them")


def _check_recorded_classes(real: BetonSource, syn: BetonSource, how: str) -> None:
    """The label-space check by recorded class names/wnids (``loaders.sources.same_class``)."""
    from loaders.sources import class_key, same_class

    rc, sc = real.classes, syn.classes

    def used(source, classes) -> dict:  # class key -> label, for the labels the rows use
        return {(class_key(classes[k]) if k in classes else f"label {k}"): k
                for k in np.unique(source.labels).tolist()}

    def named(classes, label) -> str:
        e = classes.get(label)
        return f"{e.name!r}" + (f" ({e.wnid})" if e.wnid else "") if e else f"label {label}"

    ur, us = used(real, rc), used(syn, sc)
    moved = [(key, ur[key], us[key]) for key in sorted(set(ur) & set(us)) if ur[key] != us[key]]
    if moved:
        key, a, b = moved[0]
        raise LabelSpaceError(
            f"label spaces differ: real {real.name} and synthetic {syn.name} number the same "
            f"classes differently: {named(rc, a)} is label {a} in real but {b} in synthetic "
            f"({len(moved)} classes renumbered). {_LABEL_HINT}")
    clash = [k for k in sorted(set(rc) & set(sc)) if not same_class(rc[k], sc[k])]
    if clash:
        k = clash[0]
        raise LabelSpaceError(
            f"label spaces differ: label {k} is {named(rc, k)} in real {real.name} but "
            f"{named(sc, k)} in synthetic {syn.name} ({len(clash)} labels disagree). "
            f"{_LABEL_HINT}")
    only_syn = sorted(set(us) - set(ur), key=us.get)
    only_real = sorted(set(ur) - set(us), key=ur.get) if how == "equal" else []
    if only_syn or only_real:
        raise LabelSpaceError(
            f"label spaces differ: real {real.name} has {len(ur)} classes, synthetic "
            f"{syn.name} {len(us)}"
            + (f"; only synthetic: {', '.join(named(sc, us[k]) for k in only_syn[:5])}"
               if only_syn else "")
            + (f"; only real: {', '.join(named(rc, ur[k]) for k in only_real[:5])}"
               if only_real else "")
            + ". Were both made for the same classes? Set label_check=subset/off if this is "
            "intended")


class DualDomainLoader(BatchLoader):
    """Batches of a real and a synthetic source (each one or more .beton files).

    ``mix.mode == "dual"`` (default): every batch holds exactly ``round(B*p)`` synthetic rows
    after ``B - round(B*p)`` real rows; an epoch is one pass over the real set (full batches on
    every rank); the synthetic set is walked without replacement across epochs, so every
    synthetic row is used once before any repeats (seed 003 §3.3, up to 6x synthetic).
    ``p = 0``/``p = 1``: real-only / synthetic-only (the epoch is then the synthetic set).
    ``mix.mode == "union"``: seed 004's plain union, see :class:`loaders.plan.UnionPlan`.

    ``real``/``synthetic``: a path, a list of paths or a :class:`BetonSource` (with a subset
    from :mod:`loaders.subsets`); ``real_subset``/``synthetic_subset``: row indices (of the
    concatenated files) to restrict to, or the path of a subset index file. ``mix.real_fraction``/``synthetic_fraction`` take
    seeded class-stratified fractions on top (seed 004 §4.3 grid).
    """

    def __init__(self, real, synthetic, config: LoaderConfig, mix: MixConfig | None = None,
                 real_subset=None, synthetic_subset=None):
        from loaders import subsets

        mix = mix or MixConfig()
        if config.pipeline != "train":
            raise LoaderConfigError("DualDomainLoader is for training (pipeline=train); "
                                    "evaluate each domain with make_eval_loader")
        p = mix.synthetic_share
        real = as_source(real, real_subset) if real is not None else None
        syn = as_source(synthetic, synthetic_subset) if synthetic is not None else None
        if real is None and (p < 1 or mix.mode == "union"):
            raise LoaderConfigError("a real source is needed unless synthetic_share is 1")
        if syn is None and (p > 0 or mix.mode == "union"):
            raise LoaderConfigError("a synthetic source is needed unless synthetic_share is 0")
        if real is not None and syn is not None:
            _check_labels(real, syn, mix.label_check)
        real_full = len(real) if real is not None else None
        if real is not None and mix.real_fraction < 1:
            real = real.with_subset(real.rows[subsets.fraction(
                real.labels, mix.real_fraction, seed=config.seed)])
        if syn is not None and mix.synthetic_fraction is not None:
            if real_full is None:
                raise LoaderConfigError("synthetic_fraction is relative to the real set's size;"
                                        " give a real source")
            syn = syn.with_subset(syn.rows[subsets.fraction(
                syn.labels, mix.synthetic_fraction, seed=config.seed, reference=real_full)])
        self.real, self.synthetic, self.mix = real, syn, mix
        sources = [s for s in (real, syn) if s is not None]
        offsets = np.concatenate([[0], np.cumsum([s.total for s in sources])]).tolist()
        rank, world = resolve_rank(config)
        if mix.mode == "union":
            plan = UnionPlan(sources, config.batch_size, config.seed, rank, world, config.order,
                             offsets=offsets[:-1], num_real_domains=1)
        else:
            plan = DualPlan(real if p < 1 else None, syn if p > 0 else None, config.batch_size,
                            p, config.seed, rank, world, config.order,
                            real_offset=0, synthetic_offset=offsets[1] if real is not None else 0)
        super().__init__(sources, plan, config)

    @property
    def synthetic_rows_per_batch(self) -> int:
        return getattr(self.plan, "n_syn", 0)


def make_loader(paths, config: LoaderConfig, subset=None, synthetic: bool | None = None):
    """One source (a path, paths or a :class:`BetonSource`), train or eval as
    ``config.pipeline`` says. ``num_real`` is the batch size for real files and 0 for generated
    ones (``synthetic``: override the file kind)."""
    source = as_source(paths, subset)
    is_syn = source.synthetic if synthetic is None else synthetic
    rank, world = resolve_rank(config)
    if config.pipeline == "eval":
        plan = SequentialPlan(source, config.batch_size, rank, world, real=not is_syn)
    else:
        plan = UnionPlan([source], config.batch_size, config.seed, rank, world, config.order,
                         num_real_domains=0 if is_syn else 1)
    return BatchLoader([source], plan, config)


def make_eval_loader(paths, config: LoaderConfig | None = None, subset=None, **overrides):
    """The evaluation entry point: center crop (``center_crop_ratio``, 224/256 by default),
    every sample of the file(s) exactly once in file order (split across ranks when
    ``distributed``), the last batch possibly short. ``overrides`` change config fields, e.g.
    ``make_eval_loader("val.beton", backend="dali", batch_size=500, image_size=256)``."""
    config = (config or LoaderConfig()).replace(pipeline="eval", **overrides)
    return make_loader(paths, config, subset=subset)
