"""One writer per output: an exclusive ``flock`` on ``<out>.lock``, held from before the partial
is created or resumed until after the finished file is renamed into place.

Two processes writing the same output would interleave their bytes into one partial file (the
second "resumes" what the first still writes) and the first would then report success on a
corrupt file. The second process gets :class:`BetonLockedError` (a user error: one line, exit 2)
naming the holder's pid. The kernel releases a ``flock`` when its holder dies, so a crashed
writer never blocks the rerun that resumes it; a stale lock file is simply taken over.
"""
from __future__ import annotations

import errno
import fcntl
import os

from loaders.beton.schema import LOCK_SUFFIX
from loaders.errors import LoadersError

__all__ = ["BetonLockedError", "OutputNotWritableError", "OutputLock"]


class BetonLockedError(LoadersError):
    """Another process is writing the same output (the message names its pid)."""


class OutputNotWritableError(LoadersError):
    """The output's folder cannot be created or written (read-only, no permission)."""


class OutputLock:
    """``with OutputLock(out):`` or ``acquire()`` / ``release()``; not reentrant."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.lock_path = self.path + LOCK_SUFFIX
        self.fd = -1

    def acquire(self) -> "OutputLock":
        folder = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(self.path):
            raise OutputNotWritableError(f"{self.path} is a folder; give the .beton file to "
                                         "write")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot create the folder of {self.path}: "
                                         f"{exc.strerror or exc}") from None
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR):
                    raise
                raise OutputNotWritableError(f"cannot write {self.path}: {folder} is not "
                                             f"writable ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise BetonLockedError(
                    f"{self.path} is being written by another process ({holder}, lock "
                    f"{self.lock_path}); wait for it to finish or stop it, then rerun: two "
                    "writers on one output would corrupt it") from None
            except BaseException:
                os.close(fd)
                raise
            # the previous holder may have unlinked the file between our open and our flock:
            # then we hold a lock nobody else can see; start over on the current file
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it) and unlock."""
        if self.fd < 0:
            return
        try:
            if os.stat(self.lock_path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.lock_path)
        except OSError:
            pass  # already gone, or the folder vanished: nothing to clean up
        os.close(self.fd)
        self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"
