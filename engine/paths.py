"""Project-owned locations (``SYNTHCLONE_CACHE``) and atomic file writes."""
from __future__ import annotations

import contextlib
import os
import tempfile


def cache_dir(*parts: str) -> str:
    """``$SYNTHCLONE_CACHE`` (default ``~/.cache/synthclone``), created on demand."""
    from engine import env

    path = os.path.join(env.cache_root(), *parts)
    os.makedirs(path, exist_ok=True)
    return path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)        # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", overwrite: bool = True, **kwargs):
    """Write to a temporary file next to ``path``; rename over it only if the block succeeds.
    The file gets the permissions a plain ``open`` would give it (0666 minus the umask)."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())     # mkstemp makes 0600; honour the umask
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
