"""FFCV backend: numba-compiled JPEG decoding (libjpeg-turbo) on CPU threads, CPU or CUDA output.

Pipelines (ffcv-imagenet's, with the CPU bug avoided)::

    train: keyed RandomResizedCrop + flip decode -> [normalize] -> ToTensor -> [ToDevice]
           -> ToTorchImage
    eval:  CenterCrop decode (side = ratio * short side, ratio 224/256) -> same tail

The train decoder (:class:`loaders.ffcv_decoder.KeyedRandomResizedCrop`) takes each sample's
crop window and flip from :mod:`loaders.augment`, a pure function of (seed, epoch, row): FFCV's
own decoder and flip draw from numba's unseeded generators. Two loaders with the same seed give
the same pixels, and a loader resumed mid-epoch the same remaining batches.

On CPU ``NormalizeImage`` runs *before* ``ToTensor`` (a jitted op after non-jitted ones makes
``Loader.__init__`` spin forever, libffcv/ffcv#396; PLATFORM.md). On CUDA the uint8 batch is
moved with ``ToDevice`` and normalised there by torch (FFCV's GPU normaliser needs cupy).

Row control: one ``ffcv.loader.Loader`` per file, driven by an epoch iterator that takes the
plan's rows of that file for each batch as its own chunks (FFCV's ``EpochIterator`` with the
chunks given instead of cut from a traversal order), so the plan, not FFCV, decides which rows
form each batch; the memory manager (OS cache or FFCV's process cache) schedules pages from the
same chunks. Only the fields a batch needs (image, label, sample_id) are decoded; every other
field of the file (recipe, prompt, ...) is disabled from the file's own field list. A worker
exception, or no batch within ``LoaderConfig.timeout``, raises :class:`LoaderWorkerError`
instead of blocking forever (FFCV's own iterator waits forever when its thread dies). Files
whose rows share batches (dual and union plans) decode at the same time, so they split the
decode threads (``workers // files per batch`` each, at least 1) rather than each taking them
all; closing an epoch stops and joins its decode thread before FFCV releases its memory, and
threads a caller left running are closed at interpreter exit.

FFCV's effects on the whole process are kept in bounds by :mod:`loaders.ffcv_runtime`: the
caller's torch and numba thread counts survive every FFCV call here, and ``close()`` frees the
loader's compiled pipelines at once without numba's finalizer noise; a loader reuses the
compiled stages of an earlier loader of this process with the same file layout and options
(:func:`loaders.ffcv_runtime.share_compiled_stages`), so it compiles once per spec, not per
file and loader.
"""
from __future__ import annotations

import atexit
import functools
import queue
import threading
import time
import weakref

import numpy as np
import torch

from loaders.batch import Batch
from loaders.errors import LoaderConfigError, LoaderWorkerError
from loaders.ffcv_runtime import (collect_garbage, decode_threads, keep_threads,
                                  share_compiled_stages)

__all__ = ["FFCVBackend", "image_pipeline", "require"]

_FAILED = object()
"""Queue marker: the epoch thread died (its exception is on the iterator)."""
RING = 2
"""Output buffers reused in turn (FFCV's own buffers, passed through for single-file batches,
are only valid until the next batch is requested; so is every batch, by contract)."""


JOIN_SECONDS = 5.0
"""How long closing an epoch waits for its decode thread (it stops within one batch's decode
or 0.5 s of a full queue)."""
_LIVE = weakref.WeakSet()
"""Epoch iterators whose decode thread may still run: closed at interpreter exit."""


def _track(it) -> None:
    if not _LIVE and not getattr(_track, "registered", False):
        atexit.register(_close_live)
        _track.registered = True
    _LIVE.add(it)


def _close_live() -> None:
    """At exit: stop every decode thread a caller left running (module doc of ``close``)."""
    for it in list(_LIVE):
        it.close()


def require() -> None:
    """Import FFCV (ModuleNotFoundError names what is missing)."""
    import ffcv.loader  # noqa: F401


def _threading_layer_is_threadsafe() -> bool:
    """numba's tbb and omp layers accept parallel calls from several threads; workqueue aborts
    the process, so per-file pipelines must then take turns."""
    for mod in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            __import__(mod)
            return True
        except ImportError:
            continue
    return False


def _on_gpu(config) -> bool:
    return config.device.startswith("cuda")


def image_pipeline(config, size: int | None = None) -> list:
    """The FFCV image pipeline of ``config`` (train or eval, CPU or CUDA, float or uint8)."""
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
    from ffcv.transforms import NormalizeImage, ToDevice, ToTensor, ToTorchImage

    from loaders.ffcv_decoder import KeyedRandomResizedCrop

    size = size or config.image_size
    if config.pipeline == "train":  # crop and flip keyed by (seed, epoch, row): loaders.augment
        ops = [KeyedRandomResizedCrop((size, size), scale=config.crop_scale,
                                      ratio=config.crop_ratio, flip=config.flip)]
    else:
        ops = [CenterCropRGBImageDecoder((size, size), ratio=config.center_crop_ratio)]
    if not _on_gpu(config) and config.dtype != "uint8":
        # NormalizeImage before ToTensor on CPU: libffcv/ffcv#396 (Loader.__init__ spins)
        dtype = np.float16 if config.dtype == "float16" else np.float32
        ops.append(NormalizeImage(np.array(config.mean) * 255, np.array(config.std) * 255, dtype))
    ops.append(ToTensor())
    if _on_gpu(config):
        ops.append(ToDevice(torch.device(config.device), non_blocking=True))
    ops.append(ToTorchImage(channels_last=True))
    return ops


@functools.lru_cache(maxsize=None)
def _epoch_iterator_class():
    """FFCV's ``EpochIterator`` with :class:`_SafeMixin` (made on first use: importing this
    module does not import FFCV)."""
    from ffcv.loader.epoch_iterator import EpochIterator

    return type("SafeEpochIterator", (_SafeMixin, EpochIterator), {})


class _SafeMixin:
    """FFCV's ``EpochIterator`` fed with explicit chunks, failing loudly (see module doc)."""

    def __init__(self, loader, chunks, timeout: float, what: str, lock=None, key=(0, 0),
                 threads: int = 0):
        from ffcv.loader.epoch_iterator import IS_CUDA

        threading.Thread.__init__(self, daemon=True, name=f"ffcv-epoch {what}")
        self.loader, self.what, self.timeout, self.lock = loader, what, timeout, lock
        self.threads = threads
        self.error = None
        self.order = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
        self.metadata = loader.reader.metadata
        self.current_batch_slot = 0
        self.threads_set = threading.Event()
        self.iter_ixes = self._chunks(chunks)
        self.closed = False
        self.output_queue = queue.Queue(loader.batches_ahead)
        self.terminate_event = threading.Event()
        self.memory_context = loader.memory_manager.schedule_epoch(chunks)
        if IS_CUDA:
            self.current_stream = torch.cuda.current_stream()
        try:
            self.memory_context.__enter__()
        except MemoryError:
            raise LoaderConfigError(f"{what}: not enough memory for FFCV's page cache; use "
                                    "order=quasi_random with os_cache off, or os_cache on") from None
        self.storage_state = self.memory_context.state
        self.cuda_streams = [(torch.cuda.Stream() if IS_CUDA else None)
                             for _ in range(loader.batches_ahead + 2)]
        self.memory_allocations = loader.graph.allocate_memory(loader.batch_size,
                                                               loader.batches_ahead + 2)
        from loaders.ffcv_decoder import set_epoch_key

        set_epoch_key(loader, self.memory_allocations, *key)  # before the decode thread starts
        _track(self)
        self.start()
        # FFCV's run() sets the thread counts, then asks for its first chunk: from then on the
        # caller's torch count can be restored without this thread setting it again
        while not self.threads_set.wait(0.05) and self.is_alive():
            pass

    def close(self):
        """Stop the decode thread and wait for it (at most ``JOIN_SECONDS``) before FFCV releases
        the epoch's memory: a thread still decoding would read released pages, and one left
        running at interpreter exit can abort the process (numba's TBB pool)."""
        self.terminate_event.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(JOIN_SECONDS)
        _LIVE.discard(self)
        super().close()

    def _chunks(self, chunks):
        if self.threads:  # this epoch thread's decode threads (numba's count is per thread)
            import numba

            numba.set_num_threads(self.threads)
        self.threads_set.set()
        yield from chunks

    def run(self):
        try:
            super().run()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, never lost
            self.threads_set.set()
            self.error = exc
            while not self.terminate_event.is_set():
                try:
                    self.output_queue.put(_FAILED, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def run_pipeline(self, *args):
        if self.lock is None:
            return super().run_pipeline(*args)
        with self.lock:
            return super().run_pipeline(*args)

    def __next__(self):
        from ffcv.loader.epoch_iterator import IS_CUDA

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                result = self.output_queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.is_alive() and self.output_queue.empty():
                    self.close()
                    raise LoaderWorkerError(f"ffcv: the decode thread for {self.what} stopped "
                                            "without a result") from None
                if time.monotonic() > deadline:
                    self.close()
                    raise LoaderWorkerError(f"ffcv: no batch from {self.what} within "
                                            f"{self.timeout:g} s (stuck decode worker?)") from None
        if result is _FAILED:
            self.close()
            raise LoaderWorkerError(f"ffcv: decoding {self.what} failed: "
                                    f"{type(self.error).__name__}: {self.error}") from self.error
        if result is None:
            self.close()
            raise StopIteration
        slot, result = result
        if IS_CUDA:
            self.current_stream.wait_stream(self.cuda_streams[slot])
        return result


class _FileLoader:
    """One ``ffcv.loader.Loader`` over one file, decoding image, label and sample_id only."""

    def __init__(self, path: str, fields: list[str], image_field: str, has_sample_id: bool,
                 config, lock):
        from ffcv.fields.basics import IntDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import ToTensor

        self.path, self.config, self.lock = path, config, lock
        pipelines = {name: None for name in fields}  # disable every other field
        ops = image_pipeline(config)
        self.decoder = ops[0]  # FFCV pops the decoder out of the list it is given
        pipelines[image_field] = list(ops)
        pipelines["label"] = [IntDecoder(), ToTensor()]
        if has_sample_id:
            pipelines["sample_id"] = [IntDecoder(), ToTensor()]
        self.outputs = [n for n in fields if pipelines[n] is not None]
        self.image_index = self.outputs.index(image_field)
        with keep_threads():
            self.loader = Loader(path, batch_size=config.batch_size,
                                 num_workers=decode_threads(config), os_cache=config.os_cache,
                                 order=OrderOption.SEQUENTIAL, seed=0, pipelines=pipelines,
                                 drop_last=False, batches_ahead=config.batches_ahead)
        self.shared = share_compiled_stages(self.loader, self.pipeline_key(config.image_size))

    def pipeline_key(self, size: int) -> tuple:
        """Everything FFCV's compiled stages depend on besides their arguments: the file's
        field layout and decoded fields, decode threads, memory manager and page size, and
        the image pipeline's options (:func:`image_pipeline`)."""
        c, reader = self.config, self.loader.reader
        layout = tuple((name, type(f).__name__) for name, f in reader.handlers.items())
        return (layout, tuple(self.outputs), self.loader.num_workers, c.os_cache,
                int(reader.page_size), c.pipeline, size, c.crop_scale, c.crop_ratio, c.flip,
                c.center_crop_ratio, c.dtype, c.mean, c.std, c.device)

    def epoch(self, chunks: list[np.ndarray], ekey: int = 0, first_row: int = 0,
              threads: int = 0):
        """FFCV's iterator over ``chunks`` (rows of this file), the keyed decoder reading epoch
        key ``ekey`` and this file's first loader row ``first_row`` (:mod:`loaders.augment`),
        decoding with ``threads`` threads (0: the loader's own count)."""
        from ffcv.pipeline.compiler import Compiler

        with keep_threads():
            Compiler.set_num_threads(self.loader.num_workers)
            if self.loader.code is None:
                self.loader.generate_code()
            return _epoch_iterator_class()(self.loader, chunks, self.config.timeout, self.path,
                                           self.lock, key=(ekey, first_row), threads=threads)

    def set_image_size(self, size: int) -> None:
        from ffcv.pipeline.compiler import Compiler

        self.decoder.output_size = (size, size)
        with keep_threads():  # compile for this loader's threads, not the last loader's
            Compiler.set_num_threads(self.loader.num_workers)
            self.loader.generate_code()
        self.shared = share_compiled_stages(self.loader, self.pipeline_key(size))


class FFCVBackend:
    """The FFCV backend (see module doc and :mod:`loaders.backends` for the contract)."""

    name = "ffcv"

    def __init__(self, sources, config):
        self.config = config
        self.files = []  # (path, source, index of the file within its source)
        for s in sources:
            self.files += [(p, s, k) for k, p in enumerate(s.paths)]
        self.file_offsets = np.concatenate(
            [[0], np.cumsum([int(s.sizes[k]) for _, s, k in self.files])]).astype(np.int64)
        self.labels_all = np.concatenate([s.labels_all for s in sources])
        self.lock = None if _threading_layer_is_threadsafe() else threading.Lock()
        self._loaders: dict[int, _FileLoader] = {}
        self._ring: dict = {}
        self._ring_next = 0
        self._size = config.image_size
        if _on_gpu(config) and not torch.cuda.is_available():
            raise LoaderConfigError(f"device={config.device!r} but CUDA is not available here; "
                                    "use device=cpu")

    def _loader(self, f: int) -> _FileLoader:
        if f not in self._loaders:
            path, s, _ = self.files[f]
            fields = s.fields[s.paths.index(path)]
            fl = _FileLoader(path, fields, s.image_field, s.has_sample_id, self.config, self.lock)
            if self._size != self.config.image_size:
                fl.set_image_size(self._size)
            self._loaders[f] = fl
        return self._loaders[f]

    def set_image_size(self, size: int) -> None:
        self._size = size
        for fl in self._loaders.values():
            fl.set_image_size(size)
        self._ring.clear()

    # ------------------------------------------------------------------ epoch
    def _split(self, plan):
        """Per batch: [(file, positions in the batch, rows in the file)]; per file: chunks."""
        rows = plan.rows
        file_of = np.searchsorted(self.file_offsets, rows, side="right") - 1
        local = (rows - self.file_offsets[file_of]).astype(np.uint64)
        layout, chunks = [], {}
        for b in range(len(plan)):
            s, e = int(plan.starts[b]), int(plan.starts[b + 1])
            fb = file_of[s:e]
            parts = []
            for f in np.unique(fb):
                pos = np.flatnonzero(fb == f)
                parts.append((int(f), pos))
                chunks.setdefault(int(f), []).append(local[s:e][pos])
            layout.append(parts)
        return layout, chunks, file_of

    def batches(self, plan, epoch: int):
        from loaders.augment import epoch_key

        layout, chunks, file_of = self._split(plan)
        ekey = epoch_key(self.config.seed, epoch)
        # files whose rows share a batch decode at the same time: they split the decode
        # threads between them instead of each taking them all (2 cores, dual 50/50: 1 + 1,
        # not 2 + 2 threads fighting over the cores)
        together = max((len(parts) for parts in layout), default=1)
        iters = {}
        try:
            for f, ch in chunks.items():
                fl = self._loader(f)
                threads = max(1, fl.loader.num_workers // together)
                iters[f] = fl.epoch(ch, ekey, int(self.file_offsets[f]), threads)
            for b, parts in enumerate(layout):
                s, e = int(plan.starts[b]), int(plan.starts[b + 1])
                decoded = [(f, pos, next(iters[f])) for f, pos in parts]
                yield self._assemble(decoded, plan.rows[s:e], file_of[s:e], int(plan.num_real[b]))
        finally:
            for it in iters.values():
                it.close()

    def _out(self, n: int, like: torch.Tensor, dtype) -> torch.Tensor:
        h, w = like.shape[-2:]
        key = (n, h, w, dtype, str(like.device))
        if key not in self._ring:
            fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
            self._ring[key] = [torch.empty((n, 3, h, w), dtype=dtype, device=like.device,
                                           memory_format=fmt) for _ in range(RING)]
        self._ring_next = (self._ring_next + 1) % RING
        return self._ring[key][self._ring_next]

    def _assemble(self, decoded, rows, file_of, num_real: int) -> Batch:
        cfg = self.config
        n = len(rows)
        first = decoded[0][2][self._loaders[decoded[0][0]].image_index]
        gpu_float = _on_gpu(cfg) and cfg.dtype != "uint8"
        out_dtype = {"float32": torch.float32, "float16": torch.float16,
                     "uint8": torch.uint8}[cfg.dtype]
        whole = len(decoded) == 1 and len(decoded[0][1]) == n
        if whole and cfg.channels_last and not gpu_float:
            images = first  # FFCV's own buffer, already in the requested form
        else:
            images = self._out(n, first, out_dtype)
            for f, pos, out in decoded:
                part = out[self._loaders[f].image_index]
                if len(pos) == pos[-1] - pos[0] + 1:  # contiguous rows: a slice copy
                    images[int(pos[0]):int(pos[-1]) + 1].copy_(part)
                else:
                    images[torch.from_numpy(pos).to(images.device)] = part.to(out_dtype)
            if gpu_float:
                mean = torch.tensor(cfg.mean, device=images.device).view(1, 3, 1, 1) * 255
                std = torch.tensor(cfg.std, device=images.device).view(1, 3, 1, 1) * 255
                images.sub_(mean).div_(std)
        labels = torch.empty(n, dtype=torch.int64)
        sample_id = torch.empty(n, dtype=torch.int64)
        for f, pos, out in decoded:
            fl = self._loaders[f]
            idx = torch.from_numpy(pos)
            labels[idx] = out[fl.outputs.index("label")].view(-1).to(torch.int64)
            if "sample_id" in fl.outputs:
                sample_id[idx] = out[fl.outputs.index("sample_id")].view(-1).to(torch.int64)
            else:
                sample_id[idx] = torch.from_numpy(rows[pos] - self.file_offsets[f])
        expected = torch.from_numpy(self.labels_all[rows])
        if not torch.equal(labels, expected):  # FFCV must deliver exactly the planned rows
            raise LoaderWorkerError("ffcv: decoded labels differ from the planned rows' labels "
                                    "(rows out of order); please report this")
        if cfg.device != "cpu":
            labels = labels.to(cfg.device, non_blocking=True)
        return Batch(images, labels, num_real, sample_id=sample_id,
                     source=torch.from_numpy(file_of.astype(np.int64)))

    def close(self) -> None:
        """Drop the FFCV loaders and free their compiled pipelines now (quietly, see
        :func:`loaders.ffcv_runtime.collect_garbage`)."""
        had = bool(self._loaders)
        self._loaders.clear()
        self._ring.clear()
        if had:
            collect_garbage()
