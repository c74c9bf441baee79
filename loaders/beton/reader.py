"""Memory-mapped, read-only access to a .beton file (ours or FFCV's).

Every offset read from the file is checked against the file before use, so truncated or
corrupt files raise ``BetonFormatError`` (a ``ValueError``) instead of crashing or hanging.
Files we write carry checksums of the header, descriptors, allocation table, every metadata
record and every sample's data (``integrity.py``): the header/descriptor and table checksums
are checked on open, all of them by ``verify()``, and a sample's by ``read``/``encoded`` when
the reader was opened with ``check=True``. ``info`` is the file's :class:`FileInfo` (None for
files written by FFCV).

    r = BetonReader(path)
    len(r), r.fields, r.info, r.read(i) -> {"image": HxWx3 uint8, "label": int, ...}
    data, mode = r.encoded(i, "image")       # JPEG/raw bytes as stored; .height/.width too
    r.verify(decode=True)
"""
from __future__ import annotations

import io
import json
import mmap
import os
import zlib

import numpy as np
import PIL.Image
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField, TorchTensorField)
from ffcv.libffcv import imdecode
from ffcv.types import TYPE_ID_HANDLER

from loaders.beton import format as fmt
from loaders.beton import integrity
from loaders.beton.format import BetonFormatError
from loaders.beton.schema import FileInfo

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
    """Read-only view of a finished .beton (see module doc).

    custom_fields: ``{name: FieldClass}`` for fields FFCV stores with type id 255 (as FFCV's
        ``Loader(custom_fields=...)``); their values are read like the built-in base class.
    check: verify each sample's checksums when it is read.
    """

    def __init__(self, path: str, custom_fields: dict | None = None, check: bool = False):
        self.path = os.fspath(path)
        self.custom_fields = dict(custom_fields or {})
        self.check = check
        if os.path.isdir(self.path):
            raise BetonFormatError(f"{self.path} is a folder, not a .beton file")
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
            except UnicodeDecodeError as exc:
                self._fail(f"corrupt field descriptor ({exc!r})")
            if tid == fmt.CUSTOM_TYPE_ID:
                if name not in self.custom_fields:
                    self._fail(f"field {name!r} is a custom field (type id 255): pass "
                               f"custom_fields={{{name!r}: FieldClass}} to read it")
                handler = self.custom_fields[name].from_binary(d["arguments"])
            else:
                try:
                    if TYPE_ID_HANDLER.get(tid) is None:
                        raise KeyError(f"unknown field type id {tid}")
                    handler = _handler(tid, d["arguments"])
                except Exception as exc:  # noqa: BLE001 - any parse failure: corrupt descriptor
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
        self._meta_end = meta_end
        self._parse_trailer(desc_end, meta_end)
        self.metadata = self._buf[desc_end:meta_end].view(self.metadata_type)
        self._records = self._buf[desc_end:meta_end].reshape(
            self.num_samples, self.metadata_type.itemsize)
        table = self._buf[self.alloc_table_ptr:].view(fmt.ALLOC_TABLE_TYPE)
        data_end = self.alloc_table_ptr - (self._trailer_bytes if self.trailer else 0)
        self.data_start = min(fmt.align_up(meta_end, self.page_size), data_end)
        ptr, size, sid = (table["ptr"].astype(np.int64), table["size"].astype(np.int64),
                          table["sample_id"])
        # empty values (size 0) carry FFCV's placeholder pointer (data_start - page_size);
        # they read nothing, so only their owner is checked
        bad = (((ptr < self.data_start) | (ptr + size > data_end)) & (size != 0)) | \
            (size < 0) | (ptr < 0) | (sid >= self.num_samples)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            self._fail(f"allocation row {i} (sample {int(sid[i])}, ptr {int(ptr[i])}, size "
                       f"{int(size[i])}) points outside the data region")
        order = np.lexsort((sid, ptr))  # by pointer, then owner (empty values share one)
        self._ptrs, self._sizes, self._owners = ptr[order], size[order], sid[order]
        self._by_sample = np.lexsort((ptr, sid))
        self._sample_start = np.searchsorted(sid[self._by_sample], np.arange(self.num_samples + 1))
        self._table = table

    def _parse_trailer(self, desc_end: int, meta_end: int) -> None:
        """Find and check our integrity trailer; a file without one must have FFCV's layout."""
        found = integrity.find_trailer(self._buf, self.alloc_table_ptr, meta_end,
                                       self.num_samples)
        if isinstance(found, str):
            self._fail(found)
        self.trailer = found
        self.info: FileInfo | None = None
        """What the file is (kind, plan hash, class names, recipes); None for FFCV's files."""
        self._trailer_bytes = 0
        if found is None:
            plain = fmt.align_up(meta_end, self.page_size)
            if not integrity.ffcv_table_position(self.alloc_table_ptr, meta_end, plain,
                                                 self.page_size):
                self._fail("integrity trailer missing or damaged (the allocation table is not "
                           "where FFCV would put it, and no trailer precedes it)")
            return
        self._trailer_bytes = (integrity.FOOTER_BYTES + int.from_bytes(
            self._buf[self.alloc_table_ptr - 24:self.alloc_table_ptr - 16].tobytes(), "little"))
        if zlib.crc32(self._buf[:desc_end]) != found.header_crc:
            self._fail("header or field descriptors are corrupt (checksum mismatch)")
        if zlib.crc32(self._buf[self.alloc_table_ptr:]) != found.table_crc:
            self._fail("allocation table is corrupt (checksum mismatch)")
        try:
            self.info = FileInfo.from_json(found.info)
        except Exception as exc:  # noqa: BLE001 - a checksummed but unusable description
            self._fail(f"file description in the trailer is invalid ({exc})")

    @property
    def has_checksums(self) -> bool:
        return self.trailer is not None

    def sample_allocations(self, i: int) -> np.ndarray:
        """Allocation rows of sample ``i`` in pointer order."""
        rows = self._by_sample[self._sample_start[i]:self._sample_start[i + 1]]
        return self._table[rows]

    def check_sample(self, i: int) -> None:
        """Compare sample ``i``'s metadata record and data with their checksums."""
        if self.trailer is None:
            return
        if zlib.crc32(self._records[i]) != int(self.trailer.record_crc[i]):
            self._fail(f"sample {i}: metadata record is corrupt (checksum mismatch)")
        crc = 0
        for row in self.sample_allocations(i):
            p, n = int(row["ptr"]), int(row["size"])
            if n:
                crc = zlib.crc32(self._buf[p:p + n], crc)
        if crc != int(self.trailer.data_crc[i]):
            self._fail(f"sample {i}: data is corrupt (checksum mismatch)")

    def __len__(self) -> int:
        return self.num_samples

    def _index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(i).__name__}")
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for {self.num_samples} samples")
        return int(i) % self.num_samples

    def _blob(self, i: int, ptr: int) -> np.ndarray:
        lo = int(np.searchsorted(self._ptrs, ptr, "left"))
        hi = int(np.searchsorted(self._ptrs, ptr, "right"))
        if lo == hi:
            self._fail(f"sample {i}: data pointer {ptr} is not in the allocation table")
        j = lo
        if hi - lo > 1 or int(self._owners[lo]) != i:
            # empty values share a pointer (and may share it with data); find our row
            j = lo + int(np.searchsorted(self._owners[lo:hi], i))
            if j >= hi or int(self._owners[j]) != i:
                self._fail(f"sample {i}: data at {ptr} belongs to sample {int(self._owners[lo])}")
        return self._buf[ptr:ptr + int(self._sizes[j])]

    def encoded(self, i: int, name: str = "image", view: bool = False) -> EncodedBytes:
        """The stored bytes of field ``name`` of sample ``i`` and their mode (``jpg``/``raw``
        for images, ``bytes`` otherwise); ``.height``/``.width`` for images. ``view=True``
        gives a read-only uint8 array over the mapped file instead of a copy (zero-copy; valid
        while the reader is open)."""
        if name not in self.fields:
            raise KeyError(f"no field {name!r}; fields are {self._names}")
        i = self._index(i)
        if self.check:
            self.check_sample(i)
        return self._encoded(i, name, view)

    def _encoded(self, i: int, name: str, view: bool = False) -> EncodedBytes:
        field, k = self.fields[name], self._names.index(name)
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

    def read(self, i: int, names=None) -> dict:
        """Decoded values of sample ``i``: images HxWx3 uint8 RGB, ints, floats, bytes arrays
        (uint8), JSON objects, numpy arrays; only the fields in ``names`` when given."""
        i = self._index(i)
        if self.check:
            self.check_sample(i)
        rec = self.metadata[i]
        out = {}
        for k, (name, field) in enumerate(self.fields.items()):
            if names is not None and name not in names:
                continue
            r = rec[f"f{k}"]
            if fmt.is_custom(field) and not isinstance(field, (BytesField, NDArrayField)):
                out[name] = np.array(r)  # the raw metadata record: only its class knows more
            elif isinstance(field, IntField):
                out[name] = int(r)
            elif isinstance(field, FloatField):
                out[name] = float(r)
            elif isinstance(field, RGBImageField):
                out[name] = self._decode_image(i, self._encoded(i, name))
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
        """Checksums (files we wrote) and structural checks of every sample, and decode every
        image when ``decode``. Raises ``BetonFormatError`` at the first problem; returns counts
        when all is well."""
        modes = {"jpg": 0, "raw": 0}
        if self.trailer is not None:
            bad = np.flatnonzero(integrity.record_crcs(self._records) != self.trailer.record_crc)
            if len(bad):
                self._fail(f"sample {int(bad[0])}: metadata record is corrupt (checksum "
                           f"mismatch; {len(bad)} records differ)")
        for i in range(self.num_samples):
            self.check_sample(i)
            if decode:
                self.read(i)
            for name, field in self.fields.items():
                if fmt.is_custom(field) or fmt.pointer_slot(field) is None:
                    continue
                enc = self._encoded(i, name)
                if isinstance(field, RGBImageField):
                    modes[enc[1]] += 1
                    if enc[1] == "raw" and len(enc[0]) != enc.height * enc.width * 3:
                        self._fail(f"sample {i}: raw image size mismatch")
                    if enc[1] == "jpg" and enc[0][:2] != b"\xff\xd8":
                        self._fail(f"sample {i}: field {name!r} is not a JPEG (bad SOI marker)")
                elif isinstance(field, NDArrayField) and len(enc[0]) != field.element_size:
                    self._fail(f"sample {i}: field {name!r} has the wrong size")
        return {"num_samples": self.num_samples, "image_modes": modes, "decoded": decode,
                "checksums": self.trailer is not None}

    def close(self) -> None:
        self._buf = self._records = self._table = None
        self.metadata = None
        try:
            self._mmap.close()
        except BufferError:
            pass  # arrays handed out still view the map; it closes when they are freed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
