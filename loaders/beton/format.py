"""The FFCV .beton v2 format: constants, field descriptors, errors, per-field pointer layout.

Layout (truth: ffcv ``writer.py``, ``reader.py``, ``types.py``, ``fields/``)::

    [header 24 B][field descriptors 1041 B each][metadata: one aligned record per sample]
    [zero padding to the first page boundary][data pages ...][allocation table at EOF]

The header (``HeaderType``) is ``version<u2 num_fields<u2 page_size<u4 num_samples<u8
alloc_table_ptr<u8``; allocation table rows are ``(sample_id<u8, ptr<u8, size<u8)``. Pointers
are absolute file offsets. All of one sample's data lies in one page (FFCV's page cache reads
whole pages), and every allocation is at most one page.

Our partial files use ``version = 0`` (``PARTIAL_VERSION``) until finalized, so a partial file
renamed by hand is refused by FFCV and by our reader instead of being read as garbage.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField, TorchTensorField)
from ffcv.fields.base import Field
from ffcv.types import (ALLOC_TABLE_TYPE, CURRENT_VERSION, TYPE_ID_HANDLER, FieldDescType,
                        HeaderType, get_metadata_type)

from loaders.errors import LoadersError

__all__ = ["ALLOC_TABLE_TYPE", "FORMAT_VERSION", "PARTIAL_VERSION", "HeaderType", "FieldDescType",
           "BetonFormatError", "EncodedImage", "DEFAULT_PAGE_SIZE", "MIN_PAGE_SIZE",
           "MAX_PAGE_SIZE", "IMAGE_MODE_JPG", "IMAGE_MODE_RAW", "field_descriptors",
           "pointer_slot", "metadata_type", "align_up", "check_page_size", "type_id_of",
           "CUSTOM_TYPE_ID", "is_custom", "RecordLayout", "row_bytes"]

FORMAT_VERSION = CURRENT_VERSION
"""The .beton version we write and read (2)."""
PARTIAL_VERSION = 0
"""Header version of an unfinished partial file: neither FFCV nor our reader accepts it."""
MIN_PAGE_SIZE = 1 << 21
"""FFCV's smallest page (2 MiB, a common huge-page size)."""
MAX_PAGE_SIZE = 1 << 31
"""Largest page size that fits FFCV's ``page_size<u4`` (exclusive bound 2**32)."""
DEFAULT_PAGE_SIZE = 4 * MIN_PAGE_SIZE
"""FFCV ``DatasetWriter``'s default page (8 MiB)."""
IMAGE_MODE_JPG = 0
"""``RGBImageField`` metadata ``mode`` for JPEG-encoded bytes (ffcv ``IMAGE_MODES['jpg']``)."""
IMAGE_MODE_RAW = 1
"""``RGBImageField`` metadata ``mode`` for raw HxWx3 uint8 pixels."""
FIELD_NAME_BYTES = 16
"""Field names are stored in 16 ASCII bytes (longer names are cut by FFCV; we refuse them)."""


class BetonFormatError(LoadersError, ValueError):
    """A .beton (or partial/journal) file is truncated, corrupt or not what the caller expects."""


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """Already-encoded image bytes stored verbatim in an ``RGBImageField`` (no re-encode).

    Used by ``pack`` (JPEG passthrough) and ``merge``; ``mode`` is ``"jpg"`` or ``"raw"``.
    """

    data: bytes
    """The encoded bytes (a JPEG file, or HxWx3 uint8 pixels for raw)."""
    height: int
    """Image height in pixels."""
    width: int
    """Image width in pixels."""
    mode: str = "jpg"
    """``"jpg"`` or ``"raw"``."""

    def __post_init__(self):
        if self.mode not in ("jpg", "raw"):
            raise ValueError(f"EncodedImage.mode must be 'jpg' or 'raw', got {self.mode!r}")
        if not (0 < self.height < 1 << 16 and 0 < self.width < 1 << 16):
            raise ValueError(f"EncodedImage size {self.height}x{self.width} does not fit the "
                             "format's 16-bit height/width")
        if self.mode == "raw" and len(self.data) != self.height * self.width * 3:
            raise ValueError(f"raw EncodedImage has {len(self.data)} bytes, expected "
                             f"{self.height}*{self.width}*3")


CUSTOM_TYPE_ID = 255
"""FFCV's type id of any other ``Field`` subclass (a custom field; readers need its class)."""


def type_id_of(field: Field) -> int:
    """FFCV's type id of a field object (exact type, as FFCV's writer does): 255 for any other
    ``Field`` subclass (a custom field)."""
    for tid, handler in TYPE_ID_HANDLER.items():
        if handler is not None and type(field) is handler:
            return tid
    if not isinstance(field, Field):
        raise TypeError(f"{type(field).__name__} is not an ffcv Field: use RGBImageField, "
                        "IntField, FloatField, BytesField, JSONField, NDArrayField, "
                        "TorchTensorField from ffcv.fields, or a Field subclass of your own")
    return CUSTOM_TYPE_ID


def is_custom(field: Field) -> bool:
    """A field FFCV stores with type id 255 (not one of its built-in classes exactly)."""
    return type_id_of(field) == CUSTOM_TYPE_ID


def row_bytes(rows: np.ndarray) -> np.ndarray:
    """Structured records as a 2-D uint8 array, alignment padding included (copying a row
    subset of a structured array leaves its padding uninitialised; a byte view does not)."""
    return np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), rows.dtype.itemsize)


class RecordLayout:
    """Byte layout of the metadata record: where each field's data pointer sits."""

    def __init__(self, fields: dict):
        self.mdtype = metadata_type(fields.values())
        self.itemsize = self.mdtype.itemsize
        self.custom = [is_custom(f) for f in fields.values()]
        self.ptr_offsets, self.spans = [], []
        for k, field in enumerate(fields.values()):
            sub, base = self.mdtype.fields[f"f{k}"]
            self.spans.append((base, base + sub.itemsize))
            slot = None if self.custom[k] else pointer_slot(field)
            if slot is None:
                self.ptr_offsets.append(None)
            elif slot == "":
                self.ptr_offsets.append(base)
            else:
                self.ptr_offsets.append(base + sub.fields[slot][1])


def pointer_slot(field: Field):
    """Where a built-in field's metadata holds its data pointer: a sub-field name, ``""`` (the
    whole scalar record) or ``None`` (no data outside the metadata)."""
    if isinstance(field, RGBImageField):
        return "data_ptr"
    if isinstance(field, (BytesField, JSONField)):
        return "ptr"
    if isinstance(field, (NDArrayField, TorchTensorField)):
        return ""
    if isinstance(field, (IntField, FloatField)):
        return None
    raise TypeError(f"unsupported field type {type(field).__name__}")


def metadata_type(fields) -> np.dtype:
    """The aligned per-sample metadata record (sub-records named ``f0, f1, ...``)."""
    return get_metadata_type(list(fields))


def field_descriptors(fields: dict) -> np.ndarray:
    """FFCV field descriptor table for ``{name: field}`` (order matters), checking names."""
    desc = np.zeros(len(fields), dtype=FieldDescType)
    for i, (name, field) in enumerate(fields.items()):
        try:
            raw = name.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"field name {name!r} is not ASCII (the .beton format stores "
                             "ASCII names)") from None
        if not raw or len(raw) > FIELD_NAME_BYTES or b"\0" in raw:
            raise ValueError(f"field name {name!r} must be 1..{FIELD_NAME_BYTES} ASCII characters")
        desc[i]["type_id"] = type_id_of(field)
        desc[i]["name"][:len(raw)] = np.frombuffer(raw, dtype="<u1")
        desc[i]["arguments"][:] = field.to_binary()[0]
    return desc


def align_up(offset: int, page_size: int) -> int:
    """``offset`` rounded up to a multiple of ``page_size`` (ffcv ``align_to_page``)."""
    return -(-offset // page_size) * page_size


def check_page_size(page_size: int) -> int:
    page_size = int(page_size)
    if page_size < MIN_PAGE_SIZE or page_size > MAX_PAGE_SIZE or page_size & (page_size - 1):
        raise ValueError(f"page_size={page_size}: must be a power of two between "
                         f"{MIN_PAGE_SIZE} and {MAX_PAGE_SIZE} (FFCV's limits)")
    return page_size


def data_start(num_fields: int, num_samples: int, mdtype: np.dtype, page_size: int) -> int:
    """File offset of the first data page for a file declared with ``num_samples``."""
    meta_start = HeaderType.itemsize + num_fields * FieldDescType.itemsize
    return align_up(meta_start + num_samples * mdtype.itemsize, page_size)


def make_header(version: int, num_fields: int, page_size: int, num_samples: int,
                alloc_table_ptr: int) -> bytes:
    h = np.zeros(1, dtype=HeaderType)
    h["version"], h["num_fields"], h["page_size"] = version, num_fields, page_size
    h["num_samples"], h["alloc_table_ptr"] = num_samples, alloc_table_ptr
    return h.tobytes()


def field_spec(field: Field) -> dict:
    """A JSON-able description of a field, including the writer-only options that FFCV does not
    store in the file (write_mode, max_resolution, ...): the journal keeps it for ``resume``."""
    if is_custom(field):
        return {"type": "custom", "class": f"{type(field).__module__}.{type(field).__qualname__}",
                "arguments": field.to_binary()[0].tobytes().hex()}
    if isinstance(field, RGBImageField):
        return {"type": "RGBImageField", "write_mode": field.write_mode,
                "max_resolution": field.max_resolution, "smart_threshold": field.smart_threshold,
                "jpeg_quality": field.jpeg_quality, "compress_probability": field.proportion}
    if isinstance(field, TorchTensorField):
        return {"type": "TorchTensorField", "dtype": str(field.dtype).replace("torch.", ""),
                "shape": [int(s) for s in field.shape]}
    if isinstance(field, NDArrayField):
        return {"type": "NDArrayField", "dtype": np.dtype(field.dtype).str,
                "shape": [int(s) for s in field.shape]}
    return {"type": type(field).__name__}


def field_from_spec(spec: dict, name: str = "?") -> Field:
    kind = spec["type"]
    if kind == "custom":
        raise BetonFormatError(f"field {name!r} is a custom field ({spec['class']}): pass "
                               "fields={...} with its field object to BetonWriter.resume")
    if kind == "RGBImageField":
        return RGBImageField(write_mode=spec["write_mode"], max_resolution=spec["max_resolution"],
                             smart_threshold=spec["smart_threshold"],
                             jpeg_quality=spec["jpeg_quality"],
                             compress_probability=spec["compress_probability"])
    if kind == "TorchTensorField":
        import torch
        return TorchTensorField(getattr(torch, spec["dtype"]), tuple(spec["shape"]))
    if kind == "NDArrayField":
        return NDArrayField(np.dtype(spec["dtype"]), tuple(spec["shape"]))
    simple = {"IntField": IntField, "FloatField": FloatField, "BytesField": BytesField,
              "JSONField": JSONField}
    if kind not in simple:
        raise BetonFormatError(f"unknown field type {kind!r} in journal")
    return simple[kind]()
