"""Put a loaded pipeline on its device/dtype and apply the throughput switches of a config."""
from __future__ import annotations

import contextlib

from engine.errors import ConfigError


def resolve_device(name: str):
    import torch

    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        from engine import env

        # torchrun: one GPU per process (modulo: SLURM may show each process only its own GPU)
        return torch.device("cuda", (env.local_rank() or 0) % torch.cuda.device_count())
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu")
    return dev


def resolve_dtype(name: str, device):
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError("--dtype fp16 needs CUDA (fp16 on CPU is slow); use --dtype bf16 on "
                         "CPUs with native bf16 (AVX512-BF16/AMX), else fp32")
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("--dtype bf16 on this CPU would be emulated (no AVX512-BF16/AMX): "
                         "use --dtype fp32")
    return dtype


def cpu_has_bf16() -> bool:
    """Native bf16 matmul/conv on this CPU (oneDNN with AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_channels_last(cfg, device) -> bool:
    """channels_last: on where asked; "auto" (None) turns it on for CUDA only (on our CPU it
    measured slightly slower for both tiny and sd15-arch)."""
    return cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"


def cast(module, dtype) -> None:
    """``module.to(dtype)`` without the "modules ... should be kept in float32: []" warning
    that diffusers' ``ModelMixin.to`` logs on every dtype cast, even when no module has to stay
    in fp32 (we cause it; our users cannot act on it). Models that do list such modules go
    through diffusers' own ``to`` and keep its warning."""
    import torch

    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(dtype=dtype)
    else:
        torch.nn.Module.to(module, dtype=dtype)


def compile_options(mode: str) -> dict:
    """Inductor options of ``torch.compile`` ``mode`` plus ``freezing`` (inference only: fold
    the weights into the graph). Passed per call, so the process-wide inductor config is never
    changed (torch.compile takes ``mode`` or ``options``, not both)."""
    from torch._inductor import list_mode_options

    return {**list_mode_options(mode), "freezing": True}


@contextlib.contextmanager
def torch_threads(n: int | None):
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after."""
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def vae_dtype_for(vae, dtype):
    """The VAE's dtype: ``dtype``, except fp32 for an fp16 run of a VAE whose config says
    ``force_upcast`` (SDXL's VAE overflows in fp16; its pipeline decodes in fp32 too)."""
    import torch

    if dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        return torch.float32
    return dtype


def prepare(pipe, cfg, device, dtype) -> dict:
    """Apply device, dtype, attention backend, fused QKV, channels_last, VAE slicing/tiling and
    torch.compile to ``pipe`` in place; return what was applied (for the run record)."""
    import torch

    from engine.generate import attention

    channels_last = use_channels_last(cfg, device)
    key = (str(device), str(dtype), cfg.attention, cfg.fuse_qkv, channels_last,
           cfg.vae_slicing, cfg.vae_tiling, cfg.compile, cfg.compile_mode)
    done = getattr(pipe, "_synthclone_prepared", None)
    if done is not None:
        if done[0] != key:
            raise ConfigError("this pipeline was already prepared with other settings; load the "
                             "model again to change device/dtype/attention/compile switches")
        return dict(done[1])
    pipe.to(device)
    vae_dtype = vae_dtype_for(pipe.vae, dtype)
    for name, m in pipe.components.items():
        if isinstance(m, torch.nn.Module) and name != "safety_checker":
            want = vae_dtype if name == "vae" else dtype
            if m.dtype != want:
                cast(m, want)
    applied = {"device": str(device), "dtype": str(dtype).replace("torch.", "")}
    if vae_dtype != dtype:
        applied["vae_dtype"] = str(vae_dtype).replace("torch.", "")
    applied["attention"] = attention.apply(pipe.unet, cfg.attention, device, cfg.fuse_qkv)
    attention.apply(pipe.vae, applied["attention"], device, cfg.fuse_qkv)
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if cfg.vae_slicing:
        pipe.vae.enable_slicing()
    if cfg.vae_tiling:
        pipe.vae.enable_tiling()
    if cfg.compile:
        options = compile_options(cfg.compile_mode)
        pipe.unet = torch.compile(pipe.unet, options=options, dynamic=False)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, options=options, dynamic=False)
    applied.update(channels_last=channels_last, fuse_qkv=cfg.fuse_qkv, compile=cfg.compile,
                   compile_mode=cfg.compile_mode if cfg.compile else None,
                   vae_slicing=cfg.vae_slicing, vae_tiling=cfg.vae_tiling)
    pipe._synthclone_prepared = (key, dict(applied))
    return applied
