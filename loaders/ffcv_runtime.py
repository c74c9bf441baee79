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
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys

import torch

__all__ = ["decode_threads", "keep_threads", "collect_garbage", "is_numba_finalizer_error"]


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
