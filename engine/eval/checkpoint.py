"""Load the model to evaluate: a checkpoint file or a training run folder, made tolerant.

What we accept (README "Evaluation"):

* **A checkpoint file** (``.pt``/``.pth``/``.bin``/``.safetensors``) holding a plain
  torchvision/timm state dict, or a dict with the state dict under one of :data:`STATE_KEYS`
  (``state_dict``, ``model``, ...). Prefixes added by wrappers (``module.`` from DDP,
  ``_orig_mod.`` from ``torch.compile``) are stripped; DualBN synthetic-branch entries
  (``*.syn_*``, seed 003 §3.3) are dropped, so a dual-BN training checkpoint evaluates its real
  branch, exactly like the trainer's exported ``real_state_dict``. The architecture comes from
  ``--model`` (or the run's config); the number of classes from the head's weight.
* **A run folder**: ``config.yaml`` naming the model (``train.model.name``, or ``model.name`` /
  ``model`` / ``arch``), and a checkpoint in it or in ``checkpoints/``: the first of
  :data:`CHECKPOINT_NAMES` that exists, else the only ``.pt``/``.pth`` file.

``torch.load`` runs with ``weights_only=True``; a file that needs full unpickling is refused
unless ``--unsafe-load`` (only for files you trust).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

from engine.errors import UserError

CHECKPOINT_NAMES = ("model_real.pt", "model.pt", "final.pt", "checkpoint_final.pt", "last.pt",
                    "checkpoint.pt")
"""Checkpoint names looked for in a run folder (and its ``checkpoints/``), in this order."""
STATE_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "net", "module")
"""Keys under which a checkpoint dict may hold the model's state dict, in this order."""
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SYN_PREFIX = "syn_"  # engine.ops' DualBatchNorm2d synthetic-branch entries
CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


class CheckpointError(UserError):
    """A checkpoint or run folder that cannot be loaded (the message says what to pass)."""


@dataclasses.dataclass
class LoadedModel:
    model: object
    """The model in eval mode on its device."""
    head_name: str
    """The classifier layer; its input is the frozen feature vector."""
    arch: str
    source: str
    """torchvision | timm"""
    num_classes: int
    path: str
    """The checkpoint file."""
    sha256: str
    run_dir: str | None = None
    run_config: dict | None = None
    notes: list = dataclasses.field(default_factory=list)

    @property
    def head(self):
        return self.model.get_submodule(self.head_name)

    def describe(self) -> dict:
        return {"path": os.path.abspath(self.path), "sha256": self.sha256, "arch": self.arch,
                "source": self.source, "num_classes": self.num_classes,
                "run_dir": os.path.abspath(self.run_dir) if self.run_dir else None,
                "head": self.head_name, "notes": list(self.notes)}


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


# ----------------------------------------------------------------------------- run folders

def resolve_checkpoint(path: str) -> tuple[str, str | None, dict | None]:
    """``(checkpoint file, run folder or None, run config or None)`` for a file or run folder."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    if os.path.isfile(path):
        run_dir = os.path.dirname(os.path.abspath(path))
        if os.path.basename(run_dir) == "checkpoints":
            run_dir = os.path.dirname(run_dir)
        cfg = read_run_config(run_dir)
        return path, (run_dir if cfg is not None else None), cfg
    cfg = read_run_config(path)
    folders = [path, os.path.join(path, "checkpoints")]
    for name in CHECKPOINT_NAMES:
        for folder in folders:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name), path, cfg
    found = sorted(os.path.join(folder, n) for folder in folders if os.path.isdir(folder)
                   for n in os.listdir(folder) if n.endswith(CHECKPOINT_EXTENSIONS))
    if len(found) == 1:
        return found[0], path, cfg
    if not found:
        raise CheckpointError(f"{path}: no checkpoint in this folder or its checkpoints/ "
                              f"(looked for {', '.join(CHECKPOINT_NAMES)} or any .pt file)")
    raise CheckpointError(f"{path}: several checkpoints ({', '.join(map(os.path.basename, found))}"
                          "); pass the one to evaluate as the file path")


def read_run_config(folder: str) -> dict | None:
    import yaml

    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    return data if isinstance(data, dict) else None


def _dig(cfg: dict | None, *path):
    node = cfg
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def model_from_run_config(cfg: dict | None) -> tuple[str | None, str | None, dict]:
    """(architecture name, source, build kwargs) named by a run's config.yaml, tolerant of its
    shape; ``img_size`` (timm vision transformers trained at another size) is kept."""
    for root in (("train",), ()):
        model = _dig(cfg, *root, "model")
        if isinstance(model, dict) and isinstance(model.get("name"), str):
            src = model.get("source")
            kwargs = {"img_size": model["img_size"]} if model.get("img_size") else {}
            return model["name"], src if src in ("torchvision", "timm") else None, kwargs
        if isinstance(model, str):
            return model, None, {}
        arch = _dig(cfg, *root, "arch")
        if isinstance(arch, str):
            return arch, None, {}
    return None, None, {}


def run_data_info(cfg: dict | None) -> dict:
    """What the run trained on, for reports: ``kind`` (real/synthetic/mixed/unknown) and
    ``synthetic_images`` (the synthetic .beton's length when the file is still there)."""
    data = _dig(cfg, "train", "data") or _dig(cfg, "data")
    if not isinstance(data, dict):
        return {"kind": "unknown", "synthetic_images": None}
    real, syn, share = data.get("real"), data.get("synthetic"), data.get("synthetic_share")
    if real and syn:
        kind = "real" if share == 0 else "synthetic" if share == 1 else "mixed"
    else:
        kind = "real" if real else "synthetic" if syn else "unknown"
    n = None
    if isinstance(syn, str) and syn.endswith(".beton") and os.path.isfile(syn) and kind != "real":
        from loaders.beton import BetonReader

        with BetonReader(syn) as r:
            n = len(r)
    return {"kind": kind, "synthetic_images": n}


# ----------------------------------------------------------------------------- models

def build_model(name: str, num_classes: int = 1000, source: str = "auto", **kwargs):
    """``(model, source)``: torchvision's ``get_model`` or timm's ``create_model`` with random
    weights (no download); ``kwargs`` go to timm (``img_size``)."""
    import timm
    import torchvision

    tv_names = set(torchvision.models.list_models(module=torchvision.models))
    if source in ("auto", "torchvision") and name in tv_names and not kwargs:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes), \
            "torchvision"
    if source in ("auto", "timm") and timm.is_model(name):
        return timm.create_model(name, pretrained=False, num_classes=num_classes,
                                 **kwargs), "timm"
    where = {"auto": "torchvision or timm", "torchvision": "torchvision", "timm": "timm"}[source]
    raise CheckpointError(f"unknown model {name!r} in {where} (e.g. resnet18, resnet50, "
                          "vit_small_patch16_224); pass --model NAME")


def find_head(model) -> str:
    """Name of the classifier layer: timm's ``get_classifier()`` when it is a Linear, else
    the last ``nn.Linear`` of the model (torchvision's ``fc``, ``classifier.1``, ``heads.head``)."""
    import torch.nn as nn

    names = {id(m): n for n, m in model.named_modules()}
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        if isinstance(head, nn.Linear) and id(head) in names:
            return names[id(head)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no Linear classifier layer to "
                              "read features from")
    return linears[-1]


def fixed_input_size(model) -> int | None:
    """The only input size a model accepts (timm vision transformers with a strict patch
    embedding), else None."""
    pe = getattr(model, "patch_embed", None)
    size = getattr(pe, "img_size", None)
    if size is None or not getattr(pe, "strict_img_size", False):
        return None
    return int(size[0]) if size[0] == size[1] else None


def check_input_size(loaded: "LoadedModel", crop: int, flag: str = "--crop") -> None:
    size = fixed_input_size(loaded.model)
    if size is not None and size != crop:
        raise CheckpointError(f"{loaded.arch} takes {size}x{size} inputs only; pass {flag} "
                              f"{size} (and a resize of about {round(size / 0.875)})")


def extract_state_dict(obj, path: str) -> dict:
    """The state dict inside a loaded checkpoint object."""
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), dict):
                return extract_state_dict(obj[key], path)
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointError(f"{path}: no state dict found (top-level keys: {keys}); expected "
                              f"tensors, or a dict under one of {', '.join(STATE_KEYS)}")
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")


def clean_state_dict(sd: dict) -> tuple[dict, list[str]]:
    """Strip wrapper prefixes shared by every key; drop DualBN synthetic-branch entries."""
    notes = []
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                notes.append(f"stripped key prefix {prefix!r}")
                changed = True
    syn = [k for k in sd if k.rsplit(".", 1)[-1].startswith(SYN_PREFIX)]
    if syn:
        sd = {k: v for k, v in sd.items() if k not in set(syn)}
        notes.append(f"dropped {len(syn)} DualBN synthetic-branch entries (evaluating the real "
                     "branch, as real_state_dict exports it)")
    return sd, notes


def load_state(path: str, unsafe: bool = False):
    import pickle

    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: holds objects beyond tensors ({str(exc).splitlines()[0]}"
                              "); if you trust the file, pass --unsafe-load") from None
    except (EOFError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None


def load_model(path: str, *, model: str | None = None, source: str = "auto",
               unsafe: bool = False, device: str = "cpu") -> LoadedModel:
    """Load a checkpoint file or run folder (see module doc) into its eval-mode model."""
    ckpt, run_dir, run_cfg = resolve_checkpoint(path)
    cfg_name, cfg_source, kwargs = model_from_run_config(run_cfg)
    if model and model != cfg_name:
        kwargs = {}
    name = model or cfg_name
    if name is None:
        raise CheckpointError(f"{path}: which architecture is it? pass --model NAME (e.g. "
                              "resnet50), or evaluate the run folder whose config.yaml names it")
    if source == "auto" and cfg_source and not model:
        source = cfg_source
    sd, notes = clean_state_dict(extract_state_dict(load_state(ckpt, unsafe), ckpt))
    net, source = build_model(name, 1000, source, **kwargs)
    head = find_head(net)
    weight = sd.get(f"{head}.weight")
    if weight is None:
        raise CheckpointError(f"{ckpt}: no {head}.weight for the classifier of {name} (keys "
                              f"start {', '.join(list(sd)[:4])}); is --model {name} right?")
    num_classes = int(weight.shape[0])
    if num_classes != 1000:
        net, source = build_model(name, num_classes, source, **kwargs)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{ckpt} does not fit {source} {name}: {first}; pass --model "
                              "with the architecture it was trained as") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"{ckpt} does not fit {source} {name}: missing {len(missing)} keys "
            f"({', '.join(missing[:3])}), unexpected {len(unexpected)} "
            f"({', '.join(unexpected[:3])})"
            "; pass --model with the architecture it was trained as")
    net.eval().to(device)
    return LoadedModel(net, head, name, source, num_classes, ckpt, file_sha256(ckpt), run_dir,
                       run_cfg, notes)
