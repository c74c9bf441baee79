"""Put a loaded pipeline on its device/dtype and apply the throughput switches of a config."""
from __future__ import annotations


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here; use --device cpu")
    return dev


def resolve_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
    if dtype != torch.float32 and device.type != "cuda":
        raise ValueError(f"--dtype {name} needs CUDA (half precision on CPU is slow and "
                         "untested here); use --dtype fp32 or auto")
    return dtype


def prepare(pipe, cfg, device, dtype) -> dict:
    """Apply device, dtype, attention backend, fused QKV, channels_last, VAE slicing/tiling and
    torch.compile to ``pipe`` in place; return what was applied (for the run record)."""
    import torch

    from engine.generate import attention

    key = (str(device), str(dtype), cfg.attention, cfg.fuse_qkv, cfg.channels_last,
           cfg.vae_slicing, cfg.vae_tiling, cfg.compile, cfg.compile_mode)
    done = getattr(pipe, "_synthclone_prepared", None)
    if done is not None:
        if done[0] != key:
            raise ValueError("this pipeline was already prepared with other settings; load the "
                             "model again to change device/dtype/attention/compile switches")
        return dict(done[1])
    pipe.to(device)
    for m in (pipe.unet, pipe.text_encoder, pipe.vae):
        if m.dtype != dtype:
            m.to(dtype=dtype)
    applied = {"device": str(device), "dtype": str(dtype).replace("torch.", "")}
    applied["attention"] = attention.apply(pipe.unet, cfg.attention, device, cfg.fuse_qkv)
    attention.apply(pipe.vae, applied["attention"], device, cfg.fuse_qkv)
    if cfg.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if cfg.vae_slicing:
        pipe.vae.enable_slicing()
    if cfg.vae_tiling:
        pipe.vae.enable_tiling()
    if cfg.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True     # inference only: fold weights into the graph
        pipe.unet = torch.compile(pipe.unet, mode=cfg.compile_mode, dynamic=False)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=cfg.compile_mode, dynamic=False)
    applied.update(channels_last=cfg.channels_last, fuse_qkv=cfg.fuse_qkv, compile=cfg.compile,
                   compile_mode=cfg.compile_mode if cfg.compile else None,
                   vae_slicing=cfg.vae_slicing, vae_tiling=cfg.vae_tiling)
    pipe._synthclone_prepared = (key, dict(applied))
    return applied
