"""ObjectNet 1.0 as shipped: ``objectnet-1.0/images/<folder>/*.png`` and ``mappings/``.

The mapping files (the release's own, read as ObjectNet's reference loaders read them):

* ``folder_to_objectnet_label.json``: ``{"air_freshener": "Air freshener", ...}`` (313 classes);
* ``objectnet_to_imagenet_1k.json``: ``{"Alarm clock": "analog clock; digital clock", ...}``,
  the 113 ObjectNet classes that overlap ImageNet-1K (seed 004 App. G), each to one or more
  ImageNet class names joined by ``"; "``;
* ``imagenet_to_label_2012_v2``: one ImageNet class name per line (line i = ImageNet id i);
* ``pytorch_to_imagenet_2012_id.json``: ``{"0": 0, ...}`` PyTorch (timm/torchvision) label ->
  that line number.

An ObjectNet class is correct when the model's best class among all mapped ImageNet classes is
one of its own (:mod:`engine.eval.metrics` max-pools the logits of each class's ImageNet labels,
which is the same thing for top-1). Images of the 200 classes with no ImageNet counterpart are
left out, and the images' 1-pixel red frame is cut (2 px, as the reference loaders do).
"""
from __future__ import annotations

import json
import os

import numpy as np

from engine.eval.images import combine_fingerprints, file_fingerprint, listing_fingerprint
from engine.eval.sets import SetError, TestSet, _list_folder

MAPPING_FILES = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
                 "imagenet_to_label_2012_v2", "pytorch_to_imagenet_2012_id.json")
BORDER = 2
"""Pixels cut off each edge (the reference loaders' ``crop``: 2 px)."""


def find_objectnet(path: str) -> tuple[str, str]:
    """``(images folder, mappings folder)`` under ``path`` (the release root, its
    ``objectnet-1.0/``, or the images folder itself with ``mappings/`` beside it)."""
    roots = [path, os.path.join(path, "objectnet-1.0"), os.path.dirname(os.path.abspath(path))]
    images = next((os.path.join(r, "images") for r in roots[:2]
                   if os.path.isdir(os.path.join(r, "images"))), None)
    if images is None:
        images = path
    for r in roots + [os.path.dirname(os.path.abspath(images))]:
        for m in (os.path.join(r, "mappings"), r):
            if os.path.isfile(os.path.join(m, MAPPING_FILES[0])):
                return images, m
    raise SetError(f"objectnet: no mappings/{MAPPING_FILES[0]} found in or beside {path} (the "
                   "release ships objectnet-1.0/images/ and objectnet-1.0/mappings/)")


def read_mappings(mappings: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{folder: (ObjectNet label, ImageNet-1K labels)}`` for the overlapping classes."""
    paths = [os.path.join(mappings, n) for n in MAPPING_FILES]
    for p in paths:
        if not os.path.isfile(p):
            raise SetError(f"objectnet: mapping file {p} is missing")
    folder_to_label = _json(paths[0])
    on_to_in = _json(paths[1])
    with open(paths[2], encoding="utf-8") as f:
        in_names = [line.strip() for line in f]
    line_to_label = {int(line): int(label) for label, line in _json(paths[3]).items()}
    name_to_label = {}
    for line, name in enumerate(in_names):
        if line in line_to_label:
            name_to_label[name] = line_to_label[line]
    label_to_folder = {v: k for k, v in folder_to_label.items()}
    out = {}
    for on_label, names in on_to_in.items():
        if on_label not in label_to_folder:
            raise SetError(f"objectnet: {paths[1]} names {on_label!r}, which "
                           f"{MAPPING_FILES[0]} does not")
        labels = []
        for name in names.split("; "):
            if name not in name_to_label:
                raise SetError(f"objectnet: ImageNet class {name!r} of {on_label!r} is not in "
                               f"{paths[2]} / {paths[3]}")
            labels.append(name_to_label[name])
        out[label_to_folder[on_label]] = (on_label, tuple(sorted(set(labels))))
    return out


def _json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as exc:
        raise SetError(f"objectnet: {path} is not valid JSON ({exc})") from None


def load_objectnet(path: str) -> TestSet:
    images, mappings = find_objectnet(path)
    mapping = read_mappings(mappings)
    folders = sorted(mapping)
    position = {f: i for i, f in enumerate(folders)}
    listing = _list_folder(images, "objectnet")
    kept = [(p, f) for p, f in listing if f in position]
    if not kept:
        raise SetError(f"objectnet: none of the class folders in {images} is mapped to "
                       "ImageNet-1K by the mapping files")
    items = [p for p, _ in kept]
    targets = np.asarray([position[f] for _, f in kept], dtype=np.int64)
    groups = [mapping[f][1] for f in folders]
    names = [mapping[f][0] for f in folders]
    fp = listing_fingerprint(images, items, targets.tolist())
    fp = {**fp, "value": combine_fingerprints(fp, *(file_fingerprint(os.path.join(mappings, n))
                                                   for n in MAPPING_FILES))}
    notes = [f"{len(listing) - len(kept)} images of classes without an ImageNet-1K counterpart "
             f"left out; {len(folders)} ObjectNet classes mapped to "
             f"{len({l for g in groups for l in g})} ImageNet-1K classes",
             f"{BORDER}-pixel border cut off each image"]
    present = len({f for _, f in kept})
    if present < len(folders):
        notes.append(f"{present} of the {len(folders)} mapped class folders present")
    return TestSet("objectnet", "objectnet", path, items, targets, groups, names, fp,
                   "objectnet-1.0 images/ + mappings/", border=BORDER, notes=notes)
