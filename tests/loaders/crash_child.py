"""Child process for the SIGKILL tests: writes samples, and dies where it is told to.

usage: python -m tests.loaders.crash_child PATH N MODE K
  After each append the child prints "appended <i>" and waits for a line on stdin.
  MODE appends: the parent SIGKILLs it after K lines
  MODE fsync:   SIGKILL itself at the K-th fsync (between a page write and its journal record,
                or between a journal write and its fsync)
  MODE replace: SIGKILL itself when close() renames the finished partial (after header+fsync)
  MODE unlink:  SIGKILL itself after the journal is removed (the lock file stays behind)
  MODE renamed: SIGKILL itself right after the rename, before the journal is removed
"""
import os
import signal
import sys

import loaders.beton.journal as journal_mod
import loaders.beton.pages as pages_mod
from loaders.beton import BetonWriter
from tests.loaders.test_beton_crash import FLUSH_EVERY, append_order, crash_fields, crash_values


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(path, n, mode, k):
    if mode == "fsync":
        count = {"n": 0}
        real = journal_mod.fsync

        def fsync(fd):
            count["n"] += 1
            if count["n"] == k:
                die()
            real(fd)

        journal_mod.fsync = pages_mod.fsync = fsync
    elif mode in ("replace", "unlink", "renamed"):
        name = "replace" if mode == "renamed" else mode
        real = getattr(os, name)

        def hook(src, *args, **kwargs):
            ours = str(src).endswith(".journal" if mode == "unlink" else ".partial")
            if ours and mode in ("unlink", "renamed"):
                real(src, *args, **kwargs)
            if ours:
                die()
            return real(src, *args, **kwargs)

        setattr(pages_mod.os, name, hook)
    w = BetonWriter(path, n, crash_fields(), num_workers=2, page_size=1 << 21)
    for j, i in enumerate(append_order(n)):
        w.append(i, crash_values(i))
        if (j + 1) % FLUSH_EVERY == 0:
            w.flush()
        print(f"appended {i}", flush=True)
        sys.stdin.readline()  # lock-step with the parent, so it can kill at an exact point
    w.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
