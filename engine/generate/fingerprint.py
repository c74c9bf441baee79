"""The settings that decide a generated image's pixels, recorded in the run state so that a
resume (or a relaunch of a finished run) with other settings is refused instead of mixing them
in one file (issue #9 item 7).

Recorded: the model's identity and a hash of its files, the resolved dtype, the stored size,
the JPEG quality and the filters (blank threshold, safety checker, CLIP filter), and the real
image source of image-conditioned rows. Sampler, steps, guidance and size come from the plan
rows, which the plan hash covers; throughput switches (batch size, attention backend,
torch.compile, channels_last, CFG batching, the pipelined tail) may change between a run and
its resume.
"""
from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20
"""Bytes hashed at each end of a large file (the whole file when it is at most 2 chunks)."""


def file_digest(path: str) -> str:
    """sha256 of a file's size, first and last MiB (whole content for files up to 2 MiB)."""
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 2 * CHUNK:
            h.update(f.read())
        else:
            h.update(f.read(CHUNK))
            f.seek(size - CHUNK)
            h.update(f.read(CHUNK))
    return h.hexdigest()


def folder_digest(folder: str) -> str:
    """sha256 over every file of a model folder (relative path + :func:`file_digest`)."""
    h = hashlib.sha256()
    for d, dirs, files in os.walk(folder):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            h.update(f"{rel}\0{file_digest(path)}\n".encode())
    return h.hexdigest()


def model_fingerprint(spec: str, config: str | None = None, given: bool = False) -> dict:
    """``{"spec", "kind", "hash"}`` of a model spec, without loading it.

    Built-ins: name + weight seed. Folders: configs, tokenizer files and each weight file's
    size + first/last MiB. A checkpoint file: the same of the file (+ its ``--model-config``
    folder). Hub ids: the local snapshot when the hub cache has one (else no hash). ``given``:
    an in-memory pipeline passed to ``generate(model=...)``, which is not hashed.
    """
    from engine.generate.builtins import builtin_identity
    from engine.generate.models import describe_spec

    if given:
        return {"spec": spec, "kind": "in-memory", "hash": None}
    kind = describe_spec(spec)
    if kind == "builtin":
        digest = builtin_identity(spec)
    elif kind == "dir":
        digest = folder_digest(spec)
    elif kind == "file":
        digest = file_digest(spec)
        if config:
            digest = hashlib.sha256((digest + folder_digest(config)).encode()).hexdigest()
    else:
        digest = _hub_snapshot_digest(spec)
    return {"spec": spec, "kind": kind, "hash": digest}


def _hub_snapshot_digest(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return folder_digest(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub library): identity is the id only
        return None


def pixel_settings(cfg, dtype, model: dict) -> dict:
    """Everything besides the plan row that decides what a stored image looks like."""
    settings = {
        "model": model,
        "model_config": cfg.model_config,
        "dtype": str(dtype).replace("torch.", ""),
        "store_size": cfg.store_size,
        "jpeg_quality": cfg.jpeg_quality,
        "blank_std": cfg.blank_std,
        "safety_checker": cfg.safety_checker,
        "clip_filter": (f"{cfg.clip_model} weights={cfg.clip_pretrained} "
                        f"threshold={cfg.clip_threshold}" if cfg.clip_filter else "off"),
        "real": cfg.real,
    }
    return settings


def differences(before: dict, now: dict) -> list[str]:
    """``["jpeg_quality 90 -> 30", "model.hash 1a2b3c4d5e6f -> ..."]`` (dotted keys, sorted)."""
    a, b = _flatten(before), _flatten(now)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key} {_show(a.get(key))} -> {_show(b.get(key))}")
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]                                   # a digest
    return "unset" if v is None else str(v)
