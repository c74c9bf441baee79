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
TILE = 96
"""Contact-sheet tile size in pixels."""


def class_names(labels) -> dict:
    """label -> ImageNet-1K class name where known (empty when the catalog is unavailable)."""
    try:
        from engine.catalog.classes import _imagenet_table
        wnids, lemmas, _ = _imagenet_table()
    except (ImportError, LookupError, OSError):
        return {}
    return {int(l): f"{wnids[l]} {lemmas[l][0]}" for l in labels if 0 <= int(l) < len(wnids)}


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
    """Write a grid (one row per class, ``per_class`` random samples) to ``out_png``."""
    from PIL import Image, ImageDraw

    img = _image_field(r)
    if img is None:
        raise ValueError(f"{r.path} has no image field to draw")
    rng = np.random.default_rng(seed)
    if label_field in r.fields:
        labels = _column(r, label_field)
        classes = sorted(set(labels.tolist()))
        if len(classes) > max_classes:
            classes = sorted(rng.choice(classes, max_classes, replace=False).tolist())
        rows = [(c, np.flatnonzero(labels == c)) for c in classes]
    else:
        rows = [("all", np.arange(len(r)))]
    names = class_names([c for c, _ in rows if c != "all"])
    label_w = 180
    sheet = Image.new("RGB", (label_w + per_class * TILE, len(rows) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (c, idx) in enumerate(rows):
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        draw.text((4, y * TILE + 4), f"{c}\n{names.get(c, '')}"[:60], fill="black")
        for x, i in enumerate(sorted(int(j) for j in pick)):
            tile = Image.fromarray(r.read(i)[img])
            tile.thumbnail((TILE, TILE))
            sheet.paste(tile, (label_w + x * TILE, y * TILE))
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    tmp = out_png + ".tmp.png"
    sheet.save(tmp)
    os.replace(tmp, out_png)
    return out_png
