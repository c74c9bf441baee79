"""Streaming, crash-safe .beton writer that FFCV's ``Loader`` reads.

Usage::

    with BetonWriter(path, num_samples=N, fields={"image": RGBImageField(write_mode="jpg"),
                                                 "label": IntField()}, num_workers=2) as w:
        for sid, img, y in produce():          # any order, 0 <= sid < N, each id once
            w.append(sid, {"image": img, "label": y})
    # `path` exists only now

Files: while writing, data goes to ``<path>.partial`` (header version 0, so nothing mistakes it
for a finished file) and commits go to ``<path>.journal`` (see ``journal.py``). ``close()``
writes metadata, allocation table and header into the partial, fsyncs it, renames it to
``path`` (atomic), fsyncs the directory and removes the journal.

Threads: ``append`` checks the values (errors name the sample) and hands encoding (resize to
``max_resolution``, JPEG) to a pool of ``num_workers`` threads (OpenCV releases the GIL); one
placer thread copies finished samples, in completion order, into the current page and writes
pages in file order. A sample's bytes all lie in one page, as FFCV requires.

Durability points (with ``durable=True``, the default):
  1. a page is sealed (the next sample does not fit): the page is written; a syncer thread
     then fsyncs the partial file, appends a journal record for every sample on the page and
     fsyncs the journal (in the background: encoding and placement go on meanwhile);
  2. ``flush()``: the same for the samples placed so far in the current, unfinished page, and
     it returns only when every commit so far is durable;
  3. ``close()``: all samples are committed as in 2 before finalizing, then the finished file
     is fsynced before the rename and the directory after it.
A sample counts as written (``done_ids``) once its journal record is durable. A writer killed
at any instant (SIGKILL included) leaves a partial + journal; ``BetonWriter.resume(path)``
keeps every committed sample, drops bytes past the last commit, and goes on appending.
With ``durable=False`` the same ordering holds without fsync: safe against process death, not
against power loss.

Holes: ``close()`` requires all N samples. ``close(shrink=True)`` (generation with quality
filters) writes only the appended samples, renumbered densely in sample-id order; the values
of the samples' own fields (e.g. a ``sample_id`` IntField) are untouched.

One writer per output: an exclusive lock on ``<path>.lock`` (``lock.py``) is taken before the
partial is created or resumed and held until the finished file is renamed into place; a second
writer raises :class:`BetonLockedError` naming the holder's pid.

Determinism: encoded samples are placed in the order they were appended, whatever the thread
timing, so the same samples appended in the same order give the same file bytes with any number
of workers (FFCV's ``proportion`` write mode draws at random, as in FFCV).

Integrity: each sample's data checksum is computed on the encode threads; ``close()`` writes
them, the metadata records' checksums and the file's :class:`FileInfo` into the trailer that
FFCV ignores (``integrity.py``).
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import threading

import numpy as np

from loaders.beton import format as fmt
from loaders.beton.encode import SampleError, check_sample, encode_sample
from loaders.beton.journal import read_journal
from loaders.beton.lock import BetonLockedError, OutputLock
from loaders.beton.pages import PartialFile, drop_stale_journal
from loaders.beton.schema import JOURNAL_SUFFIX, PARTIAL_SUFFIX, FileInfo
from loaders.errors import LoadersError

__all__ = ["BetonWriter", "BetonWriteError", "BetonExistsError", "BetonLockedError",
           "SampleError"]


ENCODE_BATCH = 16
"""Samples per pool task: amortises thread hand-offs; a partial batch goes out at ``flush``."""


def _run_batch(batch: list) -> list:
    """Encode ``[(sid, make)]`` -> ``[(sid, (record, blobs) or None, exception or None)]``."""
    out = []
    for sid, make in batch:
        try:
            out.append((sid, make(), None))
        except Exception as exc:  # noqa: BLE001 - reported at the next call, naming the sample
            out.append((sid, None, exc))
    return out


class BetonWriteError(LoadersError, RuntimeError):
    """The writer failed (I/O error such as a full disk); the partial stays resumable."""


class BetonExistsError(LoadersError, FileExistsError):
    """The output (or a resumable partial of it) exists and ``overwrite`` was not given."""


def _info_json(info) -> dict | None:
    if info is None or isinstance(info, dict):
        return FileInfo.from_json(info).to_json() if info else None
    return info.to_json()


class BetonWriter:
    """Open a .beton for ``num_samples`` samples with FFCV field objects; see module doc.

    path: the finished file (appears at ``close()``); ``path.partial``/``path.journal`` meanwhile.
    num_samples: N, declared up front (it fixes where the data pages start).
    fields: ``{name: ffcv field}`` in file order (RGBImageField, IntField, FloatField,
        BytesField, JSONField, NDArrayField, TorchTensorField).
    num_workers: encoding threads (0: encode in the caller's thread).
    page_size: FFCV page size (power of two, >= 2 MiB); a sample's data must fit in one page.
    overwrite: replace an existing file or partial instead of refusing.
    durable: fsync at every commit (see durability points); False still survives SIGKILL.
    max_inflight: encoding tasks (of ``ENCODE_BATCH`` samples) queued before ``append`` blocks.
    info: what the file is (:class:`loaders.beton.schema.FileInfo`: kind, plan hash, class
        names, recipes), stored with the finished file; ``BetonReader.info`` reads it back.
    job: a JSON-able fingerprint of what is being written (inputs, settings); kept in the
        journal (not in the finished file) so that a caller can refuse to resume another job.
    """

    def __init__(self, path: str, num_samples: int, fields: dict, num_workers: int = 2,
                 page_size: int = fmt.DEFAULT_PAGE_SIZE, overwrite: bool = False,
                 durable: bool = True, max_inflight: int | None = None,
                 info: "FileInfo | dict | None" = None, job: dict | None = None,
                 _resume=None, _lock: OutputLock | None = None):
        self.path = os.fspath(path)
        self.partial_path = self.path + PARTIAL_SUFFIX
        self.journal_path = self.path + JOURNAL_SUFFIX
        if not fields:
            raise ValueError("fields must name at least one FFCV field")
        self.fields = dict(fields)
        self.num_samples, self.page_size = int(num_samples), fmt.check_page_size(page_size)
        if self.num_samples < 1:
            raise ValueError(f"num_samples={num_samples}: must be >= 1")
        self.durable = durable
        self._lock = _lock or OutputLock(self.path)
        try:
            if not self._lock.held:
                self._lock.acquire()
            self._file = PartialFile(self.path, self.num_samples, self.fields, self.page_size,
                                     durable, _info_json(info), job)
            if _resume is None:
                self._create(overwrite)
            else:
                self._file.reopen(*_resume)
        except BaseException:
            self._lock.release()
            raise
        self._mdtype = self._file.mdtype
        self._taken: set[int] = set(self._file.committed)
        self._taken_lock = threading.Lock()
        self._sample_errors: list[str] = []
        self._fatal: BaseException | None = None
        self._closed = False
        self.num_workers = int(num_workers)
        self._pool = (concurrent.futures.ThreadPoolExecutor(self.num_workers, "beton-encode")
                      if self.num_workers > 0 else None)
        self._slots = threading.Semaphore(max_inflight or 3 * max(1, self.num_workers))
        self._batch: list = []
        self._cond = threading.Condition()
        self._submitted = self._done = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._placer, name="beton-placer", daemon=True)
        self._thread.start()

    def _create(self, overwrite: bool) -> None:
        """A fresh partial (the lock is held): refuse existing outputs unless ``overwrite``."""
        drop_stale_journal(self.path)
        if not overwrite and os.path.exists(self.path):
            raise BetonExistsError(f"{self.path} exists; pass --overwrite (overwrite=True) to "
                                   "replace it")
        if not overwrite and BetonWriter.partial_exists(self.path):
            raise BetonExistsError(
                f"an interrupted write of {self.path} left a resumable partial: rerun the "
                "command that made it to resume (BetonWriter.resume(path)), or pass "
                "--overwrite (overwrite=True) to start over")
        self._file.create()

    @property
    def info(self) -> FileInfo | None:
        """What the file is (stored with it at ``close()``); settable before ``close()``."""
        return FileInfo.from_json(self._file.info)

    @info.setter
    def info(self, value) -> None:
        self._file.info = _info_json(value)

    @property
    def job(self) -> dict | None:
        """The job fingerprint given when the file was started (see class doc)."""
        return self._file.job

    # ------------------------------------------------------------------ resuming
    @staticmethod
    def partial_exists(path: str) -> bool:
        """True when a resumable partial (``path.partial`` + ``path.journal``) exists."""
        path = os.fspath(path)
        return os.path.exists(path + PARTIAL_SUFFIX) and os.path.exists(path + JOURNAL_SUFFIX)

    @classmethod
    def resume(cls, path: str, num_workers: int = 2, durable: bool = True,
               max_inflight: int | None = None, fields: dict | None = None) -> "BetonWriter":
        """Reopen the journaled partial of ``path``; ``done_ids`` tells what is already in.

        fields: the field objects, needed only when the file has custom fields (their
            descriptors must match the journal's).
        """
        path = os.fspath(path)
        lock = OutputLock(path).acquire()
        try:
            drop_stale_journal(path)
            if not cls.partial_exists(path):
                hint = " (it is already finished)" if os.path.exists(path) else ""
                raise FileNotFoundError(f"no resumable partial of {path}{hint}: expected "
                                        f"{path}{PARTIAL_SUFFIX} and {path}{JOURNAL_SUFFIX}")
            header, _, _ = read_journal(path + JOURNAL_SUFFIX)
            if fields is None:
                fields = {n: fmt.field_from_spec(s, n) for n, s in header["fields"]}
            elif fmt.field_descriptors(fields).tobytes().hex() != header["descriptors"]:
                raise fmt.BetonFormatError(f"{path}: the fields given to resume differ from "
                                           "the ones the partial was started with")
            layout = fmt.RecordLayout(fields)
            header, commits, valid_len = read_journal(path + JOURNAL_SUFFIX, layout.itemsize)
        except BaseException:
            lock.release()
            raise
        return cls(path, header["num_samples"], fields, num_workers=num_workers,
                   page_size=header["page_size"], durable=durable, max_inflight=max_inflight,
                   info=header.get("info"), job=header.get("job"),
                   _resume=(header, commits, valid_len), _lock=lock)

    # ------------------------------------------------------------------ producer side
    @property
    def done_ids(self) -> set[int]:
        """Sample ids whose journal record is durable (what ``resume`` would keep)."""
        with self._file.lock:
            return set(self._file.committed)

    @property
    def appended_ids(self) -> set[int]:
        """Sample ids accepted by ``append`` so far (durable or not)."""
        with self._taken_lock:
            return set(self._taken)

    def append(self, sample_id: int, values: dict) -> None:
        """Queue one sample for encoding; returns once it is accepted (not yet durable)."""
        self._check_usable()
        self._raise_sample_errors()
        sid = self._check_id(sample_id)
        check_sample(sid, values, self.fields)
        with self._taken_lock:
            self._taken.add(sid)
        self._batch.append((sid, functools.partial(encode_sample, values, self.fields,
                                                   self._file.layout)))
        if len(self._batch) >= ENCODE_BATCH:
            self._submit_batch()

    def _append_encoded(self, sample_id: int, record: np.ndarray, blobs: list, crc: int) -> None:
        """Place an already-encoded sample (merge): ``record`` the record's bytes, ``blobs``
        ``[(pointer offset, bytes)]`` in field order, ``crc`` their chained CRC-32."""
        self._check_usable()
        sid = self._check_id(sample_id)
        with self._taken_lock:
            self._taken.add(sid)
        self._batch.append((sid, lambda: (record, blobs, crc)))
        if len(self._batch) >= ENCODE_BATCH:
            self._submit_batch()

    def _check_id(self, sample_id) -> int:
        if isinstance(sample_id, bool) or not isinstance(sample_id, (int, np.integer)):
            raise TypeError(f"sample_id must be an int, got {type(sample_id).__name__}")
        sid = int(sample_id)
        if not 0 <= sid < self.num_samples:
            raise IndexError(f"sample_id {sid} out of range: this file holds {self.num_samples} "
                             f"samples (0..{self.num_samples - 1})")
        if sid in self._taken:
            raise ValueError(f"sample_id {sid} was already written to {self.path}")
        return sid

    def _submit_batch(self) -> None:
        """Hand the pending samples to the pool as one task (or run them here without one)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._slots.acquire()
        with self._cond:
            seq = self._submitted
            self._submitted += 1
        if self._pool is None:
            self._queue.put((seq, _run_batch(batch)))
        else:
            sids = [sid for sid, _ in batch]
            self._pool.submit(_run_batch, batch).add_done_callback(
                functools.partial(self._enqueue, seq, sids))

    def _enqueue(self, seq, sids, fut) -> None:
        try:
            self._queue.put((seq, fut.result()))
        except BaseException as exc:  # noqa: BLE001 - the task itself died: fail its samples
            self._queue.put((seq, [(sid, None, exc) for sid in sids]))

    # ------------------------------------------------------------------ placer thread
    def _placer(self) -> None:
        """Place encoded batches in submission order (one thread: pages fill sequentially,
        and the layout does not depend on which worker finished first)."""
        waiting, next_seq = {}, 0
        while True:
            got = self._queue.get()
            if got is None:
                return
            waiting[got[0]] = got[1]
            while next_seq in waiting:
                self._place_batch(waiting.pop(next_seq))
                next_seq += 1

    def _place_batch(self, items) -> None:
        for sid, result, exc in items:
            try:
                if exc is not None:
                    if isinstance(exc, SampleError):
                        raise SampleError(f"sample {sid}: {exc}") from exc
                    raise SampleError(f"sample {sid}: encoding failed: {exc!r}") from exc
                if self._fatal is None:
                    self._file.place(sid, *result)
            except SampleError as err:
                with self._taken_lock:
                    self._taken.discard(sid)
                self._sample_errors.append(str(err))
            except BaseException as err:  # noqa: BLE001 - I/O failure: keep the partial
                with self._taken_lock:
                    self._taken.discard(sid)
                self._fatal = self._fatal or err
        self._slots.release()
        with self._cond:
            self._done += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ durability / finish
    def _drain(self) -> None:
        self._submit_batch()
        with self._cond:
            self._cond.wait_for(lambda: self._done == self._submitted)

    def _check_usable(self) -> None:
        if self._closed:
            raise ValueError(f"writer for {self.path} is closed")
        if self._fatal is None and self._file.error is not None:
            self._fatal = self._file.error
        if self._fatal is not None:
            raise self._fatal_error() from self._fatal

    def _fatal_error(self) -> BetonWriteError:
        what = self._fatal
        if isinstance(what, OSError) and what.strerror:
            what = f"{what.strerror}" + (f": {what.filename}" if what.filename else "")
        return BetonWriteError(f"writing {self.path} failed ({what}); the partial file keeps "
                               "every committed sample: fix the cause and rerun the same "
                               "command to resume (BetonWriter.resume(path) from Python)")

    def _raise_sample_errors(self) -> None:
        if self._sample_errors:
            errs, self._sample_errors = self._sample_errors, []
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise SampleError(errs[0] + more)

    def flush(self) -> None:
        """Durability point: every sample appended so far is committed when this returns."""
        self._check_usable()
        self._drain()
        self._check_usable()
        try:
            self._file.flush()
        except Exception as exc:  # noqa: BLE001 - I/O failure: the writer is unusable now
            self._fatal = self._fatal or exc
            self._check_usable()
        self._raise_sample_errors()

    def close(self, shrink: bool = False) -> None:
        """Finalize atomically; ``path`` appears only now (see module doc for ``shrink``).
        On an I/O error the writer shuts down and leaves its resumable partial."""
        try:
            self.flush()
        except BetonWriteError:
            self._shutdown()
            raise
        have = np.flatnonzero(self._file.placed)
        if len(have) < self.num_samples and not shrink:
            missing = np.flatnonzero(~self._file.placed)
            raise ValueError(f"{len(missing)} of {self.num_samples} samples were never appended "
                             f"(first: {missing[:5].tolist()}); append them, close(shrink=True) "
                             "to keep only appended ones, or abort() to resume later")
        if len(have) == 0:
            raise ValueError("no sample was appended; nothing to finalize (abort() instead)")
        try:
            self._file.finalize(have)
        except Exception as exc:  # noqa: BLE001 - the partial + journal stay resumable
            self._fatal = self._fatal or exc
            self._shutdown()
            raise self._fatal_error() from exc
        self._shutdown()

    def abort(self) -> None:
        """Stop and leave a resumable partial (committing what can be committed)."""
        if self._closed:
            return
        if self._fatal is None:
            try:
                self.flush()
            except (SampleError, OSError, BetonWriteError):
                pass  # what failed is simply not in the partial; committed samples are
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)  # running tasks hand their results to the placer
            self._queue.put(None)
            self._thread.join()
            self._file.close()
        finally:
            self._lock.release()

    def __enter__(self) -> "BetonWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __len__(self) -> int:
        return self.num_samples

