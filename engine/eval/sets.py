"""Test sets from local copies in their standard layouts (nothing is downloaded).

``--sets NAME=PATH,...`` names each set; the name picks the layout and the class list:

==================  ===========================================================  ===========
name                layout under PATH                                            classes
==================  ===========================================================  ===========
imagenet-val        ``<wnid>/*.JPEG``, or flat ``ILSVRC2012_val_*.JPEG`` + a       1000
                    label file (:mod:`engine.eval.imagenet_val`)
imagenet-v2         ``<class index 0..999>/*.jpeg`` (ImageNetV2 releases)          1000
imagenet-sketch     ``<wnid>/*.JPEG``                                              1000
imagenet-r          ``<wnid>/*.jpg`` (200 folders)                                 200 (mask)
imagenet-a          ``<wnid>/*.jpg`` (200 folders)                                 200 (mask)
objectnet           ``images/<folder>/*.png`` + ``mappings/*.json`` as shipped     113 (mask)
                    (:mod:`engine.eval.objectnet`)
imagenet-c          ``<corruption>/<severity 1..5>/<wnid>/*.JPEG``                 1000
any name            ``FILE.beton`` with an ``image`` and a ``label`` field (ImageNet-1K labels)
==================  ===========================================================  ===========

Every set is a list of items (paths or .beton sample indices), a target per item, and its
*groups*: the dataset's classes as tuples of ImageNet-1K labels (one label each, except ObjectNet
classes, which map to several). :mod:`engine.eval.metrics` restricts the model's logits to the
groups it shares with the set. Folders are listed with ``loaders.files`` (ImageFolder rules,
sorted), so a listing never depends on the file system.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from engine.catalog import imagenet_wnids
from engine.errors import UserError
from engine.eval import labels as lab
from engine.eval.images import file_fingerprint, listing_fingerprint


class SetError(UserError):
    """A test set that is missing, misnamed or not in its layout."""


@dataclasses.dataclass
class TestSet:
    name: str
    """Name in results (``imagenet-r``; ``imagenet-c/fog`` for one ImageNet-C corruption)."""
    kind: str
    """Layout/protocol: imagenet-val, imagenet-v2, ..., beton."""
    path: str
    items: list
    """Image file paths, or sample indices of ``beton``."""
    targets: np.ndarray
    """Per item: index into ``groups``."""
    groups: list
    """The dataset's classes, each a tuple of ImageNet-1K labels."""
    group_names: list
    fingerprint: dict
    layout: str
    """How it was read, in words (for results.json)."""
    beton: str | None = None
    border: int = 0
    """Pixels cut off each edge before resizing (ObjectNet)."""
    notes: list = dataclasses.field(default_factory=list)

    __test__ = False  # not a pytest test class

    def __len__(self):
        return len(self.items)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": os.path.abspath(self.path), "layout": self.layout,
                "hash": self.fingerprint, "num_images": len(self.items),
                "num_classes": len(self.groups), "notes": list(self.notes)}

    def subsample(self, n: int | None, seed: int) -> "TestSet":
        """At most ``n`` items, a seeded draw kept in listing order."""
        if n is None or n >= len(self.items):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self.items))[:n])
        return dataclasses.replace(
            self, items=[self.items[i] for i in keep], targets=self.targets[keep],
            notes=self.notes + [f"evaluated on a seeded draw of {n} of {len(self.items)} images "
                                "(--max-images)"])


SET_CLASSES = {"imagenet-val": "imagenet1k", "imagenet-v2": "imagenet1k",
               "imagenet-sketch": "imagenet1k", "imagenet-r": "imagenet-r",
               "imagenet-a": "imagenet-a", "imagenet-c": "imagenet1k", "objectnet": None}
"""Known set names and the class set each one is labelled with (ObjectNet: its mapping)."""
ALIASES = {"imagenet": "imagenet-val", "val": "imagenet-val", "in-val": "imagenet-val",
           "v2": "imagenet-v2", "imagenetv2": "imagenet-v2", "sketch": "imagenet-sketch",
           "imagenet-rendition": "imagenet-r", "imagenet-adversarial": "imagenet-a"}


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return ALIASES.get(key, key)


def parse_specs(specs, what: str = "--sets") -> list[tuple[str, str]]:
    """``["a=P,b=Q", "c=R"]`` -> ``[("a", "P"), ("b", "Q"), ("c", "R")]`` (names unique)."""
    out: list[tuple[str, str]] = []
    for spec in specs or ():
        for part in (p for p in str(spec).split(",") if p.strip()):
            name, sep, path = part.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise SetError(f"{what} {part!r}: expected NAME=PATH (e.g. imagenet-r=/data/"
                               "imagenet-r)")
            out.append((name.strip(), os.path.expanduser(path.strip())))
    names = [n for n, _ in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise SetError(f"{what}: {', '.join(dups)} given twice")
    return out


def load_set(name: str, path: str, *, label_file: str | None = None,
             severity: int = 5) -> list[TestSet]:
    """The test set(s) ``name`` at ``path`` (ImageNet-C gives one set per corruption)."""
    key = canonical_name(name)
    if path.endswith(".beton"):
        return [load_beton(key, path)]
    if key not in SET_CLASSES:
        raise SetError(f"unknown test set {name!r} (known: {', '.join(SET_CLASSES)}; a .beton "
                       "file may have any name)")
    if not os.path.exists(path):
        raise SetError(f"{key}: {path}: no such folder")
    if not os.path.isdir(path):
        raise SetError(f"{key}: {path} is not a folder (or give a .beton file)")
    if key == "imagenet-val":
        from engine.eval.imagenet_val import load_imagenet_val

        return [load_imagenet_val(path, label_file)]
    if label_file:
        raise SetError(f"--set-labels {name}: only a flat imagenet-val folder takes a label file")
    if key == "imagenet-v2":
        return [load_class_index_folders(key, path)]
    if key == "objectnet":
        from engine.eval.objectnet import load_objectnet

        return [load_objectnet(path)]
    if key == "imagenet-c":
        return load_imagenet_c(path, severity)
    return [load_wnid_folders(key, path, SET_CLASSES[key])]


def _groups_of(class_set: str):
    labels = lab.subset_labels(class_set)
    return [(l,) for l in labels], [imagenet_wnids()[l] for l in labels]


def _list_folder(path: str, where: str):
    from loaders.files import ImageFolderError, list_image_folder

    try:
        return list_image_folder(path, allow_empty_classes=False)
    except ImageFolderError as exc:
        raise SetError(f"{where}: {exc}") from None


def load_wnid_folders(key: str, path: str, class_set: str, layout: str = "wnid folders",
                      name: str | None = None) -> TestSet:
    """``PATH/<wnid>/**/<image>``; every folder must be a class of ``class_set``."""
    groups, names = _groups_of(class_set)
    position = {g[0]: i for i, g in enumerate(groups)}
    listing = _list_folder(path, key)
    items, targets, folder_labels = [], [], {}
    for p, folder in listing:
        if folder not in folder_labels:
            label = lab.label_of_wnid(folder, where=os.path.join(path, folder))
            if label not in position:
                raise SetError(f"{key}: folder {folder} is not one of the {len(groups)} "
                               f"{class_set} classes; is {path} really {key}?")
            folder_labels[folder] = label
        items.append(p)
        targets.append(position[folder_labels[folder]])
    targets = np.asarray(targets, dtype=np.int64)
    notes = []
    if len(folder_labels) < len(groups):
        notes.append(f"{len(folder_labels)} of {len(groups)} class folders present")
    return TestSet(name or key, key, path, items, targets, groups, names,
                   listing_fingerprint(path, items, [groups[t][0] for t in targets]), layout,
                   notes=notes)


def load_class_index_folders(key: str, path: str) -> TestSet:
    """ImageNetV2: ``PATH/<0..999>/*.jpeg``, the folder name being the ImageNet-1K index."""
    listing = _list_folder(path, key)
    bad = sorted({f for _, f in listing if not (f.isdigit() and 0 <= int(f) < 1000)})
    if bad:
        raise SetError(f"{key}: folders must be class indices 0..999 (ImageNetV2 layout); found "
                       f"{', '.join(bad[:3])} in {path}")
    groups, names = _groups_of("imagenet1k")
    items = [p for p, _ in listing]
    targets = np.asarray([int(f) for _, f in listing], dtype=np.int64)
    return TestSet(key, key, path, items, targets, groups, names,
                   listing_fingerprint(path, items, targets.tolist()), "class-index folders")


def load_imagenet_c(path: str, severity: int) -> list[TestSet]:
    """``PATH/<corruption>/<severity>/<wnid>/*`` -> one set per corruption at ``severity``
    (``PATH`` may also be a single corruption's folder)."""
    from loaders.files import class_folders

    subdirs = class_folders(path)
    if subdirs and all(d.isdigit() for d in subdirs):  # PATH is one corruption
        corruptions = [(os.path.basename(os.path.normpath(path)), path)]
    else:
        corruptions = [(c, os.path.join(path, c)) for c in subdirs]
    if not corruptions:
        raise SetError(f"imagenet-c: {path} holds no corruption folders (expected "
                       "<corruption>/<severity 1..5>/<wnid>/*.JPEG)")
    out = []
    for corruption, folder in corruptions:
        level = os.path.join(folder, str(severity))
        if not os.path.isdir(level):
            raise SetError(f"imagenet-c: {folder} has no severity folder {severity} (choose "
                           "--imagenet-c-severity among its 1..5)")
        out.append(load_wnid_folders("imagenet-c", level, "imagenet1k",
                                     layout=f"corruption/severity/wnid (severity {severity})",
                                     name=f"imagenet-c/{corruption}"))
    return out


def load_beton(key: str, path: str) -> TestSet:
    """Any .beton with ``image`` and ``label`` fields; labels are ImageNet-1K indices. A known
    set name keeps its class list (``imagenet-r=r.beton`` restricts logits to the 200)."""
    labels = read_labelled_beton(path, f"{key}:")
    class_set = SET_CLASSES.get(key) or "imagenet1k"
    if key == "objectnet":
        raise SetError("objectnet as a .beton is not supported: its classes map to several "
                       "ImageNet labels; give the ObjectNet folder")
    groups, names = _groups_of(class_set)
    position = {g[0]: i for i, g in enumerate(groups)}
    outside = sorted({int(l) for l in labels if int(l) not in position})
    if outside:
        raise SetError(f"{key}: {path} has labels outside the {len(groups)} {class_set} classes "
                       f"({', '.join(map(str, outside[:5]))}); .beton sets must carry ImageNet-1K "
                       "labels (not compact ones)")
    targets = np.asarray([position[int(l)] for l in labels], dtype=np.int64)
    return TestSet(key, "beton" if key not in SET_CLASSES else key, path,
                   list(range(len(labels))), targets, groups, names, file_fingerprint(path),
                   ".beton (the loaders' eval pipeline)", beton=path)


def read_labelled_beton(path: str, what: str, fields=("image", "label")) -> np.ndarray:
    """The labels of the .beton ``path``, after checking it exists and has ``fields``; a
    :class:`SetError` starting with ``what`` (the flag or set that named it) otherwise."""
    from loaders.beton import BetonReader

    if not path.endswith(".beton") or not os.path.isfile(path):
        raise SetError(f"{what} {path}: no such .beton file")
    with BetonReader(path) as r:
        for field in fields:
            if field not in r.fields:
                raise SetError(f"{what} {path} has no {field!r} field (fields: "
                               f"{', '.join(r.fields)})")
        return beton_labels(r)


def beton_labels(reader) -> np.ndarray:
    """The ``label`` field of every sample, read from the metadata table (no image decoding)."""
    k = list(reader.fields).index("label")
    return np.asarray(reader.metadata[f"f{k}"], dtype=np.int64).reshape(-1)
