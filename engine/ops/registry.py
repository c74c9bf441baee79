"""A small backend registry for ops with optional fast paths (diffusers ``attention_dispatch`` style).

Each op (``"postprocess"``, ``"dual_bn"``) has backends registered in preference order, each with
*constraints*: callables ``ctx -> str | None`` that return why the backend cannot run on this
call (``None`` when it can).  ``select(op, **ctx)`` returns the first backend whose constraints
all pass.  A user can force a backend:

* per call, with ``backend="name"`` (an error if its constraints fail), or
* per process, with ``SYNTHCLONE_OPS_BACKEND``: a backend name for every op (``ref``), or
  ``op=name`` pairs separated by commas (``postprocess=ref,dual_bn=triton``).

Backends import their libraries lazily inside the function they register, never at import time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

ENV_VAR = "SYNTHCLONE_OPS_BACKEND"

Constraint = Callable[[dict], "str | None"]


@dataclass
class Backend:
    """One implementation of an op."""

    name: str
    """Backend name, unique per op (``"csrc"``, ``"triton"``, ``"ref"``)."""
    fn: Callable
    """The implementation; called with the op's own arguments."""
    constraints: list[Constraint] = field(default_factory=list)
    """Preconditions: each returns ``None`` when satisfied, else the reason it is not."""
    doc: str = ""
    """One line: when this backend is used."""

    def why_not(self, ctx: dict) -> str | None:
        for check in self.constraints:
            reason = check(ctx)
            if reason:
                return reason
        return None


_REGISTRY: dict[str, list[Backend]] = {}


def register(op: str, name: str, constraints: list[Constraint] | None = None, doc: str = ""):
    """Decorator: register ``fn`` as backend ``name`` of ``op`` (earlier registrations win ties)."""

    def deco(fn):
        backends = _REGISTRY.setdefault(op, [])
        if any(b.name == name for b in backends):
            raise ValueError(f"backend {name!r} of op {op!r} is registered twice")
        backends.append(Backend(name, fn, list(constraints or []), doc))
        return fn

    return deco


def backends(op: str) -> list[Backend]:
    """The registered backends of ``op``, in preference order."""
    if op not in _REGISTRY:
        raise KeyError(f"unknown op {op!r}; registered ops: {sorted(_REGISTRY)}")
    return list(_REGISTRY[op])


def forced_backend(op: str) -> str | None:
    """The backend forced for ``op`` by ``SYNTHCLONE_OPS_BACKEND``, if any."""
    from engine import env

    value = env.ops_backend()
    if not value:
        return None
    if "=" not in value:
        return value
    for pair in value.split(","):
        key, _, name = pair.partition("=")
        if key.strip() == op:
            return name.strip()
    return None


def select(op: str, backend: str | None = None, **ctx) -> Backend:
    """The backend to run ``op`` with for this call's context ``ctx`` (tensor devices, dtypes...)."""
    choices = backends(op)
    wanted = backend or forced_backend(op)
    if wanted:
        for b in choices:
            if b.name == wanted:
                reason = b.why_not(ctx)
                if reason:
                    raise RuntimeError(f"backend {wanted!r} of op {op!r} cannot run here: {reason}")
                return b
        raise ValueError(f"unknown backend {wanted!r} for op {op!r} (from "
                         f"{'the backend= argument' if backend else ENV_VAR}); "
                         f"choose one of {[b.name for b in choices]}")
    reasons = []
    for b in choices:
        reason = b.why_not(ctx)
        if reason is None:
            return b
        reasons.append(f"{b.name}: {reason}")
    raise RuntimeError(f"no backend of op {op!r} can run here ({'; '.join(reasons)})")


def explain(op: str, **ctx) -> list[tuple[str, str | None]]:
    """``[(backend, reason it cannot run or None)]`` for ``op`` in context ``ctx`` (for logs/tests)."""
    return [(b.name, b.why_not(ctx)) for b in backends(op)]
