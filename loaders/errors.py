"""User-facing errors of the ``loaders`` package (it may not import ``engine``; DESIGN.md).

``synthclone`` (``engine/cli.py``) prints a :class:`LoadersError` on one line and exits 2, like
``engine.errors.UserError``. Subclass it for every mistake a user can fix (a corrupt or missing
.beton, an unreadable image, a bad loader option); keep bugs as ordinary exceptions.
"""
from __future__ import annotations


class LoadersError(Exception):
    """Base of every user-fixable error raised by ``loaders``."""


class LoaderConfigError(LoadersError, ValueError):
    """A loader option or combination of sources that cannot work (message says which)."""


class BackendUnavailable(LoadersError, ImportError):
    """A loader backend whose library is not installed or cannot run here (message says which
    extra or device to install or use)."""


class LoaderWorkerError(LoadersError, RuntimeError):
    """A decode worker (thread or process) failed or stopped answering; the message names the
    backend, the file and the cause, so a crash never becomes a silent hang."""
