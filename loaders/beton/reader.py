"""Memory-mapped, read-only access to a .beton file (ours or FFCV's).

Every offset read from the file is checked against the file before use, so truncated or
corrupt files raise ``BetonFormatError`` (a ``ValueError``) instead of crashing or hanging.

    r = BetonReader(path)
    len(r), r.fields, r.read(i) -> {"image": HxWx3 uint8, "label": int, ...}
    data, mode = r.encoded(i, "image")       # JPEG/raw bytes as stored; .height/.width too
    r.verify(decode=True)
"""
from __future__ import annotations

import io
import json
import mmap
import os

import numpy as np
import PIL.Image
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField, TorchTensorField)
from ffcv.libffcv import imdecode
from ffcv.types import TYPE_ID_HANDLER

from loaders.beton import format as fmt
from loaders.beton.format import BetonFormatError

__all__ = ["BetonReader", "EncodedBytes"]
_JSON_SEPARATOR = b"\0"


class EncodedBytes(tuple):
    """``(data, mode)`` as stored, with ``height`` and ``width`` attributes for images."""

    def __new__(cls, data: bytes, mode: str, height: int = 0, width: int = 0):
        obj = super().__new__(cls, (data, mode))
        obj.height, obj.width = height, width
        return obj


def _handler(type_id: int, arguments):
    """FFCV field object for a descriptor; JSON and torch fields keep their own class (FFCV's
    ``from_binary`` turns them into Bytes/NDArray fields, which would change the type id)."""
    handler = TYPE_ID_HANDLER[type_id].from_binary(arguments)
    if type_id == 5:
        return JSONField()
    if type_id == 6:
        import torch

        tdtype = torch.from_numpy(np.zeros(0, dtype=handler.dtype)).dtype
        return TorchTensorField(tdtype, handler.shape)
    return handler


class BetonReader:
    """Read-only view of a finished .beton (see module doc)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            self.file_size = os.fstat(f.fileno()).st_size
            if self.file_size < fmt.HeaderType.itemsize:
                raise BetonFormatError(f"{self.path}: {self.file_size} bytes is too short for "
                                       "a .beton header (truncated or not a .beton)")
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = np.frombuffer(self._mmap, dtype=np.uint8)
        self._parse()

    # ------------------------------------------------------------------ structure
    def _fail(self, what: str):
        raise BetonFormatError(f"{self.path}: {what}")

    def _parse(self) -> None:
        h = self._buf[:fmt.HeaderType.itemsize].view(fmt.HeaderType)[0]
        version = int(h["version"])
        if version == fmt.PARTIAL_VERSION:
            self._fail("unfinished partial file (header version 0): resume it with "
                       "BetonWriter.resume() instead of reading it")
        if version != fmt.FORMAT_VERSION:
            self._fail(f"unsupported .beton version {version} (expected {fmt.FORMAT_VERSION});"
                       " not a .beton or corrupt header")
        self.num_samples, self.page_size = int(h["num_samples"]), int(h["page_size"])
        nf, self.alloc_table_ptr = int(h["num_fields"]), int(h["alloc_table_ptr"])
        if self.page_size <= 0 or self.page_size & (self.page_size - 1):
            self._fail(f"page_size {self.page_size} is not a power of two (corrupt header)")
        desc_end = fmt.HeaderType.itemsize + nf * fmt.FieldDescType.itemsize
        if nf == 0 or desc_end > self.file_size:
            self._fail(f"{nf} field descriptors do not fit in {self.file_size} bytes")
        desc = self._buf[fmt.HeaderType.itemsize:desc_end].view(fmt.FieldDescType)
        self.fields: dict = {}
        for d in desc:
            tid = int(d["type_id"])
            try:
                name = d["name"].tobytes().split(b"\0")[0].decode("ascii")
                if TYPE_ID_HANDLER.get(tid) is None:
                    raise KeyError(f"unknown field type id {tid}")
                handler = _handler(tid, d["arguments"])
            except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt descriptor
                self._fail(f"corrupt field descriptor ({exc!r})")
            if not name or name in self.fields:
                self._fail(f"bad or duplicate field name {name!r}")
            self.fields[name] = handler
        self.descriptors = desc
        self._names = list(self.fields)
        self.metadata_type = fmt.metadata_type(self.fields.values())
        meta_end = desc_end + self.num_samples * self.metadata_type.itemsize
        if not (meta_end <= self.alloc_table_ptr <= self.file_size):
            self._fail(f"metadata for {self.num_samples} samples and the allocation table at "
                       f"{self.alloc_table_ptr} do not fit in {self.file_size} bytes "
                       "(truncated or corrupt)")
        table_bytes = self.file_size - self.alloc_table_ptr
        if table_bytes % fmt.ALLOC_TABLE_TYPE.itemsize:
            self._fail(f"allocation table of {table_bytes} bytes is not a whole number of rows "
                       "(truncated)")
        self.metadata = self._buf[desc_end:meta_end].view(self.metadata_type)
        table = self._buf[self.alloc_table_ptr:].view(fmt.ALLOC_TABLE_TYPE)
        self.data_start = min(fmt.align_up(meta_end, self.page_size), self.alloc_table_ptr)
        ptr, size, sid = (table["ptr"].astype(np.int64), table["size"].astype(np.int64),
                          table["sample_id"])
        bad = ((ptr < self.data_start) | (size < 0) | (ptr + size > self.alloc_table_ptr)
               | (sid >= self.num_samples))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            self._fail(f"allocation row {i} (sample {int(sid[i])}, ptr {int(ptr[i])}, size "
                       f"{int(size[i])}) points outside the data region")
        order = np.argsort(ptr, kind="stable")
        self._ptrs, self._sizes, self._owners = ptr[order], size[order], sid[order]

    def __len__(self) -> int:
        return self.num_samples

    def _index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(i).__name__}")
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for {self.num_samples} samples")
        return int(i) % self.num_samples

    def _blob(self, i: int, ptr: int) -> np.ndarray:
        j = int(np.searchsorted(self._ptrs, ptr))
        if j >= len(self._ptrs) or self._ptrs[j] != ptr:
            self._fail(f"sample {i}: data pointer {ptr} is not in the allocation table")
        if int(self._owners[j]) != i:
            # zero-size allocations can share a pointer with the next one; look for ours
            k = j
            while k < len(self._ptrs) and self._ptrs[k] == ptr and self._owners[k] != i:
                k += 1
            if k == len(self._ptrs) or self._ptrs[k] != ptr:
                self._fail(f"sample {i}: data at {ptr} belongs to sample {int(self._owners[j])}")
            j = k
        return self._buf[ptr:ptr + int(self._sizes[j])]

    def encoded(self, i: int, name: str = "image", view: bool = False) -> EncodedBytes:
        """The stored bytes of field ``name`` of sample ``i`` and their mode (``jpg``/``raw``
        for images, ``bytes`` otherwise); ``.height``/``.width`` for images. ``view=True``
        gives a read-only uint8 array over the mapped file instead of a copy (zero-copy; valid
        while the reader is open)."""
        if name not in self.fields:
            raise KeyError(f"no field {name!r}; fields are {self._names}")
        field, k = self.fields[name], self._names.index(name)
        i = self._index(i)
        rec = self.metadata[i][f"f{k}"]
        if isinstance(field, RGBImageField):
            mode = int(rec["mode"])
            if mode not in (fmt.IMAGE_MODE_JPG, fmt.IMAGE_MODE_RAW):
                self._fail(f"sample {i}: unknown image mode {mode}")
            data = self._blob(i, int(rec["data_ptr"]))
            data = data if view else data.tobytes()
            return EncodedBytes(data, "jpg" if mode == fmt.IMAGE_MODE_JPG else "raw",
                                int(rec["height"]), int(rec["width"]))
        slot = fmt.pointer_slot(field)
        if slot is None:
            raise ValueError(f"field {name!r} ({type(field).__name__}) has no encoded bytes")
        ptr = int(rec[slot]) if slot else int(rec)
        blob = self._blob(i, ptr)
        return EncodedBytes(blob if view else blob.tobytes(), "bytes")

    def read(self, i: int) -> dict:
        """Decoded values of sample ``i``: images HxWx3 uint8 RGB, ints, floats, bytes arrays
        (uint8), JSON objects, numpy arrays."""
        i = self._index(i)
        rec = self.metadata[i]
        out = {}
        for k, (name, field) in enumerate(self.fields.items()):
            r = rec[f"f{k}"]
            if isinstance(field, IntField):
                out[name] = int(r)
            elif isinstance(field, FloatField):
                out[name] = float(r)
            elif isinstance(field, RGBImageField):
                out[name] = self._decode_image(i, self.encoded(i, name))
            elif isinstance(field, JSONField):
                raw = self._blob(i, int(r["ptr"])).tobytes().split(_JSON_SEPARATOR)[0]
                try:
                    out[name] = json.loads(raw.decode("utf8"))
                except ValueError as exc:
                    self._fail(f"sample {i}: field {name!r} is not valid JSON ({exc})")
            elif isinstance(field, BytesField):
                out[name] = self._blob(i, int(r["ptr"])).copy()
            elif isinstance(field, NDArrayField):
                blob = self._blob(i, int(r))
                if blob.size != field.element_size:
                    self._fail(f"sample {i}: field {name!r} has {blob.size} bytes, expected "
                               f"{field.element_size}")
                out[name] = blob.view(field.dtype).reshape(field.shape).copy()
        return out

    def _decode_image(self, i: int, enc: EncodedBytes) -> np.ndarray:
        data, mode = enc
        h, w = enc.height, enc.width
        if mode == "raw":
            if len(data) != h * w * 3:
                self._fail(f"sample {i}: raw image of {len(data)} bytes, expected {h}x{w}x3")
            return np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).copy()
        try:  # the JPEG's own header must agree with the metadata before we decode into h*w*3
            with PIL.Image.open(io.BytesIO(data)) as im:
                size, im_mode = im.size, im.mode
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on garbage
            self._fail(f"sample {i}: undecodable JPEG ({exc!r})")
        if size != (w, h) or im_mode not in ("RGB", "L"):
            self._fail(f"sample {i}: JPEG is {size[0]}x{size[1]} {im_mode}, metadata says "
                       f"{w}x{h} RGB")
        out = np.empty((h, w, 3), dtype=np.uint8)
        src = np.frombuffer(data, dtype=np.uint8)
        # FFCV's own decoder (libjpeg-turbo, fast DCT), so pixels equal what the Loader yields
        if imdecode(src, out, h, w, h, w, 0, 0, 1, 1, False, False) != 0:
            self._fail(f"sample {i}: corrupt JPEG data")
        return out

    def verify(self, decode: bool = False) -> dict:
        """Structural checks of every sample (and decode every image when ``decode``).
        Raises ``BetonFormatError`` at the first problem; returns counts when all is well."""
        modes = {"jpg": 0, "raw": 0}
        for i in range(self.num_samples):
            if decode:
                self.read(i)
            for name, field in self.fields.items():
                if fmt.pointer_slot(field) is None:
                    continue
                enc = self.encoded(i, name)
                if isinstance(field, RGBImageField):
                    modes[enc[1]] += 1
                    if enc[1] == "raw" and len(enc[0]) != enc.height * enc.width * 3:
                        self._fail(f"sample {i}: raw image size mismatch")
                    if enc[1] == "jpg" and enc[0][:2] != b"\xff\xd8":
                        self._fail(f"sample {i}: field {name!r} is not a JPEG (bad SOI marker)")
                elif isinstance(field, NDArrayField) and len(enc[0]) != field.element_size:
                    self._fail(f"sample {i}: field {name!r} has the wrong size")
        return {"num_samples": self.num_samples, "image_modes": modes, "decoded": decode}

    def close(self) -> None:
        self._buf = None
        self.metadata = None
        try:
            self._mmap.close()
        except BufferError:
            pass  # arrays handed out still view the map; it closes when they are freed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
