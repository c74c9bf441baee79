"""Model loading: hub id, local diffusers folder, single checkpoint file, built-in random-weight
models (``builtins.py``).  Everything is checked before any work starts.

``load_model(spec)`` returns a diffusers pipeline of a supported family (``families.py``:
``StableDiffusionPipeline``, ``StableDiffusionXLPipeline``,
``StableDiffusionImageVariationPipeline``), chosen from the folder's ``model_index.json`` (a hub
id: the cached snapshot's; a checkpoint file: its ``--model-config`` folder's, else its keys).
Our denoising loop uses its ``unet``/``vae``/``scheduler`` and the family's conditioners; the
naive benchmark path calls the pipeline directly.  The safety checker is off unless asked for
(seed 002 disabled it).
"""
from __future__ import annotations

import contextlib
import json
import os

from engine.errors import UserError
from engine.generate.builtins import (BUILDERS, BUILTIN, BUILTIN_SEED,  # noqa: F401 (re-exported)
                                      build_builtin)

CHECKPOINT_EXTS = (".safetensors", ".ckpt")
SDXL_CHECKPOINT_KEY = "conditioner.embedders.1.model."
"""Keys of SDXL base's second (OpenCLIP bigG) text encoder in an original-layout checkpoint."""


class ModelLoadError(UserError, ValueError):
    """The model spec cannot be loaded (missing path, no hub access, incompatible files)."""


def describe_spec(spec: str) -> str:
    """What kind of model spec this is: builtin, dir, file or hub."""
    if spec in BUILTIN:
        return "builtin"
    if os.path.isdir(spec):
        return "dir"
    if spec.lower().endswith(CHECKPOINT_EXTS):
        return "file"
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").split("/", 1)[-1]:
        return "path"
    return "hub"


def _family_of_index(path: str, where: str):
    from engine.generate import families

    with open(path, encoding="utf-8") as f:
        class_name = json.load(f).get("_class_name", "")
    fam = families.by_pipeline_class(class_name)
    if fam is None:
        raise ModelLoadError(
            f"{where} holds a {class_name or 'pipeline of unknown class'}; supported: "
            f"{', '.join(f.pipeline_class for f in families.families())}")
    return fam


def pipeline_family(folder: str):
    """The :class:`~engine.generate.families.Family` of a saved diffusers pipeline folder."""
    return _family_of_index(os.path.join(folder, "model_index.json"), folder)


def checkpoint_family(path: str):
    """The family of an original-layout checkpoint file, from its keys (SDXL base: its second
    text encoder's ``conditioner.embedders.1.model.*``); .ckpt files are taken as SD."""
    from engine.generate import families

    if path.lower().endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            if any(k.startswith(SDXL_CHECKPOINT_KEY) for k in f.keys()):
                return families.SDXL
    return families.SD


def spec_family(spec: str, config: str | None = None, online: bool = False):
    """The family ``spec`` will load as, when it is known without loading: built-ins, folders,
    checkpoint files, and hub ids in the local hub cache (``online``: else fetch the hub id's
    ``model_index.json``, unless the hub is offline); None when it cannot be known."""
    kind = check_model_spec(spec, config)
    if kind == "builtin":
        from engine.generate import families

        return families.by_name(BUILDERS[spec][0])
    if kind == "dir":
        return pipeline_family(spec)
    if kind == "file":
        return pipeline_family(config) if config else checkpoint_family(spec)
    try:
        from huggingface_hub import hf_hub_download

        index = hf_hub_download(spec, "model_index.json", local_files_only=True)
    except (OSError, ValueError, ImportError):
        if not online:
            return None
        try:
            index = hf_hub_download(spec, "model_index.json")
        except (OSError, ValueError) as exc:     # no access (offline, network down), no repo
            raise ModelLoadError(
                f"could not load model {spec!r} (no model hub access here: HF_HUB_OFFLINE is "
                "set or the network is down, and the hub cache has no copy; download the model "
                f"elsewhere and pass its local folder): {exc}") from None
    return _family_of_index(index, spec)


def check_model_spec(spec: str, config: str | None = None) -> str:
    """Raise ModelLoadError before any work if ``spec`` cannot possibly load; return its kind."""
    kind = describe_spec(spec)
    if kind == "path":
        raise ModelLoadError(f"model path {spec!r} does not exist; pass a diffusers folder, a "
                             f".safetensors/.ckpt file, a hub id, or one of {', '.join(BUILTIN)}")
    if kind == "dir":
        if not os.path.exists(os.path.join(spec, "model_index.json")):
            raise ModelLoadError(
                f"{spec} is not a diffusers pipeline folder (no model_index.json); save one with "
                "the pipeline's save_pretrained(...) or pass a checkpoint file + --model-config")
        fam = pipeline_family(spec)
        for sub in fam.components:
            if not os.path.isdir(os.path.join(spec, sub)):
                raise ModelLoadError(f"{spec} lacks the {sub}/ folder a {fam.pipeline_class} "
                                     "needs (is the folder complete?)")
    if kind == "file":
        if not os.path.exists(spec):
            raise ModelLoadError(f"checkpoint file {spec} does not exist")
        if config is not None and not os.path.exists(os.path.join(config, "model_index.json")):
            raise ModelLoadError(f"--model-config {config} is not a diffusers folder (no "
                                 "model_index.json); it must hold the configs of the checkpoint's "
                                 "pipeline (e.g. a saved pipeline of the same architecture)")
    return kind


def load_model(spec: str, config: str | None = None, safety_checker: bool = False):
    """Load ``spec`` (see module docstring) as a diffusers pipeline on the CPU, fp32."""
    import diffusers
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    kind = check_model_spec(spec, config)
    family = spec_family(spec, config, online=True)
    if safety_checker and family is not None and not family.safety_checker:
        raise ModelLoadError(f"a {family.pipeline_class} has no safety checker; drop "
                             "--safety-checker")
    if kind == "builtin":
        if safety_checker:
            raise ModelLoadError(f"the built-in {spec!r} model has no safety checker weights; "
                                 "drop --safety-checker")
        return build_builtin(spec)
    extra = dict(family.load_kwargs)
    if family.safety_checker and not safety_checker:
        extra.update(safety_checker=None, requires_safety_checker=False)
    pipeline_class = getattr(diffusers, family.pipeline_class)
    try:
        with quiet_loading():
            pipe = _load(pipeline_class, spec, kind, config, extra)
    except (OSError, ValueError, SingleFileComponentError) as exc:
        hint = (" (no model hub access here: HF_HUB_OFFLINE is set or the network is down; "
                "download the model elsewhere and pass its local folder)" if kind == "hub" else
                f" (a single {family.pipeline_class} checkpoint file needs --model-config: a "
                "local diffusers folder of the same architecture, e.g. a saved pipeline or "
                f"{family.example} without its weights)" if kind == "file" and not config
                else "")
        raise ModelLoadError(f"could not load model {spec!r}{hint}: {exc}") from exc
    if safety_checker and getattr(pipe, "safety_checker", None) is None:
        raise ModelLoadError(f"--safety-checker was asked for but {spec!r} has no safety_checker "
                             "weights")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load(pipeline_class, spec: str, kind: str, config: str | None, extra: dict):
    import torch

    if kind == "file":
        return pipeline_class.from_single_file(spec, config=config, dtype=torch.float32, **extra)
    return pipeline_class.from_pretrained(spec, dtype=torch.float32, **extra)


@contextlib.contextmanager
def quiet_loading():
    """No diffusers/transformers "Loading ..." progress bars while a model loads (our command
    has its own output); their previous state is restored."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    before = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if before[0]:
            dlog.enable_progress_bar()
        if before[1]:
            tlog.enable_progress_bar()
