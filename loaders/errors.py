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
