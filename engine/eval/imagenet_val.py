"""ImageNet validation set: wnid folders, or the flat folder of 50,000 ``ILSVRC2012_val_*.JPEG``
with a label file.

Label files, found with ``--set-labels imagenet-val=FILE`` or automatically in the folder, its
parent, or a devkit folder beside it:

* the ILSVRC2012 devkit's ``data/ILSVRC2012_validation_ground_truth.txt`` — line n is the label
  of ``ILSVRC2012_val_{n:08d}``, as an **ILSVRC2012_ID** (1..1000 in the devkit's own order,
  not timm's). The IDs become wnids through the devkit's ``data/meta.mat`` (``synsets``:
  ``ILSVRC2012_ID``, ``WNID``, ..., ``num_children``; the leaves are the 1000 classes), read as
  ``torchvision.datasets.imagenet.parse_devkit_archive`` does; the wnids become labels in timm
  order. Give the devkit folder or the ground-truth file (meta.mat must sit beside it);
* Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the first word a wnid);
* any ``FILENAME LABEL`` / ``FILENAME,LABEL`` list, LABEL a wnid or an ImageNet-1K index
  (timm order), e.g. the common ``val.txt`` / ``val_labels.txt``.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from engine.catalog import imagenet_wnids
from engine.eval import labels as lab
from engine.eval.images import combine_fingerprints, file_fingerprint, listing_fingerprint
from engine.eval.sets import SetError, TestSet, load_wnid_folders

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE = "LOC_val_solution.csv"
DEVKIT_DIRS = ("ILSVRC2012_devkit_t12", "devkit")
LIST_NAMES = ("val.txt", "val_labels.txt", "ILSVRC2012_val_labels.txt")


def load_imagenet_val(path: str, label_file: str | None = None) -> TestSet:
    from loaders.files import class_folders, list_images

    folders = class_folders(path)
    if folders and not label_file:
        return load_wnid_folders("imagenet-val", path, "imagenet1k")
    images = list_images(path, recursive=False)
    if not images:
        raise SetError(f"imagenet-val: {path} holds neither wnid folders nor images (expected "
                       "<wnid>/*.JPEG or a flat folder of ILSVRC2012_val_*.JPEG)")
    label_file = label_file or find_label_file(path)
    if label_file is None:
        raise SetError(f"imagenet-val: {path} is a flat folder and no label file was found; pass "
                       f"--set-labels imagenet-val=FILE ({GROUND_TRUTH} with meta.mat, the "
                       f"devkit folder, {KAGGLE}, or a 'filename label' list)")
    by_stem, how = read_val_labels(label_file)
    items, targets, missing = [], [], []
    for p in images:
        stem = os.path.splitext(os.path.basename(p))[0]
        if stem in by_stem:
            items.append(p)
            targets.append(by_stem[stem])
        else:
            missing.append(os.path.basename(p))
    if missing:
        raise SetError(f"imagenet-val: {len(missing)} images have no label in {label_file} "
                       f"(e.g. {missing[0]})")
    groups = [(l,) for l in range(1000)]
    targets = np.asarray(targets, dtype=np.int64)
    notes = [] if len(items) == len(by_stem) else [
        f"{len(items)} of the {len(by_stem)} labelled images present"]
    fp = listing_fingerprint(path, items, targets.tolist())
    fp = {**fp, "value": combine_fingerprints(fp, file_fingerprint(label_file))}
    return TestSet("imagenet-val", "imagenet-val", path, items, targets, groups,
                   list(imagenet_wnids()), fp, f"flat folder + {how}", notes=notes)


def find_label_file(path: str) -> str | None:
    """A label file in ``path``, its parent, or a devkit folder in either."""
    parent = os.path.dirname(os.path.abspath(path))
    for root in (path, parent):
        for devkit in DEVKIT_DIRS:
            candidate = os.path.join(root, devkit, "data", GROUND_TRUTH)
            if os.path.isfile(candidate):
                return candidate
        for name in (GROUND_TRUTH, KAGGLE) + LIST_NAMES:
            if os.path.isfile(os.path.join(root, name)):
                return os.path.join(root, name)
    return None


def read_val_labels(path: str) -> tuple[dict[str, int], str]:
    """``({image stem: ImageNet-1K label}, description)`` from any supported label file."""
    if os.path.isdir(path):  # a devkit folder
        path = os.path.join(path, "data", GROUND_TRUTH)
    if not os.path.isfile(path):
        raise SetError(f"imagenet-val label file not found: {path}")
    name = os.path.basename(path)
    if name == GROUND_TRUTH:
        return (read_devkit_ground_truth(path),
                f"devkit {GROUND_TRUTH} (ILSVRC2012_IDs via meta.mat)")
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    if first.strip().lower().startswith("imageid,predictionstring"):
        return read_kaggle_solution(path), KAGGLE
    return read_label_list(path), f"label list {name}"


def read_devkit_ground_truth(path: str) -> dict[str, int]:
    meta = os.path.join(os.path.dirname(path), "meta.mat")
    if not os.path.isfile(meta):
        raise SetError(f"{path} labels images by ILSVRC2012_ID, which needs the devkit's "
                       f"meta.mat beside it ({meta} is missing); give the devkit folder")
    id_to_wnid = read_meta_mat(meta)
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                wnid = id_to_wnid[int(line)]
            except (ValueError, KeyError):
                raise SetError(f"{path}:{n}: {line.strip()!r} is not an ILSVRC2012_ID of "
                               f"{meta}") from None
            out[f"ILSVRC2012_val_{n:08d}"] = lab.label_of_wnid(wnid, where=meta)
    return out


def read_meta_mat(path: str) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf synsets of the devkit's meta.mat (the layout
    ``torchvision.datasets.imagenet.parse_devkit_archive`` reads)."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(path, squeeze_me=True)["synsets"]
        ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
        children = synsets["num_children"]
    except (KeyError, ValueError, OSError) as exc:
        raise SetError(f"{path}: not the ILSVRC2012 devkit's meta.mat ({exc})") from None
    return {int(i): str(w) for i, w, c in zip(ids.ravel(), wnids.ravel(), children.ravel())
            if int(c) == 0}


def read_kaggle_solution(path: str) -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            words = (row.get("PredictionString") or "").split()
            if not words:
                raise SetError(f"{path}: {row.get('ImageId')!r} has no prediction string")
            out[row["ImageId"]] = lab.label_of_wnid(words[0], where=path)
    return out


def read_label_list(path: str) -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            if len(parts) != 2:
                raise SetError(f"{path}:{n}: expected 'FILENAME LABEL', got {line.strip()!r}")
            stem = os.path.splitext(os.path.basename(parts[0]))[0]
            out[stem] = _label(parts[1], f"{path}:{n}")
    return out


def _label(text: str, where: str) -> int:
    if text.isdigit():
        label = int(text)
        if not 0 <= label < 1000:
            raise SetError(f"{where}: label {label} is outside ImageNet-1K's 0..999")
        return label
    return lab.label_of_wnid(text, where=where)
