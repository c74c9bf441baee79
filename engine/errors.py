"""User-facing errors of the ``engine`` package, caught in one place (``engine/cli.py``).

A *user error* is a mistake the user can fix: a missing file, a bad value, an unknown class, a
model that cannot be loaded. Raise a subclass of :class:`UserError` whose message says what was
wrong and what to do; ``synthclone`` prints it on one line and exits 2. Anything else is a bug and
keeps its traceback (a plain ``ValueError`` from our own code is *not* turned into a one-liner).

``loaders`` may not import ``engine`` (DESIGN.md), so it has its own base,
:class:`loaders.errors.LoadersError`; :data:`USER_ERRORS` names both for the CLI.
"""
from __future__ import annotations

from loaders.errors import LoadersError


class UserError(Exception):
    """Base of every error a user can fix; the message says what was wrong and what to do."""


class ConfigError(UserError, ValueError):
    """A config file, flag or ``key=value`` override that does not fit its dataclass."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, LoadersError)
"""What ``engine/cli.py`` turns into one line and exit code 2."""
