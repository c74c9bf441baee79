"""Summaries and contact sheets of a .beton: counts per class and domain, fields, size, modes.

Class names and the domain come from what the file stores (:class:`FileInfo`: a clone of
custom classes shows its own names). Only files without it (written by FFCV or an older
synthclone) fall back to ImageNet-1K names, marked as a guess.
"""
from __future__ import annotations

import collections
import os

import numpy as np
from ffcv.fields import IntField, RGBImageField

from loaders.beton import format as fmt
from loaders.beton.reader import BetonReader
from loaders.beton.schema import KIND_GENERATED, imagenet_classes

__all__ = ["summarize", "contact_sheet", "class_names", "format_summary"]
DOMAIN_OF_KIND = {"real": "real", KIND_GENERATED: "synthetic"}
"""Domain name shown for a file kind."""


def class_names(r: BetonReader, labels) -> dict:
    """label -> ``"wnid name"`` (or the name alone) from the file's stored class names; for
    files that store none, ImageNet-1K names (empty when the catalog is unavailable)."""
    stored = r.info.classes if r.info is not None else None
    table = stored if stored is not None else imagenet_classes()
    out = {}
    for label in labels:
        entry = table.get(int(label))
        if entry is not None:
            out[int(label)] = f"{entry.wnid} {entry.name}" if entry.wnid else entry.name
    return out


def _image_field(r: BetonReader) -> str | None:
    names = [n for n, f in r.fields.items() if isinstance(f, RGBImageField)]
    return "image" if "image" in names else (names[0] if names else None)


def _column(r: BetonReader, name: str) -> np.ndarray:
    k = list(r.fields).index(name)
    return np.asarray(r.metadata[f"f{k}"])


def summarize(r: BetonReader, label_field: str = "label") -> dict:
    """A JSON-able summary: sizes, fields, kind, write-mode mix, image sizes, class/domain
    counts and class names."""
    out = {"path": r.path, "file_bytes": r.file_size, "num_samples": len(r),
           "page_size": r.page_size, "checksums": r.has_checksums,
           "kind": r.info.kind if r.info else None,
           "fields": {n: fmt.field_spec(f)["type"] for n, f in r.fields.items()}}
    if r.info is not None and r.info.plan_hash:
        out["plan_hash"] = r.info.plan_hash
    if r.info is not None and r.info.recipes:
        out["recipes"] = list(r.info.recipes)
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
        out["domains"] = {DOMAIN_OF_KIND.get(out["kind"], "unknown"): len(r)}
    if label_field in r.fields and isinstance(r.fields[label_field], IntField):
        counts = collections.Counter(_column(r, label_field).tolist())
        out["num_classes"] = len(counts)
        out["classes"] = {int(k): v for k, v in sorted(counts.items())}
        out["class_names"] = class_names(r, counts)
        out["class_names_source"] = "file" if r.info is not None else "imagenet-1k (guess)"
    return out


def format_summary(s: dict, top: int = 20) -> str:
    """The text ``synthclone inspect`` prints for a :func:`summarize` dict."""
    lines = [f"{s['path']}: {s['num_samples']} samples, {s['file_bytes'] / 2**20:.1f} MiB, "
             f"page {s['page_size']}, kind {s['kind'] or 'unknown (no synthclone info)'}"
             + (f", plan {s['plan_hash'][:16]}" if s.get("plan_hash") else "")
             + ("" if s["checksums"] else ", no checksums (written by FFCV or an older tool)"),
             "fields: " + ", ".join(f"{n} ({t})" for n, t in s["fields"].items())]
    if "write_modes" in s:
        lines.append(f"write modes: {s['write_modes']}  height {s['image_height']}  "
                     f"width {s['image_width']}")
    lines.append(f"domains: {s['domains']}")
    if "classes" in s:
        guess = "" if s["class_names_source"] == "file" else " (names: ImageNet-1K guess)"
        lines.append(f"classes: {s['num_classes']}{guess}")
        for label, n in sorted(s["classes"].items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
            lines.append(f"  {label:>5} {n:>7}  {s['class_names'].get(label, '')}")
    if "verify" in s:
        v = s["verify"]
        lines.append(f"verify: OK ({v['image_modes']}, "
                     f"{'checksums verified' if v['checksums'] else 'no checksums to verify'})")
    if "grid" in s:
        lines.append(f"grid: {s['grid']}")
    return "\n".join(lines)


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
    names = class_names(r, [c for c, _ in groups if c is not None])
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
