"""What FFCV does to the whole process, kept in bounds: thread counts and numba's garbage.

Thread counts
    FFCV sets torch's (process-wide) and numba's (per thread) thread count to its decode
    threads whenever it builds a pipeline or starts an epoch (``Compiler.set_num_threads``),
    which would leave the trainer's model and the evaluation running with the loader's count
    (or one thread per core). :mod:`loaders.ffcv` runs every such FFCV call inside
    :func:`keep_threads`, which restores the caller's counts afterwards; an epoch first waits
    until its decode thread has set its own, so the decode thread keeps ``workers`` numba
    threads. :func:`decode_threads` caps ``workers`` at numba's pool (one thread per core unless
    ``NUMBA_NUM_THREADS`` says otherwise): numba refuses more.
Garbage
    Every FFCV pipeline holds numba dispatchers in reference cycles; when the cyclic collector
    frees them, numba's dispatcher finalizer can raise ``KeyError`` while iterating their
    overloads, and the interpreter prints "Exception ignored in: <finalize object ...>" and a
    traceback to stderr, at whatever moment the collector happens to run (nothing is lost).
    :func:`collect_garbage`, called by ``FFCVBackend.close()``, frees a closed loader's
    pipelines right away and drops exactly those finalizer errors; anything else is reported.
Compiled pipelines
    FFCV compiles every loader's pipeline anew with numba (about 1-2 s per loader and file on
    one core, mostly numba compiling the decode stage; ~10 s for the first train pipeline of a
    process). :func:`share_compiled_stages` lets a loader reuse the compiled (jitted) stages of
    the first loader of this process built with the same key (file layout, decode options,
    thread count, memory manager; see ``loaders.ffcv``), so the shards of a synthetic set,
    repeated evaluations and per-epoch eval loaders compile once. Reuse is exact: FFCV's stage
    code is a function of its arguments (buffers, metadata, storage state) and of the options
    in the key; node ids differ between graphs and are renamed, the graphs must have the same
    shape, and numba still compiles anew for argument types it has not seen.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys

import torch

__all__ = ["decode_threads", "keep_threads", "collect_garbage", "is_numba_finalizer_error",
           "share_compiled_stages", "PIPELINE_CACHE_SIZE"]

PIPELINE_CACHE_SIZE = 32
"""Distinct pipeline keys whose compiled stages a process keeps (least recently used out)."""


def decode_threads(config) -> int:
    """FFCV's decode threads for ``config.workers`` (0: one per core), at most numba's pool."""
    import numba

    pool = numba.config.NUMBA_NUM_THREADS
    return min(config.workers, pool) if config.workers > 0 else pool


@contextlib.contextmanager
def keep_threads():
    """Restore the calling thread's torch and numba thread counts on exit (module doc)."""
    import numba

    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        if numba.get_num_threads() != numba_threads:
            numba.set_num_threads(numba_threads)


def collect_garbage() -> None:
    """Run the cyclic collector now, dropping numba's dispatcher-finalizer ``KeyError``s
    (module doc); every other unraisable exception goes to the previous hook."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not is_numba_finalizer_error(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous


def is_numba_finalizer_error(unraisable) -> bool:
    """A ``KeyError`` raised by the ``finalizer`` of ``numba/core/dispatcher.py``."""
    if not isinstance(unraisable.exc_value, KeyError):
        return False
    tb = unraisable.exc_traceback
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "finalizer" and code.co_filename.replace(os.sep, "/").endswith(
                "numba/core/dispatcher.py"):
            return True
        tb = tb.tb_next
    return False


@functools.lru_cache(maxsize=PIPELINE_CACHE_SIZE)
def _slot(key) -> dict:
    """The compiled stages kept for ``key`` (filled by the first loader built with it)."""
    return {}


def _graph_shape(graph) -> list:
    """What must match for two FFCV graphs to run the same stage code: per node in creation
    (id) order, its kind, operation class, field, parent position and jit mode."""
    pos = {n.id: i for i, n in enumerate(graph.nodes)}
    out = []
    for n in graph.nodes:
        op = getattr(n, "decoder", None) or getattr(n, "operation", None)
        parent = getattr(n, "_parent", None)
        out.append((type(n).__name__, type(op).__name__, getattr(n, "field_name", None),
                    getattr(n, "f_ix", None), pos[parent.id] if parent is not None else None,
                    getattr(n, "jitted", True)))
    return out


class _Renamed:
    """A compiled stage of another graph, called with this graph's argument names."""

    __slots__ = ("stage", "rename")

    def __init__(self, stage, rename: dict):
        self.stage, self.rename = stage, rename

    def __call__(self, **kwargs):
        rename = self.rename
        return self.stage(**{rename.get(k, k): v for k, v in kwargs.items()})


def share_compiled_stages(loader, key) -> bool:
    """Give ``loader`` (an ``ffcv.loader.Loader`` whose code was just generated) the jitted
    stages of the first loader built with ``key`` in this process, or keep its own for later
    loaders (module doc). True when it now runs stages compiled for another loader.

    Only FFCV's even (jitted) stages are shared: their functions hold no reference to the
    loader or its file; the Python stages (ToTensor, ToDevice, ...) stay the loader's own."""
    stages, outputs = loader.code
    ids = [n.id for n in loader.graph.nodes]
    shape = _graph_shape(loader.graph)
    slot = _slot(key)
    if not slot:
        slot.update(ids=ids, shape=shape, stages=[(s, list(o)) for s, o in stages[::2]])
        return False
    if slot["shape"] != shape or len(slot["stages"]) != len(stages[::2]):
        return False
    to_new = dict(zip(slot["ids"], ids))
    rename = {f"{prefix}_{new}": f"{prefix}_{old}" for old, new in to_new.items()
              for prefix in ("memory", "shared_memory", "result")}
    shared = list(stages)
    for i, (stage, cached_outputs) in enumerate(slot["stages"]):
        mapped = [to_new[o] for o in cached_outputs]
        if sorted(mapped) != sorted(stages[2 * i][1]):
            return False
        shared[2 * i] = (_Renamed(stage, rename), mapped)
    loader.code = (shared, outputs)
    return True
