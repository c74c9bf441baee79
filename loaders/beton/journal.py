"""The writer's journal: an append-only log of committed samples beside the partial file.

File ``<path>.journal``::

    JOURNAL_MAGIC (8 B) | u32 len | header JSON | u32 crc32(header JSON)
    then commit records:  u32 RECORD_MAGIC | u32 payload len | u32 crc32(payload) | payload
    payload: u64 data_end | u32 n_samples | u32 n_allocs
             | n_samples x u64 sample_id | n_samples x metadata record (bytes as stored)
             | n_samples x u32 data CRC-32 (journal version 2) | n_allocs x alloc row

Version 1 journals (no data checksums) are still resumed: the writer recomputes the checksums
of their committed samples from the partial file.

A record is written only after the data bytes it points to (up to ``data_end``) are in the
partial file (and fsynced when the writer is durable). Reading stops at the first truncated or
corrupt record: a torn tail of a SIGKILLed writer just drops the uncommitted samples.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from loaders.beton.format import ALLOC_TABLE_TYPE, BetonFormatError

JOURNAL_MAGIC = b"SCBJRNL1"
"""First 8 bytes of a journal file."""
RECORD_MAGIC = 0x5C0DE5A7
"""First 4 bytes of each commit record."""
_REC_HEAD = struct.Struct("<III")
_PAYLOAD_HEAD = struct.Struct("<QII")


JOURNAL_VERSION = 2
"""Written in the header's ``version``; 1 is still read (see module doc)."""


def encode_header(meta: dict) -> bytes:
    raw = json.dumps(meta, sort_keys=True).encode()
    return JOURNAL_MAGIC + struct.pack("<I", len(raw)) + raw + struct.pack("<I", zlib.crc32(raw))


def encode_record(data_end: int, sample_ids: np.ndarray, records: np.ndarray,
                  crcs: np.ndarray, allocs: np.ndarray) -> bytes:
    """``records``: 2-D uint8 (one row of record bytes per sample), ``crcs``: data CRC-32s."""
    payload = b"".join([
        _PAYLOAD_HEAD.pack(int(data_end), len(sample_ids), len(allocs)),
        np.asarray(sample_ids, dtype="<u8").tobytes(), np.ascontiguousarray(records).tobytes(),
        np.asarray(crcs, dtype="<u4").tobytes(),
        np.asarray(allocs, dtype=ALLOC_TABLE_TYPE).tobytes()])
    return _REC_HEAD.pack(RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_journal(path: str, record_size: "int | np.dtype | None" = None):
    """-> (header dict, list of (data_end, sample_ids, records, crcs, allocs), valid_length).

    ``records`` are 2-D uint8 rows of ``record_size`` bytes; ``crcs`` is None in a version 1
    journal. ``record_size`` may be None to read only the header (no commits then).
    Raises ``BetonFormatError`` if the header itself is missing or corrupt.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 12 or blob[:8] != JOURNAL_MAGIC:
        raise BetonFormatError(f"{path}: not a BetonWriter journal (bad magic or too short)")
    (n,) = struct.unpack_from("<I", blob, 8)
    end = 12 + n + 4
    if end > len(blob):
        raise BetonFormatError(f"{path}: journal header truncated")
    raw = blob[12:12 + n]
    if struct.unpack_from("<I", blob, 12 + n)[0] != zlib.crc32(raw):
        raise BetonFormatError(f"{path}: journal header checksum mismatch")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise BetonFormatError(f"{path}: journal header is not JSON ({exc})") from None
    version = header.get("version")
    if version not in (1, JOURNAL_VERSION):
        raise BetonFormatError(f"{path}: journal version {version} is not supported (a newer "
                               "synthclone wrote it)")
    crc_size = 4 if version >= 2 else 0
    if isinstance(record_size, np.dtype):
        record_size = record_size.itemsize  # callers may pass the metadata dtype
    commits = []
    pos = end
    while record_size is not None and pos + _REC_HEAD.size <= len(blob):
        magic, plen, crc = _REC_HEAD.unpack_from(blob, pos)
        start = pos + _REC_HEAD.size
        if magic != RECORD_MAGIC or start + plen > len(blob) or plen < _PAYLOAD_HEAD.size:
            break
        payload = blob[start:start + plen]
        if zlib.crc32(payload) != crc:
            break
        data_end, ns, na = _PAYLOAD_HEAD.unpack_from(payload, 0)
        want = (_PAYLOAD_HEAD.size + ns * (8 + record_size + crc_size)
                + na * ALLOC_TABLE_TYPE.itemsize)
        if want != plen:
            break
        o = _PAYLOAD_HEAD.size
        sids = np.frombuffer(payload, dtype="<u8", count=ns, offset=o)
        o += ns * 8
        recs = np.frombuffer(payload, dtype=np.uint8, count=ns * record_size,
                             offset=o).reshape(ns, record_size)
        o += ns * record_size
        crcs = np.frombuffer(payload, dtype="<u4", count=ns, offset=o) if crc_size else None
        o += ns * crc_size
        allocs = np.frombuffer(payload, dtype=ALLOC_TABLE_TYPE, count=na, offset=o)
        commits.append((data_end, sids, recs, crcs, allocs))
        pos = start + plen
    return header, commits, pos


class Journal:
    """Append-side handle: ``commit(...)`` appends a record (and fsyncs when durable)."""

    def __init__(self, path: str, header: dict | None, durable: bool, truncate_to: int = -1):
        self.path, self.durable = path, durable
        if header is not None:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self.fd, encode_header(header))
            fsync(self.fd)
        else:
            self.fd = os.open(path, os.O_WRONLY)
            if truncate_to >= 0:
                os.ftruncate(self.fd, truncate_to)
        os.lseek(self.fd, 0, os.SEEK_END)

    def commit(self, data_end, sample_ids, records, crcs, allocs) -> None:
        rec = encode_record(data_end, sample_ids, records, crcs, allocs)
        view = memoryview(rec)
        while view:
            view = view[os.write(self.fd, view):]
        if self.durable:
            fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def fsync(fd: int) -> None:
    """The one fsync the storage layer uses (tests replace it to crash at a durability point)."""
    os.fsync(fd)
