"""Lazy loading of the optional C++/CUDA extension ``engine._C`` (built from ``csrc/``).

Nothing is loaded at import time.  ``extension_status()`` tries once per process and returns
``(loaded, reason)``; when the extension is absent every op falls back to its torch reference
(see ``engine.ops.registry``).  Set ``SYNTHCLONE_NO_EXT=1`` to ignore a built extension.
"""
from __future__ import annotations

import functools
import importlib

OP_NAMESPACE = "synthclone"


@functools.lru_cache(maxsize=None)
def extension_status() -> tuple[bool, str]:
    """``(True, "")`` once ``engine._C`` is loaded and its ops registered, else ``(False, why)``."""
    from engine import env

    if env.no_ext():
        return False, "SYNTHCLONE_NO_EXT=1"
    try:
        importlib.import_module("engine._C")
    except (ImportError, OSError) as exc:
        return False, (f"engine._C is not built ({exc}); rebuild with "
                       "`pip install --no-build-isolation -e .` and a C++ compiler")
    _register_python_parts()
    return True, ""


def has_op(name: str) -> bool:
    """Whether ``torch.ops.synthclone.<name>`` exists (loads the extension if needed)."""
    import torch

    loaded, _ = extension_status()
    return loaded and hasattr(getattr(torch.ops, OP_NAMESPACE), name)


def has_kernel(name: str, dispatch_key: str) -> bool:
    """Whether the extension registered a ``dispatch_key`` (``"CPU"``/``"CUDA"``) kernel for op ``name``."""
    import torch

    if not has_op(name):
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"{OP_NAMESPACE}::{name}", dispatch_key)


PYTHON_PARTS = ("engine.ops.postprocess",)
"""Modules that wrap the extension's ops; each defines ``register_fake()`` beside its op wrapper
(as pytorch/extension-cpp's ``ops.py`` does), called once the library is loaded."""


def _register_python_parts() -> None:
    """Fake (meta) implementations of the extension's ops, for torch.compile / opcheck."""
    for name in PYTHON_PARTS:
        importlib.import_module(name).register_fake()
