"""The generation tail: VAE decoder output -> uint8 NHWC images, optionally area-downsampled.

``vae_to_uint8(x, downsample)`` is what the generation engine calls.  It dispatches through the
backend registry (``engine.ops.registry``, op ``"postprocess"``):

* ``csrc`` — the fused C++ (OpenMP) / CUDA op ``torch.ops.synthclone.vae_to_uint8`` from
  ``csrc/``; needs the built extension with a kernel for the tensor's device;
* ``ref`` — ``vae_to_uint8_ref``, plain torch ops; always available, the source of truth.

Force one with ``backend=`` or ``SYNTHCLONE_OPS_BACKEND=postprocess=ref``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.ops import registry
from engine.ops._ext import OP_NAMESPACE, extension_status, has_kernel

if TYPE_CHECKING:
    import torch

OP = "postprocess"


def check_inputs(x: "torch.Tensor", downsample: int) -> None:
    """Raise ``ValueError`` with what to do when ``x``/``downsample`` are not a VAE output batch."""
    if x.dim() != 4:
        raise ValueError(f"vae_to_uint8: expected x of shape (N, C, H, W), got {tuple(x.shape)}; "
                         "add a batch dimension with x[None] for a single image")
    if not x.is_floating_point():
        raise ValueError(f"vae_to_uint8: expected a float VAE output in [-1, 1], got {x.dtype}")
    if int(downsample) != downsample or downsample < 1:
        raise ValueError(f"vae_to_uint8: downsample must be a positive integer, got {downsample!r}")
    h, w = x.shape[-2:]
    if h % downsample or w % downsample:
        raise ValueError(f"vae_to_uint8: H, W = {h}, {w} are not divisible by downsample="
                         f"{downsample}; generate at a multiple of it or pick another factor")


def vae_to_uint8_ref(x: "torch.Tensor", downsample: int = 1) -> "torch.Tensor":
    """Reference: ``round(255 * avgpool_d(clamp(x / 2 + 0.5, 0, 1)))`` as uint8 (N, H/d, W/d, C)."""
    import torch
    import torch.nn.functional as F

    check_inputs(x, downsample)
    y = (x.float() / 2 + 0.5).clamp(0, 1)  # (N, C, H, W) in [0, 1]
    if downsample > 1:
        y = F.avg_pool2d(y, downsample)  # (N, C, H/d, W/d)
    return (y * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # (N, H/d, W/d, C)


def _needs_extension_kernel(ctx: dict) -> str | None:
    loaded, why = extension_status()
    if not loaded:
        return why
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(ctx["device_type"])
    if key is None:
        return f"the extension has no kernel for device type {ctx['device_type']!r}"
    if not has_kernel("vae_to_uint8", key):
        return f"the extension has no {key} kernel for vae_to_uint8 (built without it)"
    return None


@registry.register(OP, "csrc", constraints=[_needs_extension_kernel],
                   doc="fused C++/CUDA op from csrc/ (needs the built extension)")
def _vae_to_uint8_csrc(x, downsample):
    import torch

    return torch.ops.synthclone.vae_to_uint8(x, int(downsample))


def _vae_to_uint8_fake(x, downsample):
    """Shape/dtype of ``torch.ops.synthclone.vae_to_uint8`` without computing it (meta/fake)."""
    import torch

    torch._check(x.dim() == 4, lambda: f"vae_to_uint8: expected (N, C, H, W), got {tuple(x.shape)}")
    torch._check(downsample >= 1, lambda: "vae_to_uint8: downsample must be >= 1")
    n, c, h, w = x.shape
    return x.new_empty((n, h // downsample, w // downsample, c), dtype=torch.uint8)


def register_fake() -> None:
    """Register ``_vae_to_uint8_fake`` for the C++ op; ``engine.ops._ext`` calls it once the
    extension is loaded (the op must exist first).  The op returns uint8: no autograd."""
    import torch

    torch.library.register_fake(f"{OP_NAMESPACE}::vae_to_uint8")(_vae_to_uint8_fake)


registry.register(OP, "ref", doc="plain torch ops (always available)")(vae_to_uint8_ref)


def vae_to_uint8(x: "torch.Tensor", downsample: int = 1, backend: str | None = None) -> "torch.Tensor":
    """VAE output ``x`` (N, 3, H, W) float in [-1, 1] -> uint8 (N, H/d, W/d, 3), d = ``downsample``.

    The backend is picked by the registry (``csrc`` when built, else ``ref``); ``backend``
    forces one.  The result is on ``x``'s device.
    """
    check_inputs(x, downsample)
    chosen = registry.select(OP, backend=backend, device_type=x.device.type)
    return chosen.fn(x, int(downsample))
