"""Real per-class image counts, for plans that keep a dataset's class balance.

Seed 002 §5: "we generate the exact same number of images for every class as in the
corresponding real dataset, maintaining any class imbalance" (ImageNet-100: 126,689 images;
ImageNet-1K: 1,281,167). The counts are not shipped (they come with ImageNet); every user who
reproduces the paper has one of:

* the ImageNet **train folder** (``train/<wnid>/*.JPEG``): images are counted per class folder
  with :mod:`loaders.files` (the same rules as the packer and torchvision's ImageFolder);
* the ILSVRC-2012 devkit's **meta.mat** (``ILSVRC2012_devkit_t12/data/meta.mat``): a struct
  array ``synsets`` with fields ``ILSVRC2012_ID, WNID, words, gloss, num_children, children,
  wordnet_height, num_train_images``; the 1000 classes are its leaf synsets (``num_children``
  0, ``ILSVRC2012_ID`` 1..1000);
* a text file of ``wnid count`` lines (``#`` comments allowed).
"""
from __future__ import annotations

import dataclasses
import os

from engine.errors import UserError

KINDS = ("folder", "meta.mat", "file")


class CountsError(UserError, ValueError):
    """Per-class counts that cannot be read or do not cover the plan's classes."""


@dataclasses.dataclass(frozen=True)
class ClassCounts:
    """Per-class image counts and where they came from."""

    counts: dict
    """Class key (wnid, or name for a free-form class) -> number of real images."""
    source: str
    """The path they were read from."""
    kind: str
    """``folder``, ``meta.mat`` or ``file``."""

    def describe(self, keys) -> dict:
        """The record for a plan header: the counts of ``keys`` (in that order) and a total."""
        per_class = {k: self.counts[k] for k in keys}
        return {"source": self.source, "kind": self.kind, "per_class": per_class,
                "total": sum(per_class.values())}


def read_counts(path: str, keys=None) -> ClassCounts:
    """Counts from a train folder, a devkit ``meta.mat`` or a ``wnid count`` file.

    ``keys`` (class keys of a plan) limits folder counting to those classes and is checked to be
    covered: a missing class is a :class:`CountsError` naming a few."""
    if not os.path.exists(path):
        raise CountsError(f"counts source not found: {path} (give the ImageNet train folder, "
                          "the devkit's meta.mat, or a file of 'wnid count' lines)")
    if os.path.isdir(path):
        out = ClassCounts(_folder_counts(path, keys), path, "folder")
    elif path.lower().endswith(".mat"):
        out = ClassCounts(_meta_mat_counts(path), path, "meta.mat")
    else:
        out = ClassCounts(_file_counts(path), path, "file")
    if keys is not None:
        missing = [k for k in keys if k not in out.counts]
        if missing:
            raise CountsError(f"{path}: no count for {len(missing)} of the {len(list(keys))} "
                              f"classes, e.g. {', '.join(missing[:3])}"
                              + _folder_hint(path, out))
    return out


def _folder_hint(path: str, counts: ClassCounts) -> str:
    if counts.kind == "folder" and os.path.isdir(os.path.join(path, "train")):
        return f" (it has a train/ sub-folder: did you mean {os.path.join(path, 'train')}?)"
    return ""


def _folder_counts(root: str, keys=None) -> dict[str, int]:
    from loaders.files import class_folders, list_images

    folders = class_folders(root)
    present = set(folders)
    wanted = folders if keys is None else [k for k in keys if k in present]
    return {k: len(list_images(os.path.join(root, k))) for k in wanted}


def _file_counts(path: str) -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise CountsError(f"{path}:{lineno}: expected 'wnid count', got {line.strip()!r}")
            if parts[0] in out:
                raise CountsError(f"{path}:{lineno}: {parts[0]} listed twice")
            out[parts[0]] = int(parts[1])
    if not out:
        raise CountsError(f"{path}: no 'wnid count' lines")
    return out


def _meta_mat_counts(path: str) -> dict[str, int]:
    """``num_train_images`` of the 1000 leaf synsets of the ILSVRC-2012 devkit's meta.mat."""
    import numpy as np
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True)
    except (ValueError, TypeError, OSError) as exc:
        raise CountsError(f"{path}: not a readable MATLAB file ({exc})") from exc
    synsets = mat.get("synsets")
    fields = ("ILSVRC2012_ID", "WNID", "num_children", "num_train_images")
    names = getattr(getattr(synsets, "dtype", None), "names", None) or ()
    if synsets is None or any(f not in names for f in fields):
        raise CountsError(f"{path}: not the ILSVRC-2012 devkit's meta.mat (expected a struct "
                          f"array 'synsets' with fields {', '.join(fields)})")
    synsets = np.atleast_1d(synsets)
    out = {}
    for s in synsets:
        ilsvrc_id, children = int(s["ILSVRC2012_ID"]), int(s["num_children"])
        if children == 0 and 1 <= ilsvrc_id <= 1000:
            out[str(s["WNID"])] = int(s["num_train_images"])
    if not out:
        raise CountsError(f"{path}: no leaf synsets (num_children 0, ILSVRC2012_ID 1..1000)")
    return out
