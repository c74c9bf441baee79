"""Attention backends of the UNet and VAE, registered in :mod:`engine.ops.registry` as the op
``"attention"`` (constraints return the reason a backend cannot run).

In preference order: ``xformers`` (memory-efficient attention: CUDA + the xformers package),
``sdpa`` (PyTorch scaled_dot_product_attention; CPU and GPU), ``math`` (diffusers' plain
attention, the reference). A backend's function makes a diffusers attention processor.
``--attention auto`` takes the first backend that can run here, or the one forced with
``SYNTHCLONE_OPS_BACKEND=attention=NAME``; ``--attention NAME`` asks for one and is an error,
with the reason, when it cannot run.
"""
from __future__ import annotations

import importlib.util

from engine.errors import ConfigError
from engine.ops import registry

OP = "attention"
FUSABLE = frozenset({"sdpa"})
"""Backends that work with fused QKV projections (``fuse_qkv_projections``)."""


def _needs_cuda(ctx) -> str | None:
    if not str(ctx["device"]).startswith("cuda"):
        return f"device is {ctx['device']}, not CUDA (xformers kernels are CUDA-only)"
    return None


def _needs_xformers(ctx) -> str | None:
    if importlib.util.find_spec("xformers") is None:
        return "the xformers package is not installed (pip install 'synthclone[xformers]')"
    return None


def _needs_sdpa(ctx) -> str | None:
    import torch.nn.functional as F

    if not hasattr(F, "scaled_dot_product_attention"):
        return "this torch has no scaled_dot_product_attention"
    return None


@registry.register(OP, "xformers", [_needs_cuda, _needs_xformers],
                   doc="memory-efficient attention (CUDA + xformers)")
def _xformers():
    from diffusers.models.attention_processor import XFormersAttnProcessor

    return XFormersAttnProcessor()


@registry.register(OP, "sdpa", [_needs_sdpa], doc="torch scaled_dot_product_attention")
def _sdpa():
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()


@registry.register(OP, "math", doc="diffusers' plain attention (the reference)")
def _math():
    from diffusers.models.attention_processor import AttnProcessor

    return AttnProcessor()


def names() -> list[str]:
    return [b.name for b in registry.backends(OP)]


def _forced() -> str | None:
    """The backend ``SYNTHCLONE_OPS_BACKEND`` forces: ``attention=NAME``, or a bare name meant
    for every op (``ref`` is our ``math``; a bare name of another op's backend is ignored)."""
    forced = registry.forced_backend(OP)
    if forced is None or registry.forced_backend("\0no-such-op") is None:
        return forced                                         # given as attention=NAME
    return "math" if forced == "ref" else forced if forced in names() else None


def choose(name: str, device) -> registry.Backend:
    """The backend called ``name``, or for ``"auto"`` the forced or first usable one."""
    ctx = {"device": str(device)}
    wanted = _forced() if name == "auto" else name
    if wanted is None:                             # the first that runs ("math" always does)
        return next(b for b in registry.backends(OP) if b.why_not(ctx) is None)
    by_name = {b.name: b for b in registry.backends(OP)}
    where = f"--attention {name}" if name != "auto" else f"{registry.ENV_VAR}={OP}={wanted}"
    if wanted not in by_name:
        raise ConfigError(f"{where}: unknown attention backend {wanted!r}; choose auto or one of "
                          f"{', '.join(names())}")
    reason = by_name[wanted].why_not(ctx)
    if reason:
        raise ConfigError(f"{where}: attention backend {wanted!r} cannot run here: {reason}. "
                          "Use --attention sdpa (or auto).")
    return by_name[wanted]


def apply(module, name: str, device, fuse_qkv: bool = False) -> str:
    """Set the attention processor of a diffusers model; optionally fuse QKV. Returns the name."""
    backend = choose(name, device)
    module.set_attn_processor(backend.fn())
    if fuse_qkv:
        if backend.name not in FUSABLE:
            raise ConfigError(f"fused QKV projections need the sdpa backend, not "
                              f"{backend.name!r}; drop --fuse-qkv or use --attention sdpa")
        module.fuse_qkv_projections()
    return backend.name
