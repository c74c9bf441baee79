"""Building a plan from a :class:`PlanConfig`: class sizes (``images_per_class`` or real
counts), the split of each class's images among the recipes, the recipes' prompts, row seeds.

Determinism: the same config gives a byte-identical plan file. Prompts are drawn per (recipe,
class) from a seed derived from (master seed, recipe, class); row seeds from (master seed,
sample_id) only. Every ordering is explicit (sorted, or the class set's).
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import TYPE_CHECKING

from engine import __version__
from engine.errors import ConfigError, UserError
from engine.plan.file import Plan, content_hash
from engine.plan.images import IMAGE_RECIPES
from engine.plan.rows import PlanRow, derive_seed, row_seed, sampling_problem

if TYPE_CHECKING:  # the catalog (numpy, timm tables) is imported when a plan is built
    from engine.catalog import ClassInfo, ClassSet


@dataclasses.dataclass
class PlanConfig:
    """Everything that determines a plan (recorded, resolved, in its header)."""

    classes: str = "imagenet100"
    """Class-set spec: imagenet1k | imagenet100 | imagenet-r | imagenet-a | FILE | name,name,..."""
    compact_labels: bool = False
    """Renumber labels 0..n-1 instead of keeping ImageNet-1K indices."""
    recipes: dict = dataclasses.field(default_factory=lambda: {"c_hc": 1.0})
    """Recipe name -> weight; the images are split by weight (remainders carried over classes)."""
    recipe_options: dict = dataclasses.field(default_factory=dict)
    """Options passed to every recipe that accepts them (backgrounds, template, llm_url, ...)."""
    images_per_class: int | None = 13
    """Images for every class; ignored when ``counts_from`` is given."""
    counts_from: str | None = None
    """Real per-class counts (seed 002 §5 keeps ImageNet's): the ImageNet train folder (images
    counted per wnid folder), the ILSVRC-2012 devkit's meta.mat (num_train_images), or a file of
    ``wnid count`` lines. Recorded in the plan header."""
    counts_multiplier: float = 1.0
    """Multiply the counts (``counts_from`` or ``images_per_class``), e.g. 10 for a 10x set."""
    require_counts: bool = False
    """Refuse to plan without ``counts_from`` (the seed-002 configs: the paper's per-class
    counts are ImageNet's, which every user brings)."""
    guidance: float = 7.5
    """Classifier-free guidance scale (papers: 7.5, or 2.0 for seed 002's best sets)."""
    steps: int = 50
    """Denoising steps (papers: 50)."""
    height: int = 512
    """Generated image height in pixels (multiple of 8)."""
    width: int = 512
    """Generated image width in pixels (multiple of 8)."""
    sampler: str = "pndm"
    """pndm (PLMS, seed 000) | ddim | dpmpp (DPM-Solver++)."""
    negative_prompt: str | None = None
    """Optional negative prompt for every row."""
    seed: int = 0
    """Master seed: row seeds and prompt draws derive from it."""
    from_images: str | None = None
    """One row per real image (seed 004 §2.4): an ImageFolder tree (ROOT/<class>/<image>) or a
    real .beton (synthclone pack), with the recipes image_variation and/or img2img_templates;
    images_per_class and counts_from do not apply. The classes are the class set's (matched to
    the folders / the .beton's classes by wnid, else by name)."""
    strength: float = 1.0
    """img2img strength of img2img_templates rows (seed 004 App. C: the image is diffused
    forward "for T steps": 1.0)."""

    def __post_init__(self):
        if not self.recipes:
            raise ValueError("no recipes: give at least one, e.g. recipes={'c_hc': 1.0}")
        for name, w in self.recipes.items():
            if not (isinstance(w, (int, float)) and w > 0):
                raise ValueError(f"recipe {name!r}: weight must be a positive number, got {w!r}")
        if self.counts_from is None and (self.images_per_class is None or self.images_per_class < 1):
            raise ValueError("images_per_class must be >= 1 (or give counts_from)")
        if not (math.isfinite(self.counts_multiplier) and self.counts_multiplier > 0):
            raise ValueError("counts_multiplier must be a finite number > 0")
        problem = sampling_problem(self.guidance, self.steps, self.height, self.width,
                                    self.sampler)
        if problem:
            raise ValueError(problem)
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)) \
                or not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength!r}")
        text = sorted(r for r in self.recipes if r not in IMAGE_RECIPES)
        if self.from_images and text:
            raise ValueError(f"--from-images makes image-conditioned rows: use the recipe(s) "
                             f"{' and/or '.join(IMAGE_RECIPES)} (got {', '.join(text)})")
        if self.from_images and self.counts_from:
            raise ValueError("--from-images makes one row per real image; drop --counts-from")


class CountsRequired(UserError, ValueError):
    """A config that keeps the real per-class counts was given none."""


def split_classes(sizes: list[int], weights: dict) -> list[dict]:
    """Split each class's images among the recipes by weight, carrying rounding remainders
    from class to class (error diffusion), so that every class gets exactly its size, each
    recipe's total is within one image of its exact share, and a recipe whose share of one
    class rounds to zero still appears in the plan (``c_hc=1, c_dc=2`` at 1 image per class:
    classes alternate instead of all going to ``c_dc``). Exact rational arithmetic; ties go to
    the recipe listed first."""
    names = list(weights)
    frac = {k: Fraction(weights[k]) for k in names}
    total = sum(frac.values())
    carry = {k: Fraction(0) for k in names}
    out = []
    for n in sizes:
        want = {k: n * frac[k] / total + carry[k] for k in names}
        parts = {k: max(0, math.floor(want[k])) for k in names}
        left = n - sum(parts.values())
        order = sorted(names, key=lambda k: (-(want[k] - parts[k]), names.index(k)))
        for k in order[:max(0, left)]:
            parts[k] += 1
        while sum(parts.values()) > n:  # only when carries went negative: take from the largest
            k = max(names, key=lambda k: (parts[k] - want[k], -names.index(k)))
            parts[k] -= 1
        for k in names:
            carry[k] = want[k] - parts[k]
        out.append(parts)
    return out


def make_recipes(names, options: dict) -> tuple[dict, list[str]]:
    """Build the named recipes from one pool of options; each takes the options it accepts.

    Returns the recipes and notes. An option that none of the recipes accepts is an error
    (``--template`` with ``c_hc``), except ``backgrounds``, which a shared config may set for
    recipes that have no background: that is accepted with a note.
    """
    from engine.prompts import base

    given = {k for k, v in options.items() if v is not None}
    used = set().union(*(base.accepted_options(n) for n in names)) if names else set()
    notes = []
    for k in sorted(given - used):
        if k in NOTE_ONLY_OPTIONS:
            notes.append(f"{k} is not used by the recipes {', '.join(names)} (only "
                         f"c_hc_inside_b and s1_mix take it); ignored")
    unused = sorted(k for k in given - used if k not in NOTE_ONLY_OPTIONS)
    if unused:
        raise base.RecipeError(f"option(s) {', '.join(unused)} not taken by any "
                               f"of the recipes {', '.join(names)}")
    pool = {k: v for k, v in options.items() if k in used}
    return {n: base.build_recipe(n, pool, strict=False) for n in names}, notes


NOTE_ONLY_OPTIONS = ("backgrounds", "backgrounds_url")
"""Recipe options given with recipes that do not take them: a note, not an error."""


def _config_dict(cfg: PlanConfig, recipes: dict) -> dict:
    d = dataclasses.asdict(cfg)
    d["recipe_config"] = {name: r.config() for name, r in recipes.items()}
    return d


def _class_sizes(cfg: PlanConfig, cs: ClassSet) -> tuple[list[int], dict | None]:
    """Images per class (after the multiplier) and the counts record for the header."""
    if cfg.counts_from is None:
        if cfg.require_counts:
            raise CountsRequired(
                "this config keeps the real per-class image counts (seed 002 §5): pass "
                "--counts-from PATH (the ImageNet train folder, or the ILSVRC-2012 devkit's "
                "meta.mat), or set counts_from in the plan: section")
        return [max(1, round(cfg.images_per_class * cfg.counts_multiplier))] * len(cs), None
    from engine.catalog.counts import read_counts

    keys = [c.wnid or c.name for c in cs]
    counts = read_counts(cfg.counts_from, keys)
    record = dict(counts.describe(keys), multiplier=cfg.counts_multiplier)
    sizes = [max(1, round(counts.counts[k] * cfg.counts_multiplier)) for k in keys]
    return sizes, record


def build_plan(cfg: PlanConfig, class_set: ClassSet | None = None, progress: bool = False) -> Plan:
    """Build the plan for ``cfg`` (class_set overrides ``cfg.classes`` if given)."""
    from engine.catalog import get_class_set

    image = sorted(set(cfg.recipes) & set(IMAGE_RECIPES))
    if image and not cfg.from_images:
        raise ConfigError(f"the recipe {image[0]} makes one row per real image: give the images "
                          "with --from-images DIR_OR_BETON (an ImageFolder tree or a packed "
                          ".beton; plan: from_images)")
    cs = class_set or get_class_set(cfg.classes, compact=cfg.compact_labels)
    if cfg.from_images:
        return _image_plan(cfg, cs, progress)
    recipes, notes = make_recipes(sorted(cfg.recipes), cfg.recipe_options)
    for cls in cs:
        for r in recipes.values():
            r.check(cls)
    for r in recipes.values():
        notes += [f"{r.name}: {n}" for n in r.notes(cs)]
    sizes, counts = _class_sizes(cfg, cs)
    splits = split_classes(sizes, {r: cfg.recipes[r] for r in recipes})
    empty = [r for r in recipes if not any(s[r] for s in splits)]
    if empty:
        notes.append(f"recipe(s) {', '.join(empty)} got no images: {sum(sizes)} images are too "
                     f"few for the weights {dict(sorted(cfg.recipes.items()))}")
    rows: list[PlanRow] = []
    it = zip(cs, splits)
    if progress:
        from tqdm import tqdm

        # No rate: a class takes microseconds for most recipes and seconds with an LLM, so
        # "class/s" says nothing; the bar only appears when planning takes a while.
        it = tqdm(it, total=len(cs), desc="plan", unit="class", delay=1.0,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} classes "
                             "[{elapsed}<{remaining}]")
    for cls, split in it:
        rows.extend(_class_rows(cfg, recipes, cls, split, start=len(rows)))
    header = {
        "config": _config_dict(cfg, recipes),
        "version": __version__,
        "class_set": cs.describe(),
        "class_names": class_names(cs),
        "recipes": sorted(recipes),
        "num_rows": len(rows),
        "hash": content_hash(rows),
    }
    if counts is not None:
        header["counts"] = counts
    stats = {name: r.stats() for name, r in recipes.items() if r.stats() is not None}
    if stats:
        header["recipe_stats"] = stats
    if notes:
        header["notes"] = notes
    return Plan(header, rows)


def class_names(cs: ClassSet) -> dict:
    """``{label: display name}`` of every class of the set, for the plan header (outside the
    rows' hash): generate stores them with its files, so that ``inspect``/``export`` name
    custom classes (JSON keys are strings)."""
    return {str(c.index): c.name for c in cs}


def _image_plan(cfg: PlanConfig, cs: ClassSet, progress: bool) -> Plan:
    """One row per real image (``engine.plan.images``)."""
    from engine.plan.images import RECIPE_PAPER, image_rows

    recipes = sorted(cfg.recipes)
    unknown = [r for r in recipes if r not in RECIPE_PAPER]
    if unknown:                       # PlanConfig checks this too; kept for direct callers
        raise ValueError(f"--from-images takes the recipes {', '.join(RECIPE_PAPER)}, not "
                         f"{', '.join(unknown)}")
    rows, extra, notes = image_rows(cfg, cs, recipes, progress)
    config = dataclasses.asdict(cfg)
    config["recipe_config"] = {r: {"name": r, "paper": RECIPE_PAPER[r]} for r in recipes}
    header = {"config": config, "version": __version__, "class_set": cs.describe(),
              "class_names": class_names(cs), "recipes": recipes, "num_rows": len(rows),
              "hash": content_hash(rows), **extra}
    if notes:
        header["notes"] = notes
    return Plan(header, rows)


def _class_rows(cfg: PlanConfig, recipes: dict, cls: ClassInfo, split: dict, start: int):
    key = cls.wnid or cls.name
    rows = []
    for name, k in split.items():
        if k == 0:
            continue
        recipe = recipes[name]
        seed = derive_seed("prompts", cfg.seed, recipe.seed_key or name, key)
        prompts = recipe.prompts(cls, k, seed)
        if len(prompts) != k:
            raise RuntimeError(f"recipe {name!r} returned {len(prompts)} prompts for {key}, "
                               f"expected {k}")
        for p in prompts:
            sid = start + len(rows)
            rows.append(PlanRow(sample_id=sid, label=cls.index, wnid=cls.wnid, recipe=name,
                                prompt=p, seed=row_seed(cfg.seed, sid), guidance=cfg.guidance,
                                steps=cfg.steps, height=cfg.height, width=cfg.width,
                                sampler=cfg.sampler, negative_prompt=cfg.negative_prompt))
    return rows
