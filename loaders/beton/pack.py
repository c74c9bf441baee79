"""Pack real images (an ImageFolder of wnid folders, or a ``path,label`` list) into a .beton.

Labels live in the ImageNet-1K label space (``engine.catalog``: wnid -> timm index), so real and
synthetic sets share one space; ``compact_labels`` renumbers the classes found 0..k-1 instead.
Images are read and decoded on a thread pool; the writer's own pool resizes/encodes. A JPEG
that is already RGB and no larger than ``max_resolution`` is stored verbatim (no re-encode)
when ``write_mode="jpg"`` and ``passthrough`` is on, after decoding it completely with the
decoder FFCV's loader uses (a truncated or damaged JPEG is never stored). Every file that cannot
be decoded is an error, or with ``on_error="skip"`` a skip entry. An interrupted pack leaves a
resumable partial output; running the same pack again resumes it (``overwrite`` starts over),
unless the source changed meanwhile: the journal keeps a fingerprint of the file list (paths,
sizes, modification times, labels), and a different list is refused. The file stores its kind
(``real``) and class names (:class:`loaders.beton.schema.FileInfo`).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os

import cv2
import numpy as np
import PIL.Image

from loaders.beton.format import DEFAULT_PAGE_SIZE, EncodedImage, check_page_size, field_spec
from loaders.beton.pack_config import PackConfig
from loaders.beton.schema import KIND_REAL, ClassEntry, FileInfo, imagenet_classes, real_fields
from loaders.beton.writer import BetonWriter
from loaders.errors import LoaderConfigError, LoadersError
from loaders.files import IMAGE_EXTENSIONS, folder_labels, list_image_folder, wnid_index

__all__ = ["PackConfig", "PackResult", "PackError", "pack", "report", "list_items",
           "load_image", "IMAGE_EXTENSIONS"]

_JPEG_SOI = b"\xff\xd8"
_TURBO_MODES = ("RGB", "L")
"""JPEG colour modes FFCV's decoder (libjpeg-turbo to RGB) handles; others go through PIL."""


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


def _class_entry(key: str, label: int, compact: bool) -> ClassEntry:
    """Name (and wnid) of a class known by its folder name / list label ``key``."""
    imagenet = imagenet_classes()
    if compact:
        wnid_label = {e.wnid: i for i, e in imagenet.items()}.get(key)
        return imagenet[wnid_label] if wnid_label is not None else ClassEntry(key, None)
    return imagenet.get(label, ClassEntry(key, None))


def list_classes(source: str, compact_labels: bool = False):
    """-> (``[(image path, label)]``, ``{label: ClassEntry}``) from a folder or a list file."""
    if os.path.isdir(source):
        listed = list_image_folder(source)
        labels = folder_labels(source, (c for _, c in listed), compact_labels, error=PackError,
                               hint="pass --compact-labels")
        classes = sorted(labels)
        entries = {labels[c]: _class_entry(c, labels[c], compact_labels) for c in classes}
        return [(p, labels[c]) for p, c in listed], entries
    if not os.path.isfile(source):
        raise PackError(f"{source}: neither an image folder nor a list file")
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
    wnids = None  # read from the catalog at the first wnid label
    items, entries = [], {}
    for path, lab, lineno in rows:
        if index is not None:
            label = index[lab]
        elif lab.isdigit():
            label = int(lab)
        else:
            if wnids is None:
                wnids = wnid_index(error=PackError, hint="pass --compact-labels")
            if lab not in wnids:
                raise PackError(f"{source}:{lineno}: label {lab!r} is neither an integer nor an "
                                "ImageNet-1K wnid")
            label = wnids[lab]
        items.append((path, label))
        entries.setdefault(label, _class_entry(lab, label, compact_labels))
    return items, entries


def list_items(source: str, compact_labels: bool = False) -> list[tuple[str, int]]:
    """``[(image path, label)]`` from a folder (sorted classes, sorted files) or a list file."""
    return list_classes(source, compact_labels)[0]


def _decode_jpeg(data: bytes, h: int, w: int):
    """Decode completely with FFCV's own decoder (libjpeg-turbo): None if it reports any
    error or warning (truncated data, damaged entropy data, missing end marker)."""
    from ffcv.libffcv import imdecode

    out = np.empty((h, w, 3), dtype=np.uint8)
    rc = imdecode(np.frombuffer(data, np.uint8), out, h, w, h, w, 0, 0, 1, 1, False, False)
    return out if rc == 0 else None


def _decode_pil(path: str, data: bytes) -> np.ndarray:
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            im.load()  # raises on truncated files (LOAD_TRUNCATED_IMAGES is off)
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad files
        raise PackError(f"{path}: cannot decode image ({exc})") from None


def load_image(path: str, cfg: PackConfig):
    """-> EncodedImage (verbatim JPEG) or HxWx3 uint8 RGB array; PackError if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PackError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise PackError(f"{path}: empty file")
    if data[:2] == _JPEG_SOI:
        try:
            with PIL.Image.open(io.BytesIO(data)) as im:
                (w, h), mode = im.size, im.mode
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad files
            raise PackError(f"{path}: not a readable JPEG ({exc})") from None
        if mode not in _TURBO_MODES:
            return _decode_pil(path, data)  # CMYK and friends
        arr = _decode_jpeg(data, h, w)
        if arr is None:
            raise PackError(f"{path}: truncated or corrupt JPEG (the decoder reports an error)")
        fits = cfg.max_resolution is None or max(w, h) <= cfg.max_resolution
        if cfg.passthrough and cfg.write_mode == "jpg" and mode == "RGB" and fits:
            return EncodedImage(data, h, w, "jpg")
        return arr
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8),
                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        arr = None
    if arr is not None:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return _decode_pil(path, data)


def job_fingerprint(cfg: PackConfig, items: list) -> dict:
    """What a resume must match: the source's file list (path, size, mtime, label)."""
    h = hashlib.sha256()
    for path, label in items:
        try:
            st = os.stat(path)
            h.update(json.dumps([path, st.st_size, st.st_mtime_ns, label]).encode())
        except OSError:
            h.update(json.dumps([path, None, None, label]).encode())
    return {"pack": os.path.abspath(cfg.source), "files": len(items), "sha256": h.hexdigest(),
            "compact_labels": cfg.compact_labels, "passthrough": cfg.passthrough}


def _open_writer(cfg: PackConfig, n: int, fields: dict, info: FileInfo,
                 job: dict) -> BetonWriter:
    """A fresh writer, or the resumed partial of an interrupted pack of the same job."""
    page_size = cfg.page_size or DEFAULT_PAGE_SIZE
    try:
        check_page_size(page_size)
    except ValueError as exc:
        raise LoaderConfigError(f"page_size: {exc}") from None
    if cfg.overwrite or not BetonWriter.partial_exists(cfg.out):
        return BetonWriter(cfg.out, n, fields, num_workers=cfg.num_workers,
                           page_size=page_size, overwrite=cfg.overwrite, info=info, job=job)
    writer = BetonWriter.resume(cfg.out, num_workers=cfg.num_workers)
    same = [field_spec(f) for f in writer.fields.values()] == [field_spec(f) for f in
                                                                 fields.values()]
    if writer.num_samples != n or not same or list(writer.fields) != list(fields):
        writer.abort()
        raise PackError(f"{cfg.out}: an interrupted pack with other settings or inputs left a "
                        "partial output; pass --overwrite to start over")
    if writer.job != job:
        writer.abort()
        raise PackError(f"{cfg.out}: the source changed since the interrupted pack (files "
                        "added, removed or modified), so the partial output no longer matches "
                        "it; pass --overwrite to start over")
    return writer


def pack(cfg: PackConfig) -> PackResult:
    """Pack ``cfg.source`` into ``cfg.out`` (atomic; see module doc)."""
    items, classes = list_classes(cfg.source, cfg.compact_labels)
    if not items:
        raise PackError(f"{cfg.source}: no images found (extensions {IMAGE_EXTENSIONS})")
    fields = real_fields(cfg.max_resolution, cfg.write_mode, cfg.jpeg_quality)
    info = FileInfo(KIND_REAL, classes=classes)
    skipped, counts, n_pass = [], collections.Counter(), 0
    from tqdm import tqdm

    window = 4 * cfg.num_workers
    writer = _open_writer(cfg, len(items), fields, info, job_fingerprint(cfg, items))
    bar = tqdm(total=len(items), disable=not cfg.progress, desc="pack", unit="img")
    done = writer.done_ids
    for sid in done:
        counts[items[sid][1]] += 1
    todo = [sid for sid in range(len(items)) if sid not in done]
    bar.update(len(done))
    with concurrent.futures.ThreadPoolExecutor(cfg.num_workers, "pack-read") as pool, writer:
        futures = collections.deque()
        try:
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
                    writer.append(done_sid, {"image": image, "label": label,
                                             "sample_id": done_sid})
                    counts[label] += 1
                    bar.update(1)
        except BaseException:
            for _, fut in futures:
                fut.cancel()  # Ctrl-C / errors: do not wait for reads nobody will use
            raise
        if not counts:
            raise PackError(f"{cfg.source}: none of its {len(items)} images could be read "
                            f"(first: {skipped[0][1]})")
        writer.info = FileInfo(KIND_REAL, classes={k: v for k, v in classes.items()
                                                   if k in counts})
        writer.close(shrink=bool(skipped))
    bar.close()
    return PackResult(len(items) - len(skipped), skipped, n_pass, dict(sorted(counts.items())))


def report(cfg: PackConfig, res: PackResult, stream) -> None:
    """What ``synthclone pack`` prints, and the list of skipped files beside the output."""
    print(f"packed {res.num_written} images of {len(res.classes)} classes into {cfg.out} "
          f"({res.passthrough} JPEGs stored verbatim)", file=stream)
    if not res.skipped:
        return
    listing = cfg.out + ".skipped.txt"
    tmp = listing + ".tmp"
    try:
        with open(tmp, "w", encoding="utf8") as f:
            f.writelines(f"{p}\t{why}\n" for p, why in res.skipped)
        os.replace(tmp, listing)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"skipped {len(res.skipped)} unreadable files (listed in {listing}):", file=stream)
    for _, why in res.skipped[:20]:
        print(f"  {why}", file=stream)
