"""Attention-backend registry with stated preconditions (diffusers ``attention_dispatch`` style).

``sdpa`` (PyTorch scaled_dot_product_attention; default, CPU and GPU), ``xformers`` (memory-
efficient attention: CUDA + the xformers package), ``math`` (diffusers' plain attention, the
reference).  ``choose("auto", device)`` takes the first backend whose constraints hold.
"""
from __future__ import annotations

from engine.errors import ConfigError

import importlib.util
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Backend:
    name: str
    make: Callable
    """() -> a diffusers attention processor."""
    constraints: list = field(default_factory=list)
    """[(description, check(device) -> bool)]: all must hold to use the backend."""
    fusable: bool = False
    """Whether fused QKV projections (``fuse_qkv_projections``) work with it."""

    def unmet(self, device) -> list[str]:
        return [desc for desc, check in self.constraints if not check(device)]


_REGISTRY: dict[str, Backend] = {}
AUTO_ORDER = ("xformers", "sdpa", "math")


def register(name: str, make: Callable, constraints=(), fusable: bool = False) -> None:
    _REGISTRY[name] = Backend(name, make, list(constraints), fusable)


def _is_cuda(device) -> bool:
    return str(device).startswith("cuda")


def _has_sdpa(device) -> bool:
    import torch.nn.functional as F

    return hasattr(F, "scaled_dot_product_attention")


def _has_xformers(device) -> bool:
    return importlib.util.find_spec("xformers") is not None


def _sdpa():
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()


def _xformers():
    from diffusers.models.attention_processor import XFormersAttnProcessor

    return XFormersAttnProcessor()


def _math():
    from diffusers.models.attention_processor import AttnProcessor

    return AttnProcessor()


register("sdpa", _sdpa, [("torch has scaled_dot_product_attention", _has_sdpa)], fusable=True)
register("xformers", _xformers, [("device is CUDA (xformers kernels are CUDA-only)", _is_cuda),
                                 ("the xformers package is installed", _has_xformers)])
register("math", _math)


def names() -> list[str]:
    return sorted(_REGISTRY)


def choose(name: str, device) -> Backend:
    """The backend called ``name`` (or the first usable one for "auto"); clear error if unusable."""
    if name == "auto":
        for n in AUTO_ORDER:
            if not _REGISTRY[n].unmet(device):
                return _REGISTRY[n]
    if name not in _REGISTRY:
        raise ConfigError(f"unknown attention backend {name!r}; choose auto or one of "
                         f"{', '.join(names())}")
    b = _REGISTRY[name]
    unmet = b.unmet(device)
    if unmet:
        raise ConfigError(f"attention backend {name!r} cannot run here: needs "
                         f"{'; '.join(unmet)}. Use --attention sdpa (or auto).")
    return b


def apply(module, name: str, device, fuse_qkv: bool = False) -> str:
    """Set the attention processor of a diffusers model; optionally fuse QKV. Returns the name."""
    b = choose(name, device)
    module.set_attn_processor(b.make())
    if fuse_qkv:
        if not b.fusable:
            raise ConfigError(f"fused QKV projections need the sdpa backend, not {b.name!r}; "
                             "drop --fuse-qkv or use --attention sdpa")
        module.fuse_qkv_projections()
    return b.name
