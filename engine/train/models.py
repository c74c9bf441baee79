"""Classifiers by torchvision or timm name, made dual-domain where asked (seed 003 §3.3).

``build_model(cfg, num_classes)`` returns the network with the recipe's dropout / drop-path,
its batch norms made ``DualBatchNorm2d`` when ``cfg.dual_bn`` (torchvision ResNet tails fused)
and ``cfg.weights`` loaded. Every change keeps the plain architecture's state-dict keys, so
``real_state_dict`` of a trained model loads into ``plain_model(cfg, num_classes)``, i.e. the
unmodified torchvision/timm constructor.
"""
from __future__ import annotations

import difflib
import os
import pickle

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import ConfigError
from engine.ops.dual_bn import DualBatchNorm2d, convert_dual_bn, fuse_resnet_tails
from engine.train.config import ModelConfig

_BN_TYPES = (nn.BatchNorm2d, nn.SyncBatchNorm)


def model_source(cfg: ModelConfig) -> str:
    """``torchvision`` or ``timm`` for ``cfg.name`` (``auto``: torchvision when it has the name)."""
    import timm
    import torchvision

    tv_names = set(torchvision.models.list_models(module=torchvision.models))
    if cfg.source == "torchvision" or (cfg.source == "auto" and cfg.name in tv_names):
        if cfg.name not in tv_names:
            raise ConfigError(f"model.name {cfg.name!r} is not a torchvision classification model"
                              f"{_close(cfg.name, tv_names)}")
        return "torchvision"
    if not timm.is_model(cfg.name):
        names = tv_names | set(timm.list_models())
        raise ConfigError(f"model.name {cfg.name!r} is neither a torchvision nor a timm model"
                          f"{_close(cfg.name, names)}")
    return "timm"


def _close(name: str, names) -> str:
    near = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else ""


class ClassifierDropout:
    """A forward pre-hook: dropout on the classifier's input while training (keeps the
    classifier's state-dict keys, unlike wrapping it in a Sequential)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, module: nn.Module, args):
        return (F.dropout(args[0], self.p, module.training), *args[1:])


def _classifier(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no Linear classifier for model.dropout")
    return linears[-1]


def plain_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The unmodified torchvision/timm architecture (random init): what an exported
    ``model_real.pt`` loads into."""
    if model_source(cfg) == "timm":
        import timm

        kwargs = {"img_size": cfg.img_size} if cfg.img_size else {}
        return timm.create_model(cfg.name, pretrained=False, num_classes=num_classes, **kwargs)
    import torchvision

    return torchvision.models.get_model(cfg.name, weights=None, num_classes=num_classes)


def _create(cfg: ModelConfig, num_classes: int) -> nn.Module:
    if model_source(cfg) == "timm":
        import timm

        kwargs = {"drop_rate": cfg.dropout}
        if cfg.drop_path:
            kwargs["drop_path_rate"] = cfg.drop_path
        if cfg.img_size:
            kwargs["img_size"] = cfg.img_size
        try:
            return timm.create_model(cfg.name, pretrained=False, num_classes=num_classes, **kwargs)
        except TypeError as exc:  # e.g. img_size / drop_path on a model without them
            raise ConfigError(f"timm model {cfg.name} does not take these options "
                              f"{sorted(kwargs)}: {exc}") from None
    if cfg.drop_path:
        raise ConfigError(f"model.drop_path needs a timm model; {cfg.name} comes from "
                          "torchvision (set model.source=timm)")
    if cfg.img_size:
        raise ConfigError("model.img_size applies to timm vision transformers only")
    model = plain_model(cfg, num_classes)
    if cfg.dropout:
        head = getattr(model, "classifier", None)
        drops = [m for m in head.modules() if isinstance(m, nn.Dropout)] if isinstance(
            head, nn.Module) else []
        for d in drops:  # EfficientNet / MobileNet: their own dropout before the classifier
            d.p = cfg.dropout
        if not drops:
            _classifier(model).register_forward_pre_hook(ClassifierDropout(cfg.dropout))
    return model


def norm_kinds(model: nn.Module) -> list[str]:
    """Names of the normalization layer types in ``model`` (for messages)."""
    kinds = {type(m).__name__ for m in model.modules()
             if "norm" in type(m).__name__.lower() and type(m).__name__ != "Identity"}
    return sorted(kinds)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, _BN_TYPES) for m in model.modules())


def build_model(cfg: ModelConfig, num_classes: int, *, distributed: bool = False) -> nn.Module:
    """The network of ``cfg`` with ``num_classes`` outputs (see the module doc)."""
    model = _create(cfg, num_classes)
    sync = cfg.sync_bn and distributed
    if cfg.dual_bn:
        if not has_batch_norm(model):
            kinds = ", ".join(norm_kinds(model)) or "no normalization layers"
            raise ConfigError(f"model {cfg.name} has no BatchNorm2d layers (it uses {kinds}), so "
                              "dual batch norm does not apply: set model.dual_bn=false (the λ "
                              "loss and 50/50 batches still work without it)")
        model = convert_dual_bn(model, sync=sync, eval_domain=cfg.eval_domain)
        if cfg.fuse_tails:
            fuse_resnet_tails(model)
    elif sync and has_batch_norm(model):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.weights:
        load_weights(model, cfg.weights, what=f"model.weights {cfg.weights}")
    return model


def is_dual(model: nn.Module) -> bool:
    return any(isinstance(m, DualBatchNorm2d) for m in model.modules())


# ----------------------------------------------------------------------------- weights


def strip_prefixes(state: dict) -> dict:
    """Drop DDP's ``module.`` and torch.compile's ``_orig_mod.`` prefixes."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def state_dict_of_file(path: str) -> dict:
    """The model weights in ``path``: an exported state dict, or the ``model`` of a training
    checkpoint (its EMA weights when it has them)."""
    if not os.path.isfile(path):
        raise ConfigError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and obj.get("format") == "synthclone-train-checkpoint":
        obj = obj.get("ema") or obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path} holds no state dict of tensors")
    return strip_prefixes(obj)


def check_fits(model: nn.Module, state: dict, what: str) -> None:
    """Raise a ConfigError naming missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    syn = {k for k in own if ".syn_" in k or k.startswith("syn_")}
    missing = [k for k in own if k not in state and k not in syn]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({', '.join(unexpected[:3])})")
    if problems:
        raise ConfigError(f"{what} does not fit {type(model).__name__}: {'; '.join(problems)} — "
                          "is it another architecture or another number of classes?")


def load_weights(model: nn.Module, path: str, what: str | None = None) -> None:
    state = state_dict_of_file(path)
    check_fits(model, state, what or path)
    model.load_state_dict(state, strict=False)
