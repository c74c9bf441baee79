"""torchvision backend: the baseline users write today (PIL decoding, transforms v2, DataLoader
worker processes), over .beton files or over an image folder.

* :class:`BetonDataset`: ``dataset[row]`` decodes row ``row`` of one or more .beton files with
  PIL (raw-stored images are wrapped, not decoded) -> ``(image, label, sample_id, file)``.
* :class:`ImageFolderDataset`: an ``ImageFolder`` tree ``root/<class>/**/<image>`` listed by
  :func:`loaders.files.list_image_folder` (the product's one lister); labels are ImageNet-1K
  indices of wnid folder names (as ``synthclone pack`` assigns them) or, with
  ``labels="compact"``, ``0..k-1`` in sorted folder order (torchvision's ``ImageFolder``).
* :func:`train_transform` / :func:`eval_transform`: RandomResizedCrop + flip with the window
  and flip given, or the standard resize to ``size / center_crop_ratio`` then center crop;
  ToImage, ToDtype, Normalize.
* :class:`TorchvisionBackend`: the backend contract of :mod:`loaders.backends`; rows come from
  the plan through a batch sampler, so it delivers the same rows as the FFCV and DALI backends.
  Each train row arrives with its epoch's key and the worker takes its crop window and flip
  from :func:`loaders.augment.crop_params` (a pure function of seed, epoch and row, the same
  windows the FFCV decoder cuts), never from torch's global or worker generator: which worker
  decodes a row, and how many there are, changes nothing.
* :func:`folder_loader`: a train or eval loader over an image folder (this backend only).
"""
from __future__ import annotations

import io
import os

import numpy as np
import torch

from loaders.batch import Batch
from loaders.errors import LoaderConfigError, LoaderWorkerError, LoadersError

__all__ = ["BetonDataset", "ImageFolderDataset", "FolderSource", "TorchvisionBackend",
           "TrainTransform", "train_transform", "eval_transform", "folder_loader", "require"]


def require() -> None:
    """Import torchvision (ModuleNotFoundError names what is missing)."""
    import torchvision.transforms.v2  # noqa: F401


def _tail(config) -> list:
    from torchvision.transforms import v2

    ops = [v2.PILToTensor()]
    if config.dtype != "uint8":
        dtype = torch.float16 if config.dtype == "float16" else torch.float32
        ops += [v2.ToDtype(dtype, scale=True), v2.Normalize(list(config.mean), list(config.std))]
    return ops


class TrainTransform:
    """RandomResizedCrop with its window given: ``transform(image, (top, left, h, w, flip))``
    crops the PIL image, resizes it to ``size`` (bilinear, antialiased: what
    ``v2.RandomResizedCrop`` does with the window it draws), mirrors it when ``flip``, then
    makes the tensor (normalised float or uint8). The window comes from
    :func:`loaders.augment.crop_params`."""

    def __init__(self, config, size: int):
        from torchvision.transforms import v2

        self.size = int(size)
        self.tail = v2.Compose(_tail(config))

    def __call__(self, img, params):
        from torchvision.transforms.v2 import functional as F

        top, left, h, w, flip = (int(v) for v in params)
        img = F.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True)
        if flip:
            img = F.horizontal_flip(img)
        return self.tail(img)


def train_transform(config, size: int | None = None) -> TrainTransform:
    """The train transform (:class:`TrainTransform`) of ``config`` at ``size``."""
    return TrainTransform(config, size or config.image_size)


def eval_transform(config, size: int | None = None):
    """Resize the short side to ``round(size / center_crop_ratio)`` (256 for 224) -> center crop
    ``size`` -> tensor: the standard ImageNet evaluation transform."""
    from torchvision.transforms import v2

    size = size or config.image_size
    return v2.Compose([v2.Resize(int(round(size / config.center_crop_ratio)), antialias=True),
                       v2.CenterCrop(size)] + _tail(config))


class BetonDataset(torch.utils.data.Dataset):
    """Rows of .beton files (one concatenated row space), decoded with PIL (module doc)."""

    def __init__(self, paths, transform=None, image_field: str = "image"):
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.transform, self.image_field = transform, image_field
        self._readers = None
        from loaders.beton.reader import BetonReader

        sizes = []
        for p in self.paths:
            with BetonReader(p) as r:
                sizes.append(len(r))
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __getstate__(self):  # worker processes reopen the files
        return {**self.__dict__, "_readers": None}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _reader(self, f: int):
        from loaders.beton.reader import BetonReader

        if self._readers is None:
            self._readers = [BetonReader(p) for p in self.paths]
        return self._readers[f]

    def decode(self, row: int):
        """-> (PIL RGB image, metadata dict of the other int fields) of one row."""
        from PIL import Image

        f = int(np.searchsorted(self.offsets, row, side="right") - 1)
        r, i = self._reader(f), int(row - self.offsets[f])
        enc = r.encoded(i, self.image_field)
        data, mode = enc
        if mode == "raw":
            img = Image.frombuffer("RGB", (enc.width, enc.height), data, "raw", "RGB", 0, 1)
        else:
            try:
                img = Image.open(io.BytesIO(data))
                img = img.convert("RGB")
            except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad bytes
                raise LoadersError(f"{r.path}: sample {i}: undecodable image ({exc})") from None
        rec = r.metadata[i]
        names = list(r.fields)
        label = int(rec[f"f{names.index('label')}"])
        sid = int(rec[f"f{names.index('sample_id')}"]) if "sample_id" in names else i
        return img, label, sid, f

    def __getitem__(self, row: int):
        img, label, sid, f = self.decode(int(row))
        if self.transform is not None:
            img = self.transform(img)
        return img, label, sid, f


class ImageFolderDataset(torch.utils.data.Dataset):
    """An ImageFolder tree (module doc): ``dataset[i] -> (image, label, i, 0)``."""

    def __init__(self, root: str, transform=None, labels: str = "imagenet1k"):
        from loaders.files import folder_labels, list_image_folder

        if labels not in ("imagenet1k", "compact"):
            raise LoaderConfigError(f"labels={labels!r}: use imagenet1k or compact")
        items = list_image_folder(root)
        index = folder_labels(root, (c for _, c in items), labels == "compact",
                              error=LoaderConfigError, hint="use labels='compact'")
        classes = sorted(index)
        self.root, self.transform, self.classes = root, transform, classes
        self.paths = [p for p, _ in items]
        self.targets = np.array([index[c] for _, c in items], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise LoadersError(f"{self.paths[i]}: unreadable image ({exc})") from None
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i]), int(i), 0


class FolderSource:
    """An image folder seen as a loader source (what :mod:`loaders.plan` needs of a source)."""

    synthetic = False

    def __init__(self, root: str, labels: str = "imagenet1k", subset=None):
        self.dataset = ImageFolderDataset(root, labels=labels)
        self.name, self.paths = root, [root]
        self.total = len(self.dataset)
        self.sizes = np.array([self.total], dtype=np.int64)
        self.labels_all = self.dataset.targets
        self.rows = (np.arange(self.total, dtype=np.int64) if subset is None
                     else np.asarray(subset, dtype=np.int64))
        self.pages = np.zeros(len(self.rows), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return self.labels_all[self.rows]


class _PlanSampler(torch.utils.data.Sampler):
    """Yields the current epoch plan's batches (set before each epoch) as ``(row, epoch key)``
    items."""

    def __init__(self):
        self.plan, self.ekey = None, 0

    def __iter__(self):
        for b in range(len(self.plan)):
            yield [(row, self.ekey) for row in self.plan.batch(b).tolist()]

    def __len__(self) -> int:
        return len(self.plan) if self.plan is not None else 0


def _collate(items):
    images = torch.stack([it[0] for it in items])
    labels = torch.tensor([it[1] for it in items], dtype=torch.int64)
    sids = torch.tensor([it[2] for it in items], dtype=torch.int64)
    files = torch.tensor([it[3] for it in items], dtype=torch.int64)
    return images, labels, sids, files


class _Concat(torch.utils.data.Dataset):
    """Datasets of several sources in one row space; ``file`` is numbered across sources.
    ``dataset[(row, epoch key)]`` decodes the row and applies ``transform``: the train
    transform with the row's keyed crop (``spec`` set), else the eval transform."""

    def __init__(self, parts):
        self.parts = parts  # (dataset, row offset, file offset); their transforms are None
        self.starts = np.array([o for _, o, _ in parts], dtype=np.int64)
        self.transform, self.spec = None, None

    def __len__(self) -> int:
        return sum(len(d) for d, _, _ in self.parts)

    def __getitem__(self, item):
        from loaders.augment import crop_params

        row, ekey = item
        k = int(np.searchsorted(self.starts, row, side="right") - 1)
        d, off, foff = self.parts[k]
        img, label, sid, f = d[int(row - off)]
        if self.spec is not None:
            params = crop_params(ekey, [row], [img.height], [img.width], self.spec)[0]
            img = self.transform(img, params)
        elif self.transform is not None:
            img = self.transform(img)
        return img, label, sid, f + foff


class TorchvisionBackend:
    """The torchvision backend (module doc; contract in :mod:`loaders.backends`)."""

    name = "torchvision"

    def __init__(self, sources, config):
        self.config = config
        parts, row_off, file_off = [], 0, 0
        for s in sources:
            ds = s.dataset if isinstance(s, FolderSource) else BetonDataset(
                s.paths, image_field=s.image_field)
            parts.append((ds, row_off, file_off))
            row_off += s.total
            file_off += len(s.paths)
        self.dataset = _Concat(parts)
        self.sampler = _PlanSampler()
        self._loader = None
        if config.pipeline == "train":
            from loaders.augment import CropSpec, crop_params

            self.dataset.spec = CropSpec.of(config)
            crop_params(0, [0], [1], [1], self.dataset.spec)  # compile once, before the fork
        self.set_image_size(config.image_size)

    def set_image_size(self, size: int) -> None:
        train = self.config.pipeline == "train"
        self.dataset.transform = (train_transform if train else eval_transform)(self.config, size)
        self._loader = None  # persistent workers hold the old transform: restart them

    def _data_loader(self):
        if self._loader is None:
            cfg = self.config
            workers = cfg.workers or os.cpu_count() or 1
            self._loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=self.sampler, num_workers=workers,
                collate_fn=_collate, pin_memory=cfg.device.startswith("cuda"),
                timeout=cfg.timeout if workers else 0, persistent_workers=workers > 0,
                prefetch_factor=cfg.batches_ahead if workers else None,
                generator=torch.Generator().manual_seed(cfg.seed))
        return self._loader

    def batches(self, plan, epoch: int):
        from loaders.augment import epoch_key

        cfg = self.config
        self.sampler.plan, self.sampler.ekey = plan, epoch_key(cfg.seed, epoch)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        it = iter(self._data_loader())
        for b in range(len(plan)):
            try:
                images, labels, sids, files = next(it)
            except StopIteration:
                raise LoaderWorkerError(f"torchvision: the DataLoader ended after {b} of "
                                        f"{len(plan)} batches") from None
            except RuntimeError as exc:
                if isinstance(exc, LoadersError):
                    raise
                msg = str(exc)
                if "timed out" in msg or "exited unexpectedly" in msg or "worker" in msg:
                    self._loader = None
                    raise LoaderWorkerError(f"torchvision: a DataLoader worker failed: "
                                            f"{msg.splitlines()[0]}") from exc
                raise
            if cfg.channels_last:
                images = images.contiguous(memory_format=fmt)
            if cfg.device != "cpu":
                images = images.to(cfg.device, non_blocking=True)
                labels = labels.to(cfg.device, non_blocking=True)
            yield Batch(images, labels, int(plan.num_real[b]), sample_id=sids, source=files)

    def close(self) -> None:
        self._loader = None


def folder_loader(root: str, config, labels: str = "imagenet1k", subset=None):
    """A loader over an image folder (torchvision backend only): ``config.pipeline`` train
    (shuffled by the plan) or eval (every image once, in listing order)."""
    from loaders.mixing import BatchLoader, resolve_rank
    from loaders.plan import SequentialPlan, UnionPlan

    if config.backend != "torchvision":
        raise LoaderConfigError(f"backend {config.backend!r} reads .beton files; pack the folder "
                                "first (synthclone pack) or use backend=torchvision")
    source = FolderSource(root, labels=labels, subset=subset)
    rank, world = resolve_rank(config)
    if config.pipeline == "eval":
        plan = SequentialPlan(source, config.batch_size, rank, world)
    else:
        plan = UnionPlan([source], config.batch_size, config.seed, rank, world, config.order)
    return BatchLoader([source], plan, config)
