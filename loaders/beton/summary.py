"""Summaries and contact sheets of a .beton: counts per class and domain, fields, size, modes."""
from __future__ import annotations

import collections
import os

import numpy as np
from ffcv.fields import IntField, RGBImageField

from loaders.beton import format as fmt
from loaders.beton.reader import BetonReader

__all__ = ["summarize", "contact_sheet", "class_names"]
SYNTHETIC_MARKER_FIELDS = ("recipe", "prompt")
"""Fields only generated files carry: their presence marks a file's domain as synthetic."""


def class_names(labels) -> dict:
    """label -> ImageNet-1K class name (``engine.catalog.class_names``) for labels in 0..999.

    Files do not record their class names yet, so a file with compact labels or custom classes
    shows ImageNet names here too (tracked by issue #15)."""
    from engine.catalog import class_names as imagenet_names  # the one engine import allowed

    names = imagenet_names()
    return {int(l): names[int(l)] for l in labels if 0 <= int(l) < len(names)}


def _image_field(r: BetonReader) -> str | None:
    names = [n for n, f in r.fields.items() if isinstance(f, RGBImageField)]
    return "image" if "image" in names else (names[0] if names else None)


def _column(r: BetonReader, name: str) -> np.ndarray:
    k = list(r.fields).index(name)
    return np.asarray(r.metadata[f"f{k}"])


def summarize(r: BetonReader, label_field: str = "label") -> dict:
    """A JSON-able summary: sizes, fields, write-mode mix, image sizes, class/domain counts."""
    out = {"path": r.path, "file_bytes": r.file_size, "num_samples": len(r),
           "page_size": r.page_size,
           "fields": {n: fmt.field_spec(f)["type"] for n, f in r.fields.items()}}
    img = _image_field(r)
    if img is not None and len(r):
        meta = _column(r, img)
        modes = collections.Counter(meta["mode"].tolist())
        out["write_modes"] = {"jpg": modes.get(fmt.IMAGE_MODE_JPG, 0),
                              "raw": modes.get(fmt.IMAGE_MODE_RAW, 0)}
        out["image_height"] = [int(meta["height"].min()), int(meta["height"].max())]
        out["image_width"] = [int(meta["width"].min()), int(meta["width"].max())]
    if "domain" in r.fields and isinstance(r.fields["domain"], IntField):
        dom = collections.Counter(_column(r, "domain").tolist())
        out["domains"] = {str(k): v for k, v in sorted(dom.items())}
    else:
        synthetic = any(n in r.fields for n in SYNTHETIC_MARKER_FIELDS)
        out["domains"] = {"synthetic" if synthetic else "real": len(r)}
    if label_field in r.fields and isinstance(r.fields[label_field], IntField):
        counts = collections.Counter(_column(r, label_field).tolist())
        out["num_classes"] = len(counts)
        out["classes"] = {int(k): v for k, v in sorted(counts.items())}
    return out


def contact_sheet(r: BetonReader, out_png: str, per_class: int = 6, max_classes: int = 10,
                  seed: int = 0, label_field: str = "label") -> str:
    """Write a contact sheet to ``out_png``: one row per class (``max_classes`` classes drawn at
    random when there are more), ``per_class`` random samples each, captioned with the class
    name (:mod:`loaders.sheets`); beside it an HTML sheet (``X.html``) that also shows each
    image's prompt."""
    from loaders.sheets import SheetError, write_sheet

    if per_class < 1 or max_classes < 1:
        raise SheetError(f"a contact sheet needs at least one class and one image per class "
                         f"(got {max_classes} classes x {per_class} images)")
    img = _image_field(r)
    if img is None:
        raise SheetError(f"{r.path} has no image field to draw (fields: {', '.join(r.fields)})")
    rng = np.random.default_rng(seed)
    if label_field in r.fields:
        labels = _column(r, label_field)
        classes = sorted(set(labels.tolist()))
        if len(classes) > max_classes:
            classes = sorted(rng.choice(classes, max_classes, replace=False).tolist())
        groups = [(c, np.flatnonzero(labels == c)) for c in classes]
    else:
        groups = [(None, np.arange(len(r)))]
    names = class_names([c for c, _ in groups if c is not None])
    rows = []
    for c, idx in groups:
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        caption = "" if c is None else f"{c} {names.get(c, '')}".strip()
        rows.append([_cell(r.read(i), img, caption) for i in sorted(int(j) for j in pick)])
    return write_sheet(rows, out_png, columns=per_class,
                       title=f"{os.path.basename(r.path)}: contact sheet")


def _cell(sample: dict, img: str, caption: str) -> tuple:
    """A contact-sheet cell: the image, its class caption and, in generated files, its prompt
    (stored as UTF-8 bytes), which the HTML sheet shows."""
    prompt = sample.get("prompt")
    if prompt is None:
        return sample[img], caption
    return sample[img], caption, bytes(np.asarray(prompt, np.uint8)).decode("utf-8", "replace")
