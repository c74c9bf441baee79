"""Turn one sample's Python values into a metadata record plus data blobs, as FFCV would.

``check_sample`` runs in the producer (cheap checks, errors name the sample); ``encode_sample``
runs on the writer's pool: it calls each FFCV field's own ``encode`` with a recording ``malloc``
(images go through FFCV's own ``resizer``/``encode_jpeg`` in the same order as its ``encode``),
so the stored bytes are what FFCV's ``DatasetWriter`` stores.
Pointers in the record are left at 0; the writer patches them when it places the blobs.
"""
from __future__ import annotations

from loaders.errors import LoadersError
import numbers

import numpy as np
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField, TorchTensorField)
from ffcv.fields.rgb_image import encode_jpeg, resizer

from loaders.beton.format import IMAGE_MODE_JPG, IMAGE_MODE_RAW, EncodedImage


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
            if not isinstance(v, (bytes, bytearray, memoryview, np.ndarray)):
                raise SampleError(f"{where}: expected bytes or a 1-D uint8 array, got "
                                  f"{type(v).__name__}")
            if isinstance(v, np.ndarray) and (v.dtype != np.uint8 or v.ndim != 1):
                raise SampleError(f"{where}: bytes array must be 1-D uint8, got {v.dtype} "
                                  f"{v.shape}")
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


def encode_sample(values: dict, fields: dict, mdtype: np.dtype):
    """-> (record: 1-element structured array, blobs: [(field_index, np.uint8 array)])."""
    record = np.zeros(1, dtype=mdtype)
    blobs = []
    for i, (name, field) in enumerate(fields.items()):
        dest = record[f"f{i}"][0:1]
        v = values[name]
        if isinstance(field, RGBImageField) and isinstance(v, EncodedImage):
            dest["mode"] = IMAGE_MODE_JPG if v.mode == "jpg" else IMAGE_MODE_RAW
            dest["height"], dest["width"] = v.height, v.width
            blobs.append((i, np.frombuffer(v.data, dtype=np.uint8)))
            continue
        if isinstance(field, RGBImageField):
            blobs.append((i, _encode_rgb(field, dest, np.asarray(v))))
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
        if len(calls) > 1:
            raise SampleError(f"field {name!r} allocated {len(calls)} regions; expected one")
        blobs.extend((i, b) for b in calls)
    return record, blobs
