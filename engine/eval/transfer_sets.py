"""Transfer datasets (seeds 001/002 App. A Table 4; seed 003 App. F) through
``torchvision.datasets`` with ``download=False``, from a local ROOT in torchvision's layout:

=========  ================  ==================================================  =============
name       torchvision       files under ROOT                                    splits used
=========  ================  ==================================================  =============
flowers    Flowers102        flowers-102/{jpg/, imagelabels.mat, setid.mat}      train/val/test
pets       OxfordIIITPet     oxford-iiit-pet/{images/, annotations/*.txt}        trainval/test
food       Food101           food-101/{images/<class>/, meta/{train,test}.json}  train/test
dtd        DTD               dtd/dtd/{images/<class>/, labels/*1.txt}            train/val/test
aircraft   FGVCAircraft      fgvc-aircraft-2013b/data/ (variant level)           train/val/test
cars       StanfordCars      stanford_cars/{devkit/, cars_train/, cars_test/,    train/test
                             cars_test_annos_withlabels.mat}
eurosat    EuroSAT           eurosat/2750/<class>/*.jpg                          (none)
sun397     SUN397            SUN397/{ClassName.txt, a/abbey/sun_*.jpg, ...}      (none)
=========  ================  ==================================================  =============

Where a set has no validation split, ``val_fraction`` of the training split is held out
(seeded, per class) to tune the probe; where it has no split at all (EuroSAT, SUN397),
``test_fraction`` of all images is the test split first. Flowers102's integrity check compares
md5 sums of the official .mat files; we check that they exist (so re-saved copies work) and
record whether the md5 sums match.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from engine.errors import UserError
from engine.eval.images import listing_fingerprint


class TransferSetError(UserError):
    """A transfer dataset that is not where, or not how, torchvision expects it."""


@dataclasses.dataclass(frozen=True)
class TransferSpec:
    cls: str
    """torchvision.datasets class name."""
    train: str | None
    val: str | None
    test: str | None
    layout: str
    kwargs: tuple = ()


TRANSFER_SETS = {
    "flowers": TransferSpec("Flowers102", "train", "val", "test",
                            "flowers-102/{jpg/, imagelabels.mat, setid.mat}"),
    "pets": TransferSpec("OxfordIIITPet", "trainval", None, "test",
                         "oxford-iiit-pet/{images/, annotations/trainval.txt, test.txt}"),
    "food": TransferSpec("Food101", "train", None, "test",
                         "food-101/{images/<class>/, meta/train.json, test.json}"),
    "dtd": TransferSpec("DTD", "train", "val", "test",
                        "dtd/dtd/{images/<class>/, labels/train1.txt, val1.txt, test1.txt}",
                        (("partition", 1),)),
    "aircraft": TransferSpec("FGVCAircraft", "train", "val", "test",
                             "fgvc-aircraft-2013b/data/{images/, variants.txt, "
                             "images_variant_*.txt}", (("annotation_level", "variant"),)),
    "cars": TransferSpec("StanfordCars", "train", None, "test",
                         "stanford_cars/{devkit/, cars_train/, cars_test/, "
                         "cars_test_annos_withlabels.mat}"),
    "eurosat": TransferSpec("EuroSAT", None, None, None, "eurosat/2750/<class>/*.jpg"),
    "sun397": TransferSpec("SUN397", None, None, None, "SUN397/{ClassName.txt, a/abbey/*.jpg}"),
}
ALIASES = {"flowers102": "flowers", "oxford-flowers": "flowers", "oxfordiiitpet": "pets",
           "oxford-pets": "pets", "food101": "food", "food-101": "food",
           "fgvcaircraft": "aircraft", "fgvc-aircraft": "aircraft", "stanfordcars": "cars",
           "stanford-cars": "cars", "sun": "sun397"}


def canonical_transfer_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in TRANSFER_SETS:
        raise TransferSetError(f"unknown transfer set {name!r} (known: "
                               f"{', '.join(TRANSFER_SETS)})")
    return key


@dataclasses.dataclass
class Split:
    items: list
    labels: np.ndarray


@dataclasses.dataclass
class TransferData:
    name: str
    root: str
    splits: dict
    """``train``/``val``/``test`` -> :class:`Split`; ``trainval`` = train + val for the refit."""
    num_classes: int
    fingerprints: dict
    notes: list

    def describe(self) -> dict:
        return {"path": os.path.abspath(self.root), "torchvision": TRANSFER_SETS[self.name].cls,
                "num_classes": self.num_classes,
                "splits": {k: len(v.items) for k, v in self.splits.items() if k != "trainval"},
                "hash": self.fingerprints, "notes": list(self.notes)}


def _open(name: str, root: str, split: str | None):
    import torchvision.datasets as tvd

    spec = TRANSFER_SETS[name]
    cls = _relaxed_flowers() if spec.cls == "Flowers102" else getattr(tvd, spec.cls)
    kwargs = dict(spec.kwargs)
    if split is not None:
        kwargs["split"] = split
    if not os.path.isdir(root):
        raise TransferSetError(f"{name}: {root}: no such folder")
    try:
        return cls(root, download=False, **kwargs)
    except (RuntimeError, FileNotFoundError, OSError, KeyError, ValueError) as exc:
        raise TransferSetError(f"{name}: torchvision {spec.cls} cannot read {root} ({exc}); "
                               f"expected ROOT/{spec.layout}") from None


def _samples(ds) -> tuple[list[str], list[int]]:
    """(paths, labels) of a torchvision dataset object, sorted by path for SUN397."""
    if hasattr(ds, "_samples"):  # StanfordCars
        paths, labels = zip(*ds._samples) if ds._samples else ((), ())
    elif hasattr(ds, "samples"):  # EuroSAT (ImageFolder)
        paths, labels = zip(*ds.samples) if ds.samples else ((), ())
    else:
        files = getattr(ds, "_image_files", None) or getattr(ds, "_images", None)
        if files is None or not hasattr(ds, "_labels"):
            raise TransferSetError(f"torchvision {type(ds).__name__} changed its attributes; "
                                   "this version is not supported")
        paths, labels = files, ds._labels
    pairs = sorted(zip(map(str, paths), map(int, labels)))  # rglob order is the file system's
    return [p for p, _ in pairs], [l for _, l in pairs]


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a seeded per-class hold-out of ``fraction`` (>= 1 per class with >= 2)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        n = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        held[rng.permutation(idx)[:n]] = True
    return held


def _subset(split: Split, mask: np.ndarray) -> Split:
    return Split([p for p, m in zip(split.items, mask) if m], split.labels[mask])


def load_transfer(name: str, root: str, *, val_fraction: float = 0.2,
                  test_fraction: float = 0.2, seed: int = 0,
                  max_images: int | None = None) -> TransferData:
    """The train/val/test splits of transfer set ``name`` under ``root`` (see module doc)."""
    name = canonical_transfer_name(name)
    spec = TRANSFER_SETS[name]
    notes = []
    splits: dict[str, Split] = {}
    if spec.train is None:  # one pool: carve test, then val
        pool = Split(*_as_split(_open(name, root, None)))
        test = stratified_split(pool.labels, test_fraction, seed)
        splits["test"], train = _subset(pool, test), _subset(pool, ~test)
        notes.append(f"no official split: {test_fraction:.0%} of each class is the test split "
                     f"(seed {seed})")
    else:
        train = Split(*_as_split(_open(name, root, spec.train)))
        splits["test"] = Split(*_as_split(_open(name, root, spec.test)))
    if spec.val is not None:
        splits["train"], splits["val"] = train, Split(*_as_split(_open(name, root, spec.val)))
    else:
        val = stratified_split(train.labels, val_fraction, seed + 1)
        splits["train"], splits["val"] = _subset(train, ~val), _subset(train, val)
        notes.append(f"validation split: {val_fraction:.0%} of each class of the training split "
                     f"(seed {seed + 1}), to tune C; the final probe trains on train + val")
    if max_images is not None:
        for k, s in list(splits.items()):
            if len(s.items) > max_images:
                keep = ~stratified_split(s.labels, 1 - max_images / len(s.items), seed + 2)
                splits[k] = _subset(s, keep)
        notes.append(f"at most ~{max_images} images per split (--transfer.max-images); not the "
                     "papers' protocol")
    if name == "flowers":
        notes += _flowers_md5_note(root)
    for k in ("train", "val", "test"):
        if not len(splits[k].items):
            raise TransferSetError(f"{name}: the {k} split under {root} is empty")
    splits["trainval"] = Split(splits["train"].items + splits["val"].items,
                               np.concatenate([splits["train"].labels, splits["val"].labels]))
    num_classes = int(max(s.labels.max() for s in splits.values()) + 1)
    fps = {k: listing_fingerprint(root, s.items, s.labels.tolist())
           for k, s in splits.items() if k != "trainval"}
    return TransferData(name, root, splits, num_classes, fps, notes)


def _as_split(ds) -> tuple[list[str], np.ndarray]:
    paths, labels = _samples(ds)
    return paths, np.asarray(labels, dtype=np.int64)


def _flowers_md5_note(root: str) -> list[str]:
    from torchvision.datasets import Flowers102
    from torchvision.datasets.utils import check_integrity

    base = os.path.join(root, "flowers-102")
    ok = all(check_integrity(os.path.join(base, Flowers102._file_dict[k][0]),
                             Flowers102._file_dict[k][1]) for k in ("label", "setid"))
    return [] if ok else ["imagelabels.mat / setid.mat differ from the official files (md5)"]


@functools.lru_cache(maxsize=1)
def _relaxed_flowers():
    """Flowers102 whose integrity check only asks that the files exist (see module doc)."""
    from torchvision.datasets import Flowers102

    class RelaxedFlowers102(Flowers102):
        def _check_integrity(self):
            return self._images_folder.is_dir() and all(
                (self._base_folder / self._file_dict[k][0]).is_file() for k in ("label", "setid"))

    return RelaxedFlowers102
