"""``python -m tests.engine.generate.fault_child MODE REPORT generate-args...``: run
``synthclone generate`` with one fault injected, deterministically.

MODE ``enospc:N``: the .beton writer's N-th page write fails with ENOSPC (a disk that fills
up); from then on every attempt to write a file fails the same way and is recorded.
MODE ``kill-after-rename``: SIGKILL this process right after the finished .beton is renamed
into place (before the journal is removed and the summary written).
MODE ``kill-after-commits:N``: SIGKILL this process right after the writer's N-th journal commit
(a crash in the middle of a run, at a known point).
REPORT: a file that receives, at exit, the writes attempted after the disk was full.
"""
import builtins
import errno
import json
import os
import signal
import sys
import tempfile
import traceback


def _full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def inject_enospc(fail_at: int, attempts: list) -> None:
    from loaders.beton import pages

    state = {"calls": 0, "full": False}
    orig_pwrite, orig_open, orig_os_open = pages._pwrite, builtins.open, os.open
    orig_write, orig_mkstemp = os.write, tempfile.mkstemp

    def record(what):
        attempts.append({"what": what, "where": traceback.format_stack(limit=6)[:-1]})
        raise _full()

    def pwrite(fd, data, offset):
        state["calls"] += 1
        if state["full"]:
            record("pwrite")
        if state["calls"] >= fail_at:
            state["full"] = True
            raise _full()
        return orig_pwrite(fd, data, offset)

    def open_(file, mode="r", *args, **kwargs):
        if state["full"] and any(c in mode for c in "wax+"):
            record(f"open {file} {mode}")
        return orig_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if state["full"] and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            record(f"os.open {path}")
        return orig_os_open(path, flags, *args, **kwargs)

    def write(fd, data):
        if state["full"] and fd > 2:
            record(f"os.write fd {fd}")
        return orig_write(fd, data)

    def mkstemp(*args, **kwargs):
        if state["full"]:
            record("mkstemp")
        return orig_mkstemp(*args, **kwargs)

    pages._pwrite, builtins.open, os.open = pwrite, open_, os_open
    os.write, tempfile.mkstemp = write, mkstemp


def inject_kill_after_rename() -> None:
    orig = os.replace

    def replace(src, dst, *args, **kwargs):
        orig(src, dst, *args, **kwargs)
        if str(dst).endswith(".beton"):
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def inject_kill_after_commits(n: int) -> None:
    from loaders.beton.writer import BetonWriter

    orig, done = BetonWriter.flush, [0]

    def flush(self, *args, **kwargs):
        result = orig(self, *args, **kwargs)
        done[0] += 1
        if done[0] >= n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    BetonWriter.flush = flush


def main() -> int:
    mode, report, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    attempts: list = []
    out = open(report, "w", encoding="utf-8")            # opened before any fault
    if mode.startswith("enospc:"):
        inject_enospc(int(mode.split(":")[1]), attempts)
    elif mode == "kill-after-rename":
        inject_kill_after_rename()
    elif mode.startswith("kill-after-commits:"):
        inject_kill_after_commits(int(mode.split(":")[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    from engine.cli import main as cli

    try:
        return cli(["generate", *args])
    finally:
        out.write(json.dumps(attempts))
        out.close()


if __name__ == "__main__":
    sys.exit(main())
