"""Plans of image-conditioned rows: one row per real image (seed 004 §2.4, App. C).

Seed 004 generates, "for every generation strategy described in §2.4", a training set the size
of the real one (ImageNet-100: ~130K train, 5K val; App. D) from its real images:

* ``image_variation`` — "Generation via Real (Source) Images": the row's image, through CLIP's
  vision encoder, conditions the image-variation pipeline (the implementation in diffusers,
  §2.4 footnote 1; the lambdalabs/sd-image-variations-diffusers model). Rows carry
  ``init_image`` and no prompt (``""``) nor strength.
* ``img2img_templates`` — "Generation via Real (Source) Images and Class Labels": the image is
  encoded, diffused forward "for T steps" (``strength`` 1.0) and denoised with the class's
  proxy caption: one of CLIP's 80 ImageNet templates (§3, Table 8; the ``clip_templates``
  recipe), drawn per class as that recipe draws them. Rows carry ``init_image`` + ``strength``.

Sources: an ImageFolder tree (``loaders.files``: ``ROOT/<class>/**/<image>``; ``init_image`` is
the path relative to ROOT) or a real .beton (``synthclone pack``; ``init_image`` is the sample
index). The plan's class set decides the classes and labels: a class folder (or a .beton
class) belongs to the class of the same wnid, else of the same name; images of other classes are
left out with a note. Rows go class by class (the class set's order), images in the source's
order; with several recipes each class's images are split among them by weight.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import ConfigError

IMAGE_RECIPES = ("image_variation", "img2img_templates")
"""Recipes of image-conditioned rows (``synthclone plan --from-images``)."""
RECIPE_PAPER = {
    "image_variation": "seed 004 §2.4 'via real images' (image-variation pipeline)",
    "img2img_templates": "seed 004 §2.4 'via real images and class labels' (img2img + the 80 "
                         "CLIP templates)",
}


@dataclass
class RealImage:
    key: str
    """The row's ``init_image``: a path relative to the folder, or a .beton sample index."""
    wnid: str | None
    name: str | None
    label: int | None
    """The label stored in a .beton (None for a folder)."""


def list_real_images(source: str) -> tuple[str, list[RealImage]]:
    """``(kind, images)`` of a folder (ImageFolder rules) or a real .beton, in source order."""
    if os.path.isdir(source):
        from loaders.files import list_image_folder

        items = list_image_folder(source)        # sorted; errors if there are no images
        return "folder", [RealImage(os.path.relpath(p, source).replace(os.sep, "/"),
                                    c if _is_wnid(c) else None, c, None) for p, c in items]
    if not os.path.exists(source):
        raise FileNotFoundError(f"--from-images {source}: no such folder or .beton")
    from loaders.beton.reader import BetonReader

    with BetonReader(source) as r:
        if "label" not in r.fields or "image" not in r.fields:
            raise ConfigError(f"--from-images {source}: the .beton has no image/label fields "
                              f"(it has {', '.join(r.fields)}); pack the real images with "
                              "synthclone pack")
        k = list(r.fields).index("label")
        labels = [int(v) for v in r.metadata[f"f{k}"]]
        classes = r.info.classes if r.info is not None else {}
    out = []
    for i, label in enumerate(labels):
        entry = classes.get(label)
        out.append(RealImage(str(i), entry.wnid if entry else None,
                             entry.name if entry else None, label))
    if not out:
        raise ConfigError(f"--from-images {source}: the .beton holds no images")
    return "beton", out


def _is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def match_classes(images: list[RealImage], cs) -> tuple[dict, list[str]]:
    """``{class index in cs: [RealImage, ...]}`` and notes about images left out.

    An image belongs to the class with its wnid, else (custom classes) the class with its name
    (case-insensitive), else — a .beton without class names — the class with its label."""
    by_wnid = {c.wnid: k for k, c in enumerate(cs) if c.wnid}
    by_name = {c.name.lower(): k for k, c in enumerate(cs)}
    by_label = {c.index: k for k, c in enumerate(cs)}
    out: dict[int, list[RealImage]] = {}
    left: dict[str, int] = {}
    for im in images:
        k = by_wnid.get(im.wnid) if im.wnid else None
        if k is None and im.name is not None:
            k = by_name.get(im.name.lower())
        if k is None and im.wnid is None and im.name is None and im.label is not None:
            k = by_label.get(im.label)
        if k is None:
            what = im.wnid or im.name or f"label {im.label}"
            left[what] = left.get(what, 0) + 1
        else:
            out.setdefault(k, []).append(im)
    notes = []
    if left:
        shown = ", ".join(sorted(left)[:5]) + (", ..." if len(left) > 5 else "")
        notes.append(f"{sum(left.values())} images of {len(left)} classes that are not in the "
                     f"class set {cs.name} were left out ({shown})")
    return out, notes


def image_rows(cfg, cs, recipes: list[str], progress: bool = False):
    """``(rows, header fields, notes)`` of an image-conditioned plan (see module doc)."""
    from engine.plan.build import split_classes
    from engine.plan.rows import PlanRow, derive_seed, row_seed

    kind, images = list_real_images(cfg.from_images)
    per_class, notes = match_classes(images, cs)
    if not per_class:
        found = sorted({im.wnid or im.name or f"label {im.label}" for im in images})
        raise ConfigError(
            f"none of the {len(images)} images in {cfg.from_images} belongs to a class of the "
            f"class set {cs.name} (the source has {', '.join(found[:5])}"
            f"{', ...' if len(found) > 5 else ''}); pass --classes naming its classes (wnids, or "
            "a class file with the folder names)")
    classes = [k for k in range(len(cs)) if k in per_class]
    splits = split_classes([len(per_class[k]) for k in classes], {r: cfg.recipes[r]
                                                                   for r in recipes})
    templates = None
    if "img2img_templates" in recipes:
        from engine.prompts.templates import ClipTemplates

        templates = ClipTemplates()
    it = zip(classes, splits)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(classes), desc="plan", unit="class", delay=1.0)
    rows = []
    for k, split in it:
        cls, ims = cs[k], per_class[k]
        start = 0
        for name in recipes:
            n = split[name]
            chosen, start = ims[start:start + n], start + n
            if not n:
                continue
            if name == "img2img_templates":
                seed = derive_seed("prompts", cfg.seed, "clip_templates", cls.wnid or cls.name)
                prompts = templates.prompts(cls, n, seed)
                strength = cfg.strength
            else:
                prompts, strength = [""] * n, None
            for im, prompt in zip(chosen, prompts):
                sid = len(rows)
                rows.append(PlanRow(sample_id=sid, label=cls.index, wnid=cls.wnid, recipe=name,
                                    prompt=prompt, seed=row_seed(cfg.seed, sid),
                                    guidance=cfg.guidance, steps=cfg.steps, height=cfg.height,
                                    width=cfg.width, sampler=cfg.sampler,
                                    negative_prompt=(cfg.negative_prompt if strength else None),
                                    init_image=im.key,
                                    strength=strength))
    header = {"real_images": {"source": os.path.abspath(cfg.from_images), "kind": kind,
                              "images": len(images), "rows": len(rows)}}
    if "image_variation" in recipes and cfg.guidance != VARIATION_GUIDANCE:
        notes.append(f"image_variation at guidance {cfg.guidance:g}; seed 004's config uses "
                     f"{VARIATION_GUIDANCE:g} (lambdalabs/sd-image-variations-diffusers' scale)")
    return rows, header, notes


VARIATION_GUIDANCE = 3.0
"""Guidance of the image-variation model (its model card's scale; issue #10 item 4)."""
