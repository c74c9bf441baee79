"""Turn one sample's Python values into a metadata record plus data blobs, as FFCV would.

``check_sample`` runs in the producer (cheap checks, errors name the sample); ``encode_sample``
runs on the writer's pool: it calls each FFCV field's own ``encode`` with a recording ``malloc``
(images go through FFCV's own ``resizer``/``encode_jpeg`` in the same order as its ``encode``),
so the stored bytes are what FFCV's ``DatasetWriter`` stores. It also computes the sample's data
checksum there (``zlib.crc32`` releases the GIL), off the producer's thread.

Custom fields (any other ``Field`` subclass, FFCV type id 255) are encoded by their own
``encode`` with no checks, as FFCV does. Our ``malloc`` cannot know the final file offset yet,
so it returns a sentinel pointer; the byte offset where the field stored it is found in the
record, and the writer patches the real pointer there when it places the blob.
"""
from __future__ import annotations

from loaders.errors import LoadersError
import numbers

import numpy as np
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField, TorchTensorField)
from ffcv.fields.rgb_image import encode_jpeg, resizer

from loaders.beton.format import IMAGE_MODE_JPG, IMAGE_MODE_RAW, EncodedImage, is_custom
from loaders.beton.integrity import chain_crc

SENTINEL_BASE = 0x5C5C5C5C00000000
"""Pointer handed to a custom field's ``encode`` (plus the malloc count): found, then patched."""


class SampleError(LoadersError, ValueError):
    """A sample's values do not fit its fields (message names the sample and the field)."""


def check_sample(sample_id: int, values: dict, fields: dict) -> None:
    """Validate ``values`` against ``fields`` (names, types, image dtype/shape, array shape)."""
    missing = [n for n in fields if n not in values]
    extra = [n for n in values if n not in fields]
    if missing or extra:
        raise SampleError(f"sample {sample_id}: missing fields {missing}, unknown fields {extra};"
                          f" expected exactly {list(fields)}")
    for name, field in fields.items():
        v = values[name]
        if type(v) is int and type(field) is IntField:  # the common case, without ABC checks
            continue
        if is_custom(field):
            continue  # FFCV checks nothing either: the field's own encode decides
        where = f"sample {sample_id}, field {name!r}"
        if isinstance(field, RGBImageField):
            if isinstance(v, EncodedImage):
                continue
            if hasattr(v, "mode") and hasattr(v, "size") and not isinstance(v, np.ndarray):
                v = np.asarray(v)  # a PIL image
            if not isinstance(v, np.ndarray):
                raise SampleError(f"{where}: expected an HxWx3 uint8 numpy array, PIL image or "
                                  f"EncodedImage, got {type(v).__name__}")
            if v.dtype != np.uint8 or v.ndim != 3 or v.shape[2] != 3:
                raise SampleError(f"{where}: image must be uint8 HxWx3 RGB, got dtype {v.dtype} "
                                  f"shape {v.shape}")
            if v.shape[0] == 0 or v.shape[1] == 0:
                raise SampleError(f"{where}: empty image {v.shape}")
            if field.max_resolution is None and max(v.shape[:2]) >= 1 << 16:
                raise SampleError(f"{where}: image {v.shape} exceeds the 16-bit height/width")
        elif isinstance(field, (IntField, FloatField)):
            ok = (numbers.Integral if isinstance(field, IntField) else numbers.Real)
            if isinstance(v, np.ndarray) and v.shape == ():
                v = v.item()
            if not isinstance(v, ok) or isinstance(v, bool) and isinstance(field, FloatField):
                raise SampleError(f"{where}: expected {ok.__name__.lower()} scalar, got "
                                  f"{type(v).__name__}")
        elif isinstance(field, JSONField):
            continue  # json.dumps reports what it cannot encode
        elif isinstance(field, BytesField):
            # FFCV stores ``size`` elements cast to uint8 (``buffer[:] = value``): np.zeros(2)
            # becomes two zero bytes. Any 1-D numeric array is taken the same way.
            if not isinstance(v, (bytes, bytearray, memoryview, np.ndarray)):
                raise SampleError(f"{where}: expected bytes or a 1-D array (uint8; other "
                                  f"numeric dtypes are cast to uint8 as FFCV does), got "
                                  f"{type(v).__name__}")
            if isinstance(v, np.ndarray) and (v.ndim != 1 or v.dtype.kind not in "biuf"):
                raise SampleError(f"{where}: bytes array must be 1-D and numeric (pass "
                                  f"bytes or a 1-D uint8 array), got {v.dtype} {v.shape}")
        elif isinstance(field, (NDArrayField, TorchTensorField)):
            arr = v.numpy() if isinstance(field, TorchTensorField) and hasattr(v, "numpy") else v
            if not isinstance(arr, np.ndarray):
                raise SampleError(f"{where}: expected an array, got {type(v).__name__}")
            want = np.dtype(field.dtype) if isinstance(field, NDArrayField) and not isinstance(
                field, TorchTensorField) else None
            if tuple(arr.shape) != tuple(field.shape) or (want is not None and arr.dtype != want):
                raise SampleError(f"{where}: array must be {want or field.dtype} "
                                  f"{tuple(field.shape)}, got {arr.dtype} {arr.shape}")


def _encode_rgb(field: RGBImageField, dest, image: np.ndarray) -> np.ndarray:
    """``RGBImageField.encode`` step for step (FFCV's ``resizer`` and ``encode_jpeg``, the same
    smart/proportion decisions) without its per-call numba dict lookup; the round-trip tests
    check the bytes against FFCV's own writer."""
    if field.max_resolution is not None and max(image.shape[:2]) > field.max_resolution:
        image = resizer(image, field.max_resolution)  # FFCV resizes only when it shrinks
    mode, as_jpg = field.write_mode, None
    if mode == "smart":
        as_jpg = encode_jpeg(image, field.jpeg_quality)
        mode = "jpg" if field.smart_threshold is not None and \
            image.nbytes > field.smart_threshold else "raw"
    elif mode == "proportion":
        mode = "jpg" if np.random.rand() < field.proportion else "raw"
    if mode not in ("jpg", "raw"):
        raise ValueError(f"unsupported write mode {field.write_mode!r}")
    dest["mode"] = IMAGE_MODE_JPG if mode == "jpg" else IMAGE_MODE_RAW
    dest["height"], dest["width"] = image.shape[:2]
    if mode == "jpg":
        return as_jpg if as_jpg is not None else encode_jpeg(image, field.jpeg_quality)
    return np.ascontiguousarray(image).reshape(-1)


def _find_sentinel(raw: bytes, start: int, end: int, value: int, name: str) -> int:
    key = value.to_bytes(8, "little")
    pos = raw.find(key, start, end)
    if pos < 0:
        raise SampleError(f"custom field {name!r} did not store the pointer malloc returned in "
                          "its metadata (the streaming writer patches it there)")
    return pos


def encode_sample(values: dict, fields: dict, layout) -> tuple:
    """-> (record bytes: uint8 array of ``layout.itemsize``, blobs: [(pointer offset in the
    record, uint8 array)] in field order, CRC-32 of the blobs).

    ``layout`` is the writer's :class:`loaders.beton.format.RecordLayout`.
    """
    record = np.zeros(1, dtype=layout.mdtype)
    blobs = []
    for i, (name, field) in enumerate(fields.items()):
        dest = record[f"f{i}"][0:1]
        v = values[name]
        off = layout.ptr_offsets[i]
        if layout.custom[i]:
            calls = []

            def malloc(size, _calls=calls):
                buf = np.zeros(int(size), dtype=np.uint8)
                _calls.append(buf)
                return SENTINEL_BASE + len(_calls) - 1, buf

            field.encode(dest, v, malloc)
            raw = record.tobytes()
            start, end = layout.spans[i]
            blobs.extend((_find_sentinel(raw, start, end, SENTINEL_BASE + k, name), b)
                         for k, b in enumerate(calls))
            continue
        if isinstance(field, RGBImageField):
            if isinstance(v, EncodedImage):
                dest["mode"] = IMAGE_MODE_JPG if v.mode == "jpg" else IMAGE_MODE_RAW
                dest["height"], dest["width"] = v.height, v.width
                blobs.append((off, np.frombuffer(v.data, dtype=np.uint8)))
            else:
                blobs.append((off, _encode_rgb(field, dest, np.asarray(v))))
            continue
        if off is None:  # Int/Float: FFCV's encode writes the value into the record
            field.encode(dest, v, None)
            continue
        if isinstance(field, BytesField) and not isinstance(field, JSONField) \
                and not isinstance(v, np.ndarray):
            v = np.frombuffer(bytes(v), dtype=np.uint8)
        if isinstance(field, NDArrayField):
            v = np.ascontiguousarray(v.numpy() if isinstance(field, TorchTensorField) else v)
        calls = []

        def malloc(size, _calls=calls):
            buf = np.empty(int(size), dtype=np.uint8)
            _calls.append(buf)
            return 0, buf

        if isinstance(field, TorchTensorField):
            NDArrayField.encode(field, dest, v, malloc)
        else:
            field.encode(dest, v, malloc)
        if len(calls) != 1:
            raise SampleError(f"field {name!r} allocated {len(calls)} regions; expected one")
        blobs.append((off, calls[0]))
    return record.view(np.uint8).reshape(-1), blobs, chain_crc(b for _, b in blobs)
