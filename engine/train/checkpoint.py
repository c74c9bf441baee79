"""Atomic checkpoints, exact resume, and the real-branch export.

``checkpoint.pt`` holds everything a resumed run needs to continue exactly as if it had not
stopped: the model, optimizer, AMP scaler and EMA states, the schedule position (the
optimizer step; schedules are functions of it), the loader's epoch and position in the epoch,
the partial metric sums and every rank's RNG states (torch CPU/CUDA, numpy, Python). It is
written to a temporary file and renamed over the previous one, so a crash or a full disk while
writing leaves the previous checkpoint intact. Files load with ``weights_only=True``.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np
import torch

from engine.errors import UserError
from engine.paths import atomic_write
from engine.train.config import RESUME_MAY_CHANGE

FORMAT = "synthclone-train-checkpoint"
VERSION = 1
CHECKPOINT = "checkpoint.pt"
EXPORT = "model_real.pt"


class CheckpointError(UserError):
    """A checkpoint that cannot be written or does not belong to this run."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP and torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# ----------------------------------------------------------------------------- RNG


def rng_state() -> dict:
    """This process's random states, as plain tensors/ints (``weights_only`` loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- files


def save(path: str, payload: dict, previous_step: int | None = None) -> None:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename)."""
    try:
        with atomic_write(path, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    except OSError as exc:
        kept = (f"the previous checkpoint (step {previous_step}) is intact"
                if previous_step is not None else "no earlier checkpoint exists")
        raise CheckpointError(
            f"could not write checkpoint {path} at step {payload.get('progress', {}).get('step')}"
            f" ({exc.strerror or exc}); {kept}. Free disk space and rerun with --resume") from exc


def load(path: str) -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint to resume at {path} (start without --resume)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a synthclone training checkpoint")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} is not "
                              f"{VERSION} (written by another synthclone version)")
    return ckpt


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = prefix + str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_compatible(saved: dict, current: dict, path: str) -> None:
    """Refuse to resume a checkpoint made with another model or config; names the keys."""
    a, b = _flatten(saved), _flatten(current)
    diff = [k for k in sorted(set(a) | set(b)) if k not in RESUME_MAY_CHANGE and a.get(k) != b.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in diff[:6])
        more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
        raise CheckpointError(
            f"{path} belongs to another run: {shown}{more}. Resume with the run's own config "
            "(its config.yaml), or start a new run in another --out (or --overwrite)")


# ----------------------------------------------------------------------------- export


def export_real(model: torch.nn.Module, path: str, info: dict) -> str:
    """Save the real-branch weights (``real_state_dict``) — loadable with ``load_state_dict``
    into the plain torchvision/timm model — and ``<path>.json`` describing it."""
    from engine.ops.dual_bn import real_state_dict

    state = {k: v.detach().cpu() for k, v in real_state_dict(unwrap(model)).items()}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    with atomic_write(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    return path

