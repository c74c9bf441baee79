"""``synthclone export FILE.beton DIR [--limit N] [--class WNID]``: images as files + a table
(the command line is ``engine/beton_cli.py:export_main``).

DIR gets the ImageFolder layout (``DIR/<wnid or label>/<index>.jpg``) and ``samples.csv`` (or
``samples.jsonl``) with one row per image: file, index, sample_id, label, wnid, class name,
recipe name, prompt (as text). JPEGs are written as stored (no re-encode), raw images as PNG.
Class names and recipe names come from the file (:class:`loaders.beton.schema.FileInfo`);
every exported sample's checksums are verified. DIR is built beside itself and renamed into
place, so an interrupted export leaves no half-written folder.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil

import numpy as np
from ffcv.fields import BytesField, IntField, JSONField, RGBImageField

from loaders.beton.export_config import ExportConfig
from loaders.beton.reader import BetonReader
from loaders.beton.schema import imagenet_classes, prompt_text
from loaders.errors import LoaderConfigError, LoadersError

__all__ = ["ExportConfig", "export", "COLUMNS"]

COLUMNS = ("file", "index", "sample_id", "label", "wnid", "class_name", "recipe", "prompt")
"""Columns of ``samples.csv`` (keys of each ``samples.jsonl`` line)."""


def _classes(r: BetonReader) -> dict:
    return r.info.classes if r.info is not None else imagenet_classes()


def _labels_for(r: BetonReader, key: str) -> set:
    """Labels a ``--class`` key names (wnid, label number or stored class name)."""
    table = _classes(r)
    k = key.strip()
    found = {lab for lab, e in table.items()
             if e.wnid == k or e.name.lower() == k.lower()}
    if not found and k.lstrip("-").isdigit():
        found = {int(k)}
    if not found:
        some = ", ".join(f"{e.wnid or lab} ({e.name})" for lab, e in sorted(table.items())[:8])
        raise LoaderConfigError(f"class {key!r} is not in {r.path}: give a wnid, a label "
                                f"number or a class name (e.g. {some})")
    return found


def _select(r: BetonReader, cfg: ExportConfig) -> np.ndarray:
    idx = np.arange(len(r))
    if cfg.class_key is not None:
        if not isinstance(r.fields.get("label"), IntField):
            raise LoaderConfigError(f"{r.path} has no 'label' field to select a class by")
        labels = np.asarray(r.metadata[f"f{list(r.fields).index('label')}"])
        idx = idx[np.isin(labels, sorted(_labels_for(r, cfg.class_key)))]
    return idx[:cfg.limit] if cfg.limit else idx


def _image_field(r: BetonReader) -> str:
    names = [n for n, f in r.fields.items() if isinstance(f, RGBImageField)]
    if not names:
        raise LoaderConfigError(f"{r.path} has no image field to export")
    return "image" if "image" in names else names[0]


def _row(r: BetonReader, i: int, values: dict, rel: str) -> dict:
    label = values.get("label")
    entry = _classes(r).get(label) if label is not None else None
    recipe = values.get("recipe")
    recipes = r.info.recipes if r.info is not None else []
    if isinstance(recipe, int) and 0 <= recipe < len(recipes):
        recipe = recipes[recipe]
    prompt = values.get("prompt")
    if isinstance(r.fields.get("prompt"), JSONField):
        prompt = json.dumps(prompt)
    elif isinstance(r.fields.get("prompt"), BytesField):
        prompt = prompt_text(prompt)
    return {"file": rel, "index": i, "sample_id": values.get("sample_id"), "label": label,
            "wnid": entry.wnid if entry else None, "class_name": entry.name if entry else None,
            "recipe": recipe, "prompt": prompt}


def _write_image(r: BetonReader, i: int, image_field: str, folder: str, stem: str) -> str:
    data, mode = r.encoded(i, image_field)
    if mode == "jpg":
        path = os.path.join(folder, stem + ".jpg")
        with open(path, "wb") as f:
            f.write(data)
        return path
    import PIL.Image

    path = os.path.join(folder, stem + ".png")
    PIL.Image.fromarray(r.read(i)[image_field]).save(path)
    return path


def export(source: str, out: str, cfg: ExportConfig | None = None,
           overwrite: bool = False) -> dict:
    """Export ``source`` into the folder ``out`` (see module doc); returns counts."""
    cfg = cfg or ExportConfig()
    out = os.fspath(out).rstrip(os.sep) or os.sep
    if os.path.exists(out) and not os.path.isdir(out):
        raise LoadersError(f"{out} exists and is not a folder; give a folder to export into")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise LoadersError(f"{out} exists and is not empty; pass --overwrite to replace it")
    from tqdm import tqdm

    with BetonReader(source) as r:
        image_field = _image_field(r)
        idx = _select(r, cfg)
        tmp = out + ".export-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            rows = []
            for i in tqdm(idx.tolist(), disable=not cfg.progress, desc="export", unit="img"):
                r.check_sample(i)  # a corrupt sample stops the export
                values = r.read(i, [n for n in r.fields if n != image_field])
                label = values.get("label")
                entry = _classes(r).get(label) if label is not None else None
                sub = (entry.wnid if entry and entry.wnid else str(label)) \
                    if label is not None else "all"
                folder = os.path.join(tmp, sub)
                os.makedirs(folder, exist_ok=True)
                path = _write_image(r, i, image_field, folder, f"{i:08d}")
                rows.append(_row(r, i, values, os.path.relpath(path, tmp)))
            _write_table(os.path.join(tmp, f"samples.{cfg.format}"), rows, cfg.format)
            _replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return {"out": out, "exported": len(rows), "table": os.path.join(out, f"samples.{cfg.format}")}


def _write_table(path: str, rows: list, fmt_: str) -> None:
    if fmt_ == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    with open(path, "w", encoding="utf-8") as f:
        f.write(buf.getvalue())


def _replace_dir(tmp: str, out: str) -> None:
    """Rename the finished ``tmp`` folder to ``out`` (replacing an old ``out``)."""
    old = None
    if os.path.exists(out):
        old = out + ".export-old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
