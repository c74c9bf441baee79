"""Loader backends: a plain name -> factory map, imported lazily (DALI only when asked for).

    from loaders.backends import BACKENDS, get_backend
    Backend = get_backend("ffcv")           # BackendUnavailable names the missing extra

A backend only decodes: :mod:`loaders.plan` has already decided every batch's rows, so every
backend delivers the same rows in the same order. The contract of a backend class:

``Backend(sources, config)``
    ``sources``: the :class:`loaders.sources.BetonSource` list of the loader (real first); the
    loader's row space is their concatenation (``row_offsets``). ``config``: a
    :class:`loaders.config.LoaderConfig`.
``backend.batches(plan, epoch) -> Iterator[Batch]``
    Decode the batches of one :class:`loaders.plan.EpochPlan` in order, as
    :class:`loaders.batch.Batch` (images on ``config.device``, labels ``(B,)`` int64,
    ``num_real`` from the plan, ``sample_id`` and ``source`` (file index) attributes).
``backend.set_image_size(size)``
    Output size for the following epochs (progressive resizing).
``backend.close()``
    Stop workers and free memory.
"""
from __future__ import annotations

import importlib

from loaders.errors import BackendUnavailable, LoaderConfigError

__all__ = ["BACKENDS", "get_backend", "available_backends"]

BACKENDS = {
    "ffcv": ("loaders.ffcv", "FFCVBackend"),
    "dali": ("loaders.dali", "DALIBackend"),
    "torchvision": ("loaders.torchvision", "TorchvisionBackend"),
}
"""name -> (module, class): the loader backends."""

_INSTALL_HINT = {
    "ffcv": "pip install ffcv==1.0.2 (needs libturbojpeg and OpenCV; see the README)",
    "dali": "pip install 'synthclone[dali]' (the nvidia-dali-cuda120 package)",
    "torchvision": "pip install torchvision",
}


def get_backend(name: str):
    """The backend class called ``name``; :class:`BackendUnavailable` when its library is
    missing (the message names what to install)."""
    if name not in BACKENDS:
        raise LoaderConfigError(f"unknown loader backend {name!r}; use one of "
                                f"{', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    try:
        mod = importlib.import_module(module)
        mod.require()
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(f"loader backend {name!r} needs the {exc.name!r} module, which "
                                 f"is not installed: {_INSTALL_HINT[name]}") from None
    return getattr(mod, cls)


def available_backends() -> dict[str, str | None]:
    """name -> None when usable here, else the reason it is not."""
    out = {}
    for name in BACKENDS:
        try:
            get_backend(name)
            out[name] = None
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out
