"""Pipeline families: which diffusers pipeline class a model is, what a saved folder of it must
hold, and which conditioner serves each conditioning mode.

The generation loop is family-agnostic: it asks the family of the loaded pipeline for its
conditioners (``conditioning.py``) and runs the UNet with whatever they return. Adding a family
(issue #10: SDXL with two text encoders, pooled embeddings and time ids; the image-variation
pipeline with a CLIP image encoder and no text encoder) is one :func:`register` call with its
conditioner(s) and, for built-in test models, a builder in ``models.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.generate.conditioning import ImageConditioner, TextConditioner


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
    doc: str = ""


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"pipeline family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def families() -> list[Family]:
    return list(_FAMILIES.values())


def by_pipeline_class(class_name: str) -> Family | None:
    """The family whose diffusers pipeline class is ``class_name`` (None if unsupported)."""
    for f in _FAMILIES.values():
        if f.pipeline_class == class_name:
            return f
    return None


def family_of(pipe) -> Family:
    """The family of a loaded pipeline object."""
    fam = by_pipeline_class(type(pipe).__name__)
    if fam is None:
        raise ValueError(f"unsupported pipeline class {type(pipe).__name__}; supported: "
                         f"{', '.join(f.pipeline_class for f in _FAMILIES.values())}")
    return fam


def _sd_conditioners(pipe, device, dtype, *, embed_cache: bool, image_loader) -> dict:
    text = TextConditioner(pipe, device, dtype, cache=embed_cache)
    return {"text": text, "img2img": text,
            "variation": ImageConditioner(pipe, device, dtype, image_loader)}


SD = register(Family(
    name="sd", pipeline_class="StableDiffusionPipeline",
    components=("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    make_conditioners=_sd_conditioners,
    doc="Stable Diffusion 1.x/2.x (one CLIP text encoder; img2img and, with an image "
        "encoder, image variation through the same UNet)"))
