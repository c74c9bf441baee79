"""Integrity data and file description that FFCV ignores: the trailer of our .beton files.

FFCV reads the header, the field descriptors, ``num_samples`` metadata records, and the
allocation table from ``alloc_table_ptr`` to the end of the file; data is read only through
pointers. The trailer sits in the one place none of these reads reach: right before the
allocation table (after the last data page, or after the metadata when there is no data)::

    [... metadata | data pages][block][footer 32 B][allocation table]   <- EOF
    block:  u32 json_len | JSON (kind, plan hash, class names, recipes) | zero pad to 4
            | u32 crc(header + descriptors) | u32 crc(allocation table)
            | u32 crc(metadata record i) x N | u32 crc(data of sample i) x N
    footer: b"SCBINFO1" | u64 block_len | u32 crc(block) | u32 version | u32 crc(footer[:24]) | 4 B 0

CRC-32 (``zlib.crc32``). The data checksum of a sample chains its allocations in pointer order
(= field order: the writer places a sample's blobs contiguously), so ``merge`` carries it
unchanged. A file without a trailer is FFCV's layout exactly: its allocation table starts right
after the metadata or on a page boundary. Ours never does (the trailer is padded so), so a
damaged or cut-off trailer is reported instead of silently reading as "no checksums".
"""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np

__all__ = ["TRAILER_MAGIC", "Trailer", "encode_trailer", "find_trailer", "record_crcs",
           "chain_crc", "ffcv_table_position"]

TRAILER_MAGIC = b"SCBINFO1"
"""First 8 bytes of the footer."""
TRAILER_VERSION = 1
_FOOTER = struct.Struct("<8sQIII4x")
FOOTER_BYTES = _FOOTER.size  # 32


def chain_crc(blobs, crc: int = 0) -> int:
    """CRC-32 of the concatenated blobs (bytes-like), without concatenating them."""
    for b in blobs:
        crc = zlib.crc32(b, crc)
    return crc


def record_crcs(rows: np.ndarray) -> np.ndarray:
    """CRC-32 of each row of a 2-D uint8 array (metadata records as stored)."""
    n, size = rows.shape
    mv = memoryview(np.ascontiguousarray(rows)).cast("B")
    return np.fromiter((zlib.crc32(mv[k * size:(k + 1) * size]) for k in range(n)),
                       dtype="<u4", count=n)


def ffcv_table_position(alloc_table_ptr: int, meta_end: int, data_start: int,
                        page_size: int) -> bool:
    """True where FFCV's writer would put the allocation table (a file without a trailer)."""
    return alloc_table_ptr == meta_end or (
        alloc_table_ptr >= data_start and (alloc_table_ptr - data_start) % page_size == 0)


class Trailer:
    """The parsed trailer: ``info`` (JSON dict or None) and the checksum arrays."""

    def __init__(self, meta: dict, header_crc: int, table_crc: int, record_crc: np.ndarray,
                 data_crc: np.ndarray):
        self.meta = meta
        self.info = meta.get("info")
        self.header_crc, self.table_crc = header_crc, table_crc
        self.record_crc, self.data_crc = record_crc, data_crc


def _json_part(num_samples: int, info: dict | None) -> bytes:
    meta = {"format": "synthclone-beton", "version": TRAILER_VERSION, "checksum": "crc32",
            "num_samples": int(num_samples), "info": info}
    raw = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    raw = struct.pack("<I", len(raw)) + raw
    return raw + b"\0" * (-len(raw) % 4)


def trailer_size(num_samples: int, info: dict | None, trailer_start: int, meta_end: int,
                 data_start: int, page_size: int) -> int:
    """Bytes the trailer will take at ``trailer_start`` (padded off FFCV's table positions)."""
    size = len(_json_part(num_samples, info)) + 8 + 8 * num_samples + FOOTER_BYTES
    if ffcv_table_position(trailer_start + size, meta_end, data_start, page_size):
        size += 4
    return size


def encode_trailer(size: int, num_samples: int, info: dict | None, header_crc: int,
                   table_crc: int, record_crc: np.ndarray, data_crc: np.ndarray) -> bytes:
    """The trailer bytes (``size`` from :func:`trailer_size`)."""
    head = _json_part(num_samples, info)
    pad = size - FOOTER_BYTES - len(head) - 8 - 8 * num_samples
    block = b"".join([head, struct.pack("<II", header_crc, table_crc),
                      np.asarray(record_crc, "<u4").tobytes(),
                      np.asarray(data_crc, "<u4").tobytes(), b"\0" * pad])
    footer = _FOOTER.pack(TRAILER_MAGIC, len(block), zlib.crc32(block), TRAILER_VERSION, 0)
    footer = footer[:24] + struct.pack("<I", zlib.crc32(footer[:24])) + footer[28:]
    return block + footer


def find_trailer(buf: np.ndarray, alloc_table_ptr: int, meta_end: int, num_samples: int):
    """-> :class:`Trailer`, ``None`` when there is no footer, or a string saying what is wrong."""
    end = alloc_table_ptr
    if end - meta_end < FOOTER_BYTES:
        return None
    footer = buf[end - FOOTER_BYTES:end].tobytes()
    magic, block_len, block_crc, version, footer_crc = _FOOTER.unpack(footer)
    if magic != TRAILER_MAGIC:
        return None
    if zlib.crc32(footer[:24]) != footer_crc:
        return "integrity trailer footer is corrupt"
    if version != TRAILER_VERSION:
        return f"integrity trailer version {version} is not supported (expected " \
               f"{TRAILER_VERSION}; a newer synthclone wrote this file)"
    start = end - FOOTER_BYTES - block_len
    if start < meta_end:
        return "integrity trailer overlaps the metadata (corrupt)"
    block = buf[start:end - FOOTER_BYTES]
    if zlib.crc32(block) != block_crc:
        return "integrity trailer is corrupt (checksum mismatch)"
    (n,) = struct.unpack_from("<I", block, 0)
    try:
        meta = json.loads(block[4:4 + n].tobytes())
    except ValueError as exc:
        return f"integrity trailer is not JSON ({exc})"
    off = 4 + n + (-(4 + n) % 4)
    if meta.get("num_samples") != num_samples or off + 8 + 8 * num_samples > len(block):
        return (f"integrity trailer describes {meta.get('num_samples')} samples, the header "
                f"{num_samples}")
    header_crc, table_crc = struct.unpack_from("<II", block, off)
    off += 8
    rec = block[off:off + 4 * num_samples].view("<u4")
    data = block[off + 4 * num_samples:off + 8 * num_samples].view("<u4")
    return Trailer(meta, header_crc, table_crc, rec, data)
