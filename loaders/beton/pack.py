"""Pack real images (an ImageFolder of wnid folders, or a ``path,label`` list) into a .beton.

Labels live in the ImageNet-1K label space (``engine.catalog``: wnid -> timm index), so real and
synthetic sets share one space; ``compact_labels`` renumbers the classes found 0..k-1 instead.
Images are read and decoded on a thread pool; the writer's own pool resizes/encodes. A JPEG
that is already RGB and no larger than ``max_resolution`` is stored verbatim (no re-encode)
when ``write_mode="jpg"`` and ``passthrough`` is on. An interrupted pack leaves a resumable
partial output; running the same pack again resumes it (``overwrite`` starts over).
"""
from __future__ import annotations

from loaders.errors import LoadersError
import collections
import concurrent.futures
import dataclasses
import io
import os

import cv2
import numpy as np
import PIL.Image
from ffcv.fields import IntField, RGBImageField

from loaders.beton.format import DEFAULT_PAGE_SIZE, EncodedImage, field_spec
from loaders.beton.pack_config import PackConfig
from loaders.beton.writer import BetonWriter
from loaders.files import IMAGE_EXTENSIONS, class_folders, list_image_folder

__all__ = ["PackConfig", "PackResult", "pack", "list_items"]

_JPEG_SOI = b"\xff\xd8"


@dataclasses.dataclass
class PackResult:
    """What ``pack`` did."""

    num_written: int
    """Samples in the output file."""
    skipped: list
    """``(path, reason)`` of every image left out (``on_error="skip"``)."""
    passthrough: int
    """Images stored verbatim (no re-encode)."""
    classes: dict
    """label -> number of samples written."""


class PackError(LoadersError, ValueError):
    """An input image or list line that cannot be packed (message names the file)."""


def _imagenet_index() -> dict:
    from engine.catalog import imagenet_index  # the one engine import loaders may do

    return imagenet_index()


def list_items(source: str, compact_labels: bool = False) -> list[tuple[str, int]]:
    """``[(image path, label)]`` from an image folder or a ``path,label`` list file.

    A folder is listed by :func:`loaders.files.list_image_folder` (the product's one lister:
    torchvision ``ImageFolder`` rules, i.e. case-insensitive extensions
    :data:`loaders.files.IMAGE_EXTENSIONS`, hidden files skipped, images found recursively in
    each class folder, classes and files sorted)."""
    if os.path.isdir(source):
        classes = class_folders(source)
        if not classes:
            raise PackError(f"{source}: no class sub-folders (expected ImageFolder layout "
                            "root/<wnid>/<image>)")
        if compact_labels:
            labels = {c: i for i, c in enumerate(classes)}
        else:
            index = _imagenet_index()
            unknown = [c for c in classes if c not in index]
            if unknown:
                raise PackError(f"{source}: folder names {unknown[:5]} are not ImageNet-1K wnids;"
                                " rename them or pass --compact-labels")
            labels = {c: index[c] for c in classes}
        return [(path, labels[c]) for path, c in list_image_folder(source)]
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source}: neither an image folder nor a list file")
    base = os.path.dirname(os.path.abspath(source))
    rows = []
    with open(source, encoding="utf8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#") or (lineno == 1 and line.startswith("path,")):
                continue
            path, sep, label = line.rpartition(",")
            if not sep or not path.strip():
                raise PackError(f"{source}:{lineno}: expected 'path,label', got {line!r}")
            rows.append((os.path.join(base, path.strip()), label.strip(), lineno))
    keys = sorted({lab for _, lab, _ in rows})
    index = {k: i for i, k in enumerate(keys)} if compact_labels else None
    items = []
    for path, lab, lineno in rows:
        if index is not None:
            items.append((path, index[lab]))
        elif lab.isdigit():
            items.append((path, int(lab)))
        elif lab in _imagenet_index():
            items.append((path, _imagenet_index()[lab]))
        else:
            raise PackError(f"{source}:{lineno}: label {lab!r} is neither an integer nor an "
                            "ImageNet-1K wnid")
    return items


def load_image(path: str, cfg: PackConfig):
    """-> EncodedImage (verbatim JPEG) or HxWx3 uint8 RGB array; PackError if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PackError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if cfg.passthrough and cfg.write_mode == "jpg" and data[:2] == _JPEG_SOI:
        try:
            with PIL.Image.open(io.BytesIO(data)) as im:
                (w, h), mode = im.size, im.mode
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad files
            raise PackError(f"{path}: not a readable JPEG ({exc})") from None
        if mode == "RGB" and (cfg.max_resolution is None or max(w, h) <= cfg.max_resolution):
            return EncodedImage(data, h, w, "jpg")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is not None:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001
        raise PackError(f"{path}: cannot decode image ({exc})") from None


def _open_writer(cfg: PackConfig, n: int, fields: dict) -> BetonWriter:
    """A fresh writer, or the resumed partial of an interrupted pack of the same job."""
    if cfg.overwrite or not BetonWriter.partial_exists(cfg.out):
        return BetonWriter(cfg.out, n, fields, num_workers=cfg.num_workers,
                           page_size=cfg.page_size or DEFAULT_PAGE_SIZE,
                           overwrite=cfg.overwrite)
    writer = BetonWriter.resume(cfg.out, num_workers=cfg.num_workers)
    same = [field_spec(f) for f in writer.fields.values()] == [field_spec(f) for f in
                                                                 fields.values()]
    if writer.num_samples != n or not same or list(writer.fields) != list(fields):
        writer.abort()
        raise PackError(f"{cfg.out}: an interrupted pack with other settings or inputs left a "
                        "partial output; pass --overwrite to start over")
    return writer


def pack(cfg: PackConfig) -> PackResult:
    """Pack ``cfg.source`` into ``cfg.out`` (atomic; see module doc)."""
    items = list_items(cfg.source, cfg.compact_labels)
    if not items:
        raise PackError(f"{cfg.source}: no images found (extensions {IMAGE_EXTENSIONS})")
    fields = {"image": RGBImageField(write_mode=cfg.write_mode, max_resolution=cfg.max_resolution,
                                     jpeg_quality=cfg.jpeg_quality),
              "label": IntField(), "sample_id": IntField()}
    skipped, counts, n_pass = [], collections.Counter(), 0
    from tqdm import tqdm

    bar = tqdm(total=len(items), disable=not cfg.progress, desc="pack", unit="img")
    window = 4 * cfg.num_workers
    writer = _open_writer(cfg, len(items), fields)
    done = writer.done_ids
    for sid in done:
        counts[items[sid][1]] += 1
    todo = [sid for sid in range(len(items)) if sid not in done]
    bar.update(len(done))
    with concurrent.futures.ThreadPoolExecutor(cfg.num_workers, "pack-read") as pool, writer:
        futures = collections.deque()
        for k in range(len(todo) + window):
            if k < len(todo):
                futures.append((todo[k], pool.submit(load_image, items[todo[k]][0], cfg)))
            if len(futures) > window or (k >= len(todo) and futures):
                done_sid, fut = futures.popleft()
                path, label = items[done_sid]
                try:
                    image = fut.result()
                except PackError as exc:
                    if cfg.on_error == "fail":
                        raise PackError(f"{exc} (pass --on-error skip to leave such files "
                                        "out; a re-run resumes the partial output)") from None
                    skipped.append((path, str(exc)))
                    bar.update(1)
                    continue
                n_pass += isinstance(image, EncodedImage)
                writer.append(done_sid, {"image": image, "label": label, "sample_id": done_sid})
                counts[label] += 1
                bar.update(1)
        writer.close(shrink=bool(skipped))
    bar.close()
    return PackResult(len(items) - len(skipped), skipped, n_pass, dict(sorted(counts.items())))
