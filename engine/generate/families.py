"""Pipeline families: which diffusers pipeline class a model is, what a saved folder of it must
hold, which conditioning modes it can generate and which conditioner serves each.

The generation loop is family-agnostic: it asks the family of the loaded pipeline for its
conditioners (``conditioning.py``) and runs the UNet with whatever they return. Three families:

* ``sd``: Stable Diffusion 1.x/2.x (``StableDiffusionPipeline``): text prompts, and img2img
  (seed 004 §2.4 "via real images and class labels") through the same UNet;
* ``sdxl``: SDXL (``StableDiffusionXLPipeline``; seed 003 §4, App. E "the latest variation of
  LDM"): two text encoders, pooled text embeddings and size/crop time ids;
* ``variation``: image variation (``StableDiffusionImageVariationPipeline``, the layout of
  lambdalabs/sd-image-variations-diffusers; seed 004 §2.4 "via real images"): a CLIP image
  encoder and no text encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from engine.generate.conditioning import ImageConditioner, TextConditioner, XLTextConditioner

MODE_TEXT = {"text": "text prompts", "img2img": "img2img (real image + prompt)",
             "variation": "image variation (real image, CLIP image encoder)"}
"""Conditioning modes in words (errors, dry runs)."""


@dataclass(frozen=True)
class Family:
    name: str
    """Short name recorded in the run state (``"sd"``)."""
    pipeline_class: str
    """The diffusers pipeline class (``model_index.json``'s ``_class_name``)."""
    components: tuple[str, ...]
    """Sub-folders a saved pipeline folder must have."""
    make_conditioners: Callable
    """``(pipe, device, dtype, *, embed_cache, image_loader) -> {mode: conditioner}`` for the
    modes of ``batching.MODES`` this family can run."""
    modes: tuple[str, ...] = ("text",)
    """The conditioning modes ``make_conditioners`` serves (checked before a model loads)."""
    safety_checker: bool = True
    """Whether the pipeline class has a ``safety_checker`` component."""
    load_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments of ``from_pretrained``/``from_single_file``."""
    example: str = ""
    """A model of this family, for messages."""
    doc: str = ""


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"pipeline family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def families() -> list[Family]:
    return list(_FAMILIES.values())


def by_name(name: str) -> Family:
    return _FAMILIES[name]


def by_pipeline_class(class_name: str) -> Family | None:
    """The family whose diffusers pipeline class is ``class_name`` (None if unsupported)."""
    for f in _FAMILIES.values():
        if f.pipeline_class == class_name:
            return f
    return None


def family_of(pipe) -> Family:
    """The family of a loaded pipeline object (its class or a subclass of a family's class)."""
    for cls in type(pipe).__mro__:
        fam = by_pipeline_class(cls.__name__)
        if fam is not None:
            return fam
    raise ValueError(f"unsupported pipeline class {type(pipe).__name__}; supported: "
                     f"{', '.join(f.pipeline_class for f in _FAMILIES.values())}")


def modes_problem(family: Family, modes, model: str) -> str | None:
    """Why ``model`` (of ``family``) cannot generate rows of ``modes`` (None if it can)."""
    missing = sorted(set(modes) - set(family.modes))
    if not missing:
        return None
    need = [f for f in _FAMILIES.values() if set(missing) <= set(f.modes)]
    hint = (f"; use a {need[0].pipeline_class} model (e.g. {need[0].example})" if need else "")
    return (f"the plan has {' and '.join(MODE_TEXT[m] for m in missing)} rows, which {model} "
            f"(a {family.pipeline_class}) cannot generate: it generates "
            f"{', '.join(MODE_TEXT[m] for m in family.modes)}{hint}")


def _sd_conditioners(pipe, device, dtype, *, embed_cache: bool, image_loader) -> dict:
    text = TextConditioner(pipe, device, dtype, cache=embed_cache)
    return {"text": text, "img2img": text}


def _sdxl_conditioners(pipe, device, dtype, *, embed_cache: bool, image_loader) -> dict:
    return {"text": XLTextConditioner(pipe, device, dtype, cache=embed_cache)}


def _variation_conditioners(pipe, device, dtype, *, embed_cache: bool, image_loader) -> dict:
    return {"variation": ImageConditioner(pipe, device, dtype, image_loader)}


SD = register(Family(
    name="sd", pipeline_class="StableDiffusionPipeline",
    components=("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    make_conditioners=_sd_conditioners, modes=("text", "img2img"),
    example="CompVis/stable-diffusion-v1-4",
    doc="Stable Diffusion 1.x/2.x (one CLIP text encoder; img2img through the same UNet)"))

SDXL = register(Family(
    name="sdxl", pipeline_class="StableDiffusionXLPipeline",
    components=("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
                "scheduler"),
    make_conditioners=_sdxl_conditioners, modes=("text",), safety_checker=False,
    load_kwargs={"add_watermarker": False},      # we decode ourselves: no watermark is applied
    example="stabilityai/stable-diffusion-xl-base-1.0",
    doc="SDXL (two CLIP text encoders, pooled text embeddings, size/crop time ids)"))

VARIATION = register(Family(
    name="variation", pipeline_class="StableDiffusionImageVariationPipeline",
    components=("unet", "vae", "image_encoder", "feature_extractor", "scheduler"),
    make_conditioners=_variation_conditioners, modes=("variation",),
    example="lambdalabs/sd-image-variations-diffusers",
    doc="SD image variations (a CLIP image encoder instead of a text encoder)"))
