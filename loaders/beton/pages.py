"""The partial file and its journal: page placement, commits (durability points), finalize.

Only the writer's placer thread (or the producer, once the placer is idle) touches a
``PartialFile``; it is not thread-safe on its own. See ``writer.py`` for the durability points.
"""
from __future__ import annotations

import os
import queue
import threading

import zlib

import numpy as np

from loaders.beton import format as fmt
from loaders.beton import integrity
from loaders.beton.encode import SampleError
from loaders.beton.journal import JOURNAL_VERSION, Journal, fsync
from loaders.beton.schema import JOURNAL_SUFFIX, PARTIAL_SUFFIX

__all__ = ["PartialFile", "drop_stale_journal"]


def _pwrite(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


class PartialFile:
    """``<path>.partial`` + ``<path>.journal`` of a .beton being written.

    Metadata records are kept as bytes (``records``: N x record size, zero-initialised), so the
    alignment padding FFCV's records have is always zero: same data, same file bytes.
    """

    def __init__(self, path: str, num_samples: int, fields: dict, page_size: int, durable: bool,
                 info: dict | None = None, job: dict | None = None):
        self.path, self.durable = path, durable
        self.partial_path = path + PARTIAL_SUFFIX
        self.journal_path = path + JOURNAL_SUFFIX
        self.num_samples, self.page_size = num_samples, page_size
        self.fields = fields
        self.info, self.job = info, job
        self.layout = fmt.RecordLayout(fields)
        self.mdtype = self.layout.mdtype
        self.desc = fmt.field_descriptors(fields)
        self.meta_start = fmt.HeaderType.itemsize + self.desc.nbytes
        self.data_start = fmt.data_start(len(self.desc), num_samples, self.mdtype, page_size)
        self.empty_ptr = self.data_start - page_size
        """FFCV's pointer for an empty value before any page exists (``data_start - page``):
        used for every empty value, so none shares a pointer with another sample's data."""
        self.records = np.zeros((num_samples, self.layout.itemsize), dtype=np.uint8)
        self.data_crc = np.zeros(num_samples, dtype="<u4")
        self.placed = np.zeros(num_samples, dtype=bool)
        self.committed: set[int] = set()
        self.lock = threading.Lock()
        """Guards ``committed`` (updated by the placer thread, read by the producer)."""
        self._allocs: list[np.ndarray] = []
        self._pending_sids: list[int] = []
        self._pending_allocs: list[tuple] = []
        self._page = np.zeros(page_size, dtype=np.uint8)
        self._page_index = self._cursor = self._written = 0
        self.fd = -1
        self.journal: Journal | None = None
        self.error: BaseException | None = None
        """First I/O error of the syncer thread (the writer turns it into BetonWriteError)."""
        self._sync_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._sync_cond = threading.Condition()
        self._sync_pending = 0
        self._sync_thread: threading.Thread | None = None

    def _header(self) -> bytes:
        return fmt.make_header(fmt.PARTIAL_VERSION, len(self.desc), self.page_size,
                               self.num_samples, 0)

    def journal_header(self) -> dict:
        return {"format": "synthclone-beton-journal", "version": JOURNAL_VERSION,
                "path": self.path, "num_samples": self.num_samples, "page_size": self.page_size,
                "data_start": self.data_start, "descriptors": self.desc.tobytes().hex(),
                "fields": [[n, fmt.field_spec(f)] for n, f in self.fields.items()],
                "info": self.info, "job": self.job}

    # ------------------------------------------------------------------ open
    def create(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.fd = os.open(self.partial_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        _pwrite(self.fd, self._header() + self.desc.tobytes(), 0)
        os.ftruncate(self.fd, self.data_start)
        fsync(self.fd)
        self.journal = Journal(self.journal_path, self.journal_header(), self.durable)
        _fsync_dir(self.path)
        self._start_syncer()

    def reopen(self, header: dict, commits: list, valid_len: int) -> None:
        """Load committed samples from the journal; drop partial-file bytes past the last one."""
        if header["descriptors"] != self.desc.tobytes().hex() \
                or header["data_start"] != self.data_start:
            raise fmt.BetonFormatError(f"{self.journal_path} does not match {self.partial_path}")
        data_end = self.data_start
        self.fd = os.open(self.partial_path, os.O_RDWR)
        size = os.fstat(self.fd).st_size
        for end, sids, recs, crcs, allocs in commits:
            self.records[sids] = recs
            self.placed[sids] = True
            self.data_crc[sids] = crcs if crcs is not None else self._crcs_from_file(sids, allocs)
            self._allocs.append(np.array(allocs))
            data_end = max(data_end, int(end))
        self.committed = set(np.flatnonzero(self.placed).tolist())
        if size < data_end:
            os.close(self.fd)
            raise fmt.BetonFormatError(f"{self.partial_path} is {size} bytes but its journal "
                                       f"commits data up to {data_end}: cannot resume")
        os.ftruncate(self.fd, data_end)
        head = np.frombuffer(os.pread(self.fd, fmt.HeaderType.itemsize, 0), fmt.HeaderType)
        if int(head["version"][0]) != fmt.PARTIAL_VERSION:
            # a crash inside finalize: it left version 2 and maybe metadata and a trailer
            # before the data; zero them so the refinalized file is what a clean run writes
            _pwrite(self.fd, np.zeros(self.data_start - self.meta_start, np.uint8),
                    self.meta_start)
        _pwrite(self.fd, self._header(), 0)
        self._page_index, self._cursor = divmod(data_end - self.data_start, self.page_size)
        if self._cursor:
            start = self.data_start + self._page_index * self.page_size
            self._page[:self._cursor] = np.frombuffer(
                os.pread(self.fd, self._cursor, start), dtype=np.uint8)
        self._written = self._cursor
        fsync(self.fd)
        self.journal = Journal(self.journal_path, None, self.durable, truncate_to=valid_len)
        self._start_syncer()

    def _crcs_from_file(self, sids, allocs) -> np.ndarray:
        """Data checksums of committed samples, read back (journals of version 1 lack them)."""
        out = np.zeros(len(sids), dtype="<u4")
        pos = {int(s): k for k, s in enumerate(sids)}
        for row in np.sort(allocs, order=["sample_id", "ptr"]):
            k, n = pos.get(int(row["sample_id"])), int(row["size"])
            if k is not None and n:
                out[k] = zlib.crc32(os.pread(self.fd, n, int(row["ptr"])), int(out[k]))
        return out

    # ------------------------------------------------------------------ placement
    def place(self, sid: int, record: np.ndarray, blobs: list, crc: int) -> None:
        """Copy one encoded sample into the current page (sealing it first if it is full).

        ``record``: the record's bytes; ``blobs``: ``[(pointer offset in the record, bytes)]``.
        """
        total = sum(len(b) for _, b in blobs)
        if total > self.page_size:
            raise SampleError(f"sample {sid}: its data ({total} bytes) exceeds the page size "
                              f"({self.page_size}); raise page_size or lower max_resolution")
        if self._cursor + total > self.page_size:
            self.seal_page()
        row = self.records[sid]
        row[:] = record
        base = self.data_start + self._page_index * self.page_size
        for off, blob in blobs:
            n = len(blob)
            if n:
                ptr = base + self._cursor
                self._page[self._cursor:self._cursor + n] = blob
                self._cursor += n
            else:
                ptr = self.empty_ptr
            row[off:off + 8] = np.frombuffer(ptr.to_bytes(8, "little"), np.uint8)
            self._pending_allocs.append((sid, ptr, n))
        self.data_crc[sid] = crc
        self.placed[sid] = True
        self._pending_sids.append(sid)

    def _write_page(self, upto: int) -> None:
        base = self.data_start + self._page_index * self.page_size
        if upto > self._written:
            _pwrite(self.fd, self._page[self._written:upto], base + self._written)
            self._written = upto

    def _commit(self, data_end: int) -> None:
        """Hand the samples placed since the last commit to the syncer (or journal them now
        when not durable). Their bytes up to ``data_end`` are already written."""
        if not self._pending_sids:
            return
        sids = np.array(self._pending_sids, dtype="<u8")
        allocs = np.array(self._pending_allocs, dtype=fmt.ALLOC_TABLE_TYPE)
        self._allocs.append(allocs)
        self._pending_sids, self._pending_allocs = [], []
        item = (data_end, sids, self.records[sids], self.data_crc[sids], allocs)
        if not self.durable:
            self._journal_commit(*item)
            return
        with self._sync_cond:
            self._sync_pending += 1
        self._sync_queue.put(item)

    def _journal_commit(self, data_end, sids, records, crcs, allocs) -> None:
        self.journal.commit(data_end, sids, records, crcs, allocs)
        with self.lock:
            self.committed.update(sids.tolist())

    def _syncer(self) -> None:
        """fsync the data, then append + fsync the journal record: off the placer's path, so
        encoding and placement go on while the disk catches up."""
        while True:
            item = self._sync_queue.get()
            if item is None:
                return
            try:
                if self.error is None:
                    fsync(self.fd)
                    self._journal_commit(*item)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer by the writer
                self.error = self.error or exc
            finally:
                with self._sync_cond:
                    self._sync_pending -= 1
                    self._sync_cond.notify_all()

    def wait_synced(self) -> None:
        """Block until every commit handed to the syncer is durable (or raise its error)."""
        with self._sync_cond:
            self._sync_cond.wait_for(lambda: self._sync_pending == 0)
        if self.error is not None:
            raise self.error

    def _start_syncer(self) -> None:
        self._sync_thread = threading.Thread(target=self._syncer, name="beton-sync", daemon=True)
        self._sync_thread.start()

    def seal_page(self) -> None:
        """Durability point 1: write the whole page (zero-padded); the syncer then fsyncs it and
        journals its samples (asynchronously: ``wait_synced`` waits for it)."""
        if self._cursor == 0:
            return
        self._write_page(self.page_size)
        self._commit(self.data_start + (self._page_index + 1) * self.page_size)
        self._page_index += 1
        self._cursor = self._written = 0
        self._page.fill(0)

    def flush(self) -> None:
        """Durability point 2: write the current page so far, fsync, journal its new samples;
        returns once they (and every earlier commit) are durable."""
        self._write_page(self._cursor)
        self._commit(self.data_start + self._page_index * self.page_size + self._cursor)
        self.wait_synced()

    # ------------------------------------------------------------------ finish
    def finalize(self, have: np.ndarray) -> None:
        """Metadata, integrity trailer, allocation table, header (version 2), fsync, rename,
        drop the journal. Without data pages the file ends after the metadata, trailer and
        table, as FFCV's files do; otherwise the trailer starts at the next page boundary."""
        self.flush()
        last = self._page_index + (1 if self._cursor else 0)
        allocs = (np.concatenate(self._allocs) if self._allocs
                  else np.zeros(0, dtype=fmt.ALLOC_TABLE_TYPE))
        records = self.records[have]
        if len(have) < self.num_samples:  # shrink: dense renumbering in sample-id order
            remap = np.full(self.num_samples, -1, dtype=np.int64)
            remap[have] = np.arange(len(have))
            allocs = allocs.copy()
            allocs["sample_id"] = remap[allocs["sample_id"].astype(np.int64)]
        allocs = allocs[np.argsort(allocs["ptr"], kind="stable")]
        n = len(have)
        meta_end = self.meta_start + n * self.layout.itemsize
        start = self.data_start + last * self.page_size if last else meta_end
        plain_start = fmt.align_up(meta_end, self.page_size)  # where FFCV's data would start
        size = integrity.trailer_size(n, self.info, start, meta_end, plain_start,
                                      self.page_size)
        table_ptr = start + size
        header = fmt.make_header(fmt.FORMAT_VERSION, len(self.desc), self.page_size, n,
                                 table_ptr)
        table = allocs.tobytes()
        trailer = integrity.encode_trailer(
            size, n, self.info, zlib.crc32(header + self.desc.tobytes()),
            zlib.crc32(table), integrity.record_crcs(records), self.data_crc[have])
        _pwrite(self.fd, records, self.meta_start)
        _pwrite(self.fd, trailer, start)
        _pwrite(self.fd, table, table_ptr)
        os.ftruncate(self.fd, table_ptr + len(table))
        _pwrite(self.fd, header, 0)
        fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.replace(self.partial_path, self.path)
        _fsync_dir(self.path)
        self.journal.close()
        os.unlink(self.journal_path)
        _fsync_dir(self.path)

    def close(self) -> None:
        """Stop the syncer and release the file handles (partial and journal stay on disk)."""
        if self._sync_thread is not None:
            self._sync_queue.put(None)
            self._sync_thread.join()
            self._sync_thread = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.journal is not None:
            self.journal.close()


def drop_stale_journal(path: str) -> None:
    """A journal without its partial is what a writer killed right after its rename leaves
    (the finished file exists); it describes nothing any more."""
    journal = path + JOURNAL_SUFFIX
    if os.path.exists(journal) and not os.path.exists(path + PARTIAL_SUFFIX):
        os.unlink(journal)
