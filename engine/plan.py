"""The generation plan: which image to generate, with which prompt, seed and sampler settings.

A plan is a list of rows ``(sample_id, label, wnid, recipe, prompt, seed, guidance, steps,
height, width, sampler)`` (+ optional ``negative_prompt``, ``init_image``, ``strength``) and a
header holding the resolved :class:`PlanConfig`, the package version and a content hash.

Determinism: the same config gives a byte-identical plan file.  A row's ``seed`` is a function
of (master seed, sample_id) only, so any shard regenerates exactly the images of the full plan.
Prompts are drawn per (recipe, class) from a seed derived from (master seed, recipe, class).

File format (JSON Lines, UTF-8): line 1 ``{"synthclone_plan": 1, "header": {...}}``, then one
row per line, keys sorted.  The header's ``hash`` (:func:`content_hash`) is the SHA-256 of the
row lines: the plan's identity, which run folders record.  A shard's file (``Plan.shard``) keeps
the full plan's ``hash`` and adds ``shard: [i, n]`` and ``shard_hash``, the hash of its own rows.
:func:`read_plan` checks the format number, the hash, and every row's values.

This module is the one home of the plan contracts: :data:`SAMPLERS`, :func:`content_hash`,
:func:`check_shard`, :func:`check_row`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from fractions import Fraction
from typing import TYPE_CHECKING

from engine import __version__
from engine.errors import ConfigError, UserError
from engine.paths import atomic_write

if TYPE_CHECKING:  # the catalog (numpy, timm tables) is imported when a plan is built
    from engine.catalog import ClassInfo, ClassSet

PLAN_FORMAT = 1
"""Version of the plan file layout (line 1's ``synthclone_plan``)."""
SAMPLERS = ("pndm", "ddim", "dpmpp")
"""Sampler names a plan row may carry: pndm (PLMS), ddim, dpmpp (DPM-Solver++).
``engine.generate`` maps each to a diffusers scheduler."""
SEED_BITS = 63


class PlanFileError(UserError, ValueError):
    """A plan file that cannot be used: not a plan, another format, modified, or a bad row."""


def content_hash(rows) -> str:
    """The plan hash: SHA-256 (hex) of the rows' JSON lines joined by newlines."""
    return hashlib.sha256("\n".join(r.to_json() for r in rows).encode()).hexdigest()


def check_shard(i: int, n: int) -> tuple[int, int]:
    """``(i, n)`` if it names shard i of n (``0 <= i < n``); else :class:`ConfigError`."""
    if isinstance(i, bool) or isinstance(n, bool) or not (isinstance(i, int)
                                                         and isinstance(n, int)):
        raise ConfigError(f"shard {i!r}/{n!r}: expected whole numbers I/N")
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n (e.g. --shard 0/4 .. 3/4)")
    return i, n


@dataclasses.dataclass(frozen=True)
class PlanRow:
    """One image to generate."""

    sample_id: int
    label: int
    wnid: str | None
    recipe: str
    prompt: str
    seed: int
    guidance: float
    steps: int
    height: int
    width: int
    sampler: str
    negative_prompt: str | None = None
    init_image: str | None = None
    strength: float | None = None

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        for k in ("negative_prompt", "init_image", "strength"):
            if d[k] is None:
                del d[k]
        return json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


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
        problem = _sampling_problem(self.guidance, self.steps, self.height, self.width,
                                    self.sampler)
        if problem:
            raise ValueError(problem)


def _sampling_problem(guidance, steps, height, width, sampler) -> str | None:
    """What is wrong with the sampling settings of a config or a row (None if nothing)."""
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
            or not math.isfinite(guidance) or guidance < 0:
        return f"guidance must be a finite number >= 0, got {guidance!r}"
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        return f"steps must be a whole number >= 1, got {steps!r}"
    for side, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 8:
            return f"{side} must be a positive multiple of 8, got {v!r}"
    if sampler not in SAMPLERS:
        return f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"
    return None


def check_row(row: "PlanRow") -> None:
    """Raise ``ValueError`` naming the first bad value of a row (types and ranges)."""
    for name in ("sample_id", "label", "seed"):
        v = getattr(row, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
    if row.seed >= 1 << 64:
        raise ValueError(f"seed must be < 2**64, got {row.seed}")
    for name in ("recipe", "prompt"):
        if not isinstance(getattr(row, name), str):
            raise ValueError(f"{name} must be text, got {getattr(row, name)!r}")
    for name in ("wnid", "negative_prompt", "init_image"):
        v = getattr(row, name)
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{name} must be text or absent, got {v!r}")
    problem = _sampling_problem(row.guidance, row.steps, row.height, row.width, row.sampler)
    if problem:
        raise ValueError(problem)
    if row.strength is not None:
        s = row.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1:
            raise ValueError(f"strength must be in (0, 1], got {s!r}")
        if row.init_image is None:
            raise ValueError("strength is given but init_image is not")


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (stable across runs, platforms and Python versions)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << SEED_BITS) - 1)


def row_seed(master_seed: int, sample_id: int) -> int:
    """The generation seed of a row: depends only on (master seed, sample_id)."""
    return derive_seed("row", master_seed, sample_id)


class Plan:
    """Rows and a header; see the module docstring."""

    def __init__(self, header: dict, rows: list[PlanRow]):
        self.header = header
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def hash(self) -> str:
        return self.header["hash"]

    @property
    def recipes(self) -> list[str]:
        return self.header["recipes"]

    def shard(self, i: int, n: int) -> "Plan":
        """Shard i of n: disjoint, together covering the plan, balanced within every class
        and in total (sizes differ by at most one row).

        Rows keep their global sample_id (so shards merge back by id).  Row k of a class goes to
        shard ``(start + k) % n``, where ``start`` counts the rows of the classes before it: a
        round-robin that continues across classes, so remainders spread over the shards.
        """
        check_shard(i, n)
        start, total = {}, 0
        for label, count in self.counts("label").items():
            start[label], total = total, total + count
        seen: dict[int, int] = {}
        rows = []
        for r in self.rows:
            k = seen.get(r.label, 0)
            seen[r.label] = k + 1
            if (start[r.label] + k) % n == i:
                rows.append(r)
        header = dict(self.header, shard=[i, n], num_rows=len(rows),
                      shard_hash=content_hash(rows))
        return Plan(header, rows)

    def counts(self, key: str) -> dict:
        out: dict = {}
        for r in self.rows:
            k = getattr(r, key)
            out[k] = out.get(k, 0) + 1
        return out


# ----------------------------------------------------------------------------- building
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

    cs = class_set or get_class_set(cfg.classes, compact=cfg.compact_labels)
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


def plan_from_rows(rows, **header) -> Plan:
    """A plan of hand-made rows (tests, benchmarks): ``num_rows``, ``hash`` and ``recipes``
    filled in; other header keys as given (``config``, ``version``, ...)."""
    rows = list(rows)
    header = {"config": {}, "version": __version__,
              "recipes": sorted({r.recipe for r in rows}), **header,
              "num_rows": len(rows), "hash": content_hash(rows)}
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


# ------------------------------------------------------------------------------ file I/O
def write_plan(plan: Plan, path: str, overwrite: bool = False) -> None:
    """Write atomically (temporary file, then rename); refuse to replace unless ``overwrite``."""
    head = json.dumps({"synthclone_plan": PLAN_FORMAT, "header": plan.header}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as f:
        f.write(head + "\n")
        for r in plan.rows:
            f.write(r.to_json() + "\n")


def read_plan(path: str, check_hash: bool = True) -> Plan:
    """Read and check a plan file (format number, hash, every row's values).

    ``check_hash=False`` skips only the hash (a plan you edited on purpose); malformed files and
    bad values are always refused with :class:`PlanFileError` naming the file and line."""
    if os.path.isdir(path):
        raise PlanFileError(f"{path} is a folder; give a plan file (synthclone plan ... --out "
                            "plan.jsonl)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"plan file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except UnicodeDecodeError:
        raise PlanFileError(f"{path}: not a synthclone plan (not UTF-8 text)") from None
    header = _read_header(path, first)
    rows = [_read_row(path, lineno, ln) for lineno, ln in enumerate(lines, 2)]
    if len(rows) != header.get("num_rows"):
        raise PlanFileError(f"{path}: header says {header.get('num_rows')} rows, file has "
                            f"{len(rows)} (truncated?)")
    ids = [r.sample_id for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PlanFileError(f"{path}: sample_id {dup} appears more than once")
    if "shard" in header:
        try:
            check_shard(*header["shard"])
        except (TypeError, ConfigError) as exc:
            raise PlanFileError(f"{path}: bad 'shard' in the header ({exc})") from None
    if check_hash:
        key = "shard_hash" if "shard" in header else "hash"
        if not isinstance(header.get(key), str):
            raise PlanFileError(f"{path}: the header has no '{key}' to check the rows against "
                                "(write the plan with this version of synthclone)")
        if content_hash(rows) != header[key]:
            raise PlanFileError(f"{path}: content hash mismatch: the rows were modified or the "
                                "file is corrupt; make the plan again with synthclone plan")
    return Plan(header, rows)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _read_header(path: str, line: str) -> dict:
    try:
        head = json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:
        raise PlanFileError(f"{path}: not a synthclone plan (line 1 is not a JSON header: "
                            f"{exc})") from None
    if not isinstance(head, dict) or "synthclone_plan" not in head:
        raise PlanFileError(f"{path}: not a synthclone plan file (line 1 must be "
                            '{"synthclone_plan": 1, "header": {...}})')
    fmt = head["synthclone_plan"]
    if fmt != PLAN_FORMAT:
        newer = isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > PLAN_FORMAT
        raise PlanFileError(
            f"{path}: plan format {fmt!r} " + (f"is newer than this synthclone "
                                               f"{__version__} reads ({PLAN_FORMAT}); upgrade "
                                               "synthclone" if newer else
                                               f"is not one this synthclone reads "
                                               f"({PLAN_FORMAT}); make the plan again"))
    header = head.get("header")
    if not isinstance(header, dict):
        raise PlanFileError(f"{path}: line 1 has no \"header\" object (not a complete plan "
                            "file)")
    if not isinstance(header.get("version"), str):
        raise PlanFileError(f"{path}: the header does not say which synthclone version wrote "
                            "it (\"version\"); make the plan again")
    if isinstance(header.get("num_rows"), bool) or not isinstance(header.get("num_rows"), int):
        raise PlanFileError(f"{path}: the header has no row count (\"num_rows\")")
    if not isinstance(header.get("recipes", []), list):
        raise PlanFileError(f"{path}: the header's \"recipes\" must be a list")
    return header


_ROW_FIELDS = {f.name for f in dataclasses.fields(PlanRow)}
_ROW_REQUIRED = {f.name for f in dataclasses.fields(PlanRow)
                 if f.default is dataclasses.MISSING}


def _read_row(path: str, lineno: int, line: str) -> PlanRow:
    where = f"{path}:{lineno}"
    try:
        d = json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:
        raise PlanFileError(f"{where}: bad plan row (not JSON: {exc})") from None
    if not isinstance(d, dict):
        raise PlanFileError(f"{where}: bad plan row (expected a JSON object, got "
                            f"{type(d).__name__})")
    missing = sorted(_ROW_REQUIRED - set(d))
    if missing:
        raise PlanFileError(f"{where}: bad plan row (missing {', '.join(missing)})")
    unknown = sorted(set(d) - _ROW_FIELDS)
    if unknown:
        raise PlanFileError(f"{where}: bad plan row (unknown key(s) {', '.join(unknown)})")
    row = PlanRow(**d)
    try:
        check_row(row)
    except ValueError as exc:
        raise PlanFileError(f"{where}: bad plan row ({exc})") from None
    return row
