"""``synthclone plan``: build a generation plan and write it (JSONL), with a summary.

Flags come from :class:`engine.plan.PlanConfig` (help from its field docs); ``--recipe
NAME=WEIGHT`` and the recipe options are custom flags merged into the config before its one
validation. Options resolve as: PlanConfig defaults -> ``--config FILE``'s ``plan:`` section ->
``--set key=value`` -> flags.
"""
from __future__ import annotations

import argparse
import os
import sys

from engine.config import (ArgumentParser, add_config_args, add_config_file_args, add_out_arg,
                           add_overwrite_arg, add_progress_arg, config_from_args, finite_float,
                           int_at_least)
from engine.errors import ConfigError
from engine.plan import PlanConfig

RECIPE_OPTION_FLAGS = {"backgrounds": "--backgrounds", "template": "--template",
                       "llm_url": "--llm-url", "llm_model": "--llm-model",
                       "llm_retries": "--llm-retries", "llm_timeout_s": "--llm-timeout",
                       "per_class": "--descriptions-per-class", "meanings": "--meanings"}
"""Recipe option -> the plan flag that sets it (each passed to the recipes that take it)."""
RECIPE_OPTIONS = tuple(RECIPE_OPTION_FLAGS)


def option_flag(option: str) -> str:
    """How to set a recipe option on the plan command line: its flag, else ``--set``."""
    return RECIPE_OPTION_FLAGS.get(option) or f"--set recipe_options.{option}=VALUE"


def _recipe_arg(text: str) -> tuple[str, float]:
    name, _, weight = text.partition("=")
    try:
        value = finite_float(weight) if weight else 1.0
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=WEIGHT, got {text!r}") from None
    if not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=WEIGHT, got {text!r}")
    return name.strip(), value


def add_recipe_arg(parser, default: str) -> None:
    """``--recipe NAME[=WEIGHT]`` (repeatable): the recipes of a plan and their weights."""
    parser.add_argument("--recipe", action="append", type=_recipe_arg, metavar="NAME[=WEIGHT]",
                        help="prompt recipe (repeatable; weights split each class's images; "
                             f"synthclone recipes lists them) [default: {default}]")


def add_llm_args(parser) -> None:
    """``--llm-url --llm-model --llm-retries --llm-timeout``: the same four flags in every
    command that can call an LLM (``plan``, ``meanings``); defaults from ``LLMConfig``."""
    parser.add_argument("--llm-url", help="OpenAI-compatible chat-completions server, e.g. "
                                          "http://127.0.0.1:8000/v1 (default: no LLM)")
    parser.add_argument("--llm-model", help="model name on the LLM server")
    parser.add_argument("--llm-retries", type=int, metavar="INT",
                        help="further attempts per failed LLM request [default: 4]")
    parser.add_argument("--llm-timeout", type=finite_float, dest="llm_timeout_s",
                        metavar="SECONDS", help="seconds to wait for one LLM response "
                                                "[default: 120]")


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone plan", description="Build a deterministic generation plan.",
        epilog="examples: synthclone plan --classes imagenet100 --recipe c_hc_inside_b "
               "--backgrounds categories_places365.txt --images-per-class 13 --out plan.jsonl; "
               "one row per real image (seed 004): synthclone plan --from-images "
               "imagenet100/train --recipe image_variation --guidance 3 --out plan.jsonl")
    add_out_arg(p, "plan file to write (.jsonl)")
    add_overwrite_arg(p, "an existing plan file (without it: refuse)")
    add_config_file_args(p, "plan", example="steps=20")
    add_recipe_arg(p, default="c_hc")
    add_config_args(p, PlanConfig, aliases={"counts_multiplier": ("--multiplier",),
                                            "counts_from": ("--counts-file",)})
    g = p.add_argument_group("recipe options (passed to the recipes that take them)")
    g.add_argument("--backgrounds", help="Places365 category file for c_hc_inside_b "
                                         "(default: downloaded once into the cache)")
    g.add_argument("--template", help="prompt template containing {c} (class name) and/or "
                                      "{lemmas} (all its lemmas, comma-joined)")
    add_llm_args(g)
    g.add_argument("--descriptions-per-class", type=int, dest="per_class", metavar="INT",
                   help="distinct cd/sd descriptions per class [default: 600]")
    g.add_argument("--per-class", type=int, dest="per_class", help=argparse.SUPPRESS)
    g.add_argument("--meanings", help="JSON wnid -> meaning from synthclone meanings")
    p.add_argument("--examples", type=int_at_least(0), default=3,
                   help="example prompts to show per recipe")
    add_progress_arg(p)
    return p


def plan_summary(plan, examples: int = 3) -> dict:
    """A JSON-able summary of a plan: rows per recipe and per class, the sampling settings of
    its rows, what its header records (class set, counts, recipe options, notes, LLM answer
    stats) and ``examples`` prompts per recipe. ``synthclone plan`` prints it after writing a
    plan; ``synthclone inspect plan.jsonl`` prints it for any plan file."""
    from collections import Counter

    h, rows = plan.header, plan.rows
    cfg = h.get("config") or {}
    per_class = Counter((r.label, r.wnid) for r in rows)
    names = _imagenet_names({w for _, w in per_class if w})
    by_recipe = Counter(r.recipe for r in rows)
    examples_of = {}
    for name in sorted(by_recipe):
        of = [r for r in rows if r.recipe == name]
        step = max(1, len(of) // max(1, examples))
        examples_of[name] = [{"wnid": r.wnid, "label": r.label, "prompt": r.prompt,
                              **({"init_image": r.init_image} if r.init_image else {})}
                             for r in of[::step][:examples]]

    def spread(values) -> dict:
        return {str(k): n for k, n in sorted(Counter(values).items(), key=lambda kv: str(kv[0]))}

    settings = {
        "sampler": spread(r.sampler for r in rows), "steps": spread(r.steps for r in rows),
        "guidance": spread(f"{r.guidance:g}" for r in rows),
        "size": spread(f"{r.height}x{r.width}" for r in rows),
        "negative_prompt": spread(r.negative_prompt or "none" for r in rows),
        "image_conditioned": sum(r.init_image is not None for r in rows),
        "seed": cfg.get("seed"),
    }
    out = {"kind": "plan", "rows": len(rows), "hash": plan.hash, "version": h.get("version"),
           "shard": h.get("shard"), "recipes": dict(sorted(by_recipe.items())),
           "classes": [{"label": label, "wnid": wnid, "name": names.get(wnid), "rows": n}
                       for (label, wnid), n in sorted(per_class.items(),
                                                      key=lambda kv: (kv[0][0], kv[0][1] or ""))],
           "settings": settings, "class_set": h.get("class_set"),
           "classes_spec": cfg.get("classes"),
           "recipe_options": {k: v for k, v in sorted((cfg.get("recipe_options") or {}).items())
                              if v is not None},
           "counts": h.get("counts"), "real_images": h.get("real_images"),
           "notes": list(h.get("notes", ())),
           "recipe_stats": h.get("recipe_stats") or {}, "examples": examples_of}
    return out


def _imagenet_names(wnids) -> dict:
    """wnid -> ImageNet-1K class name for the wnids that are ImageNet classes."""
    if not wnids:
        return {}
    from engine.catalog import class_names, imagenet_index

    index, names = imagenet_index(), class_names()
    return {w: names[index[w]] for w in wnids if w in index}


def _spread_text(values: dict) -> str:
    if len(values) == 1:
        return next(iter(values))
    return ", ".join(f"{k} ({n} rows)" for k, n in values.items())


def format_plan_summary(d: dict, classes_shown: int = 5) -> list[str]:
    """The lines of a :func:`plan_summary`."""
    classes = d["classes"]
    lines = [f"plan: {d['rows']} rows, {len(classes)} classes, hash {d['hash'][:16]}"
             + (f" (shard {d['shard'][0]}/{d['shard'][1]})" if d.get("shard") else "")]
    lines.append("rows per recipe:")
    lines += [f"  {name:<22} {n}" for name, n in d["recipes"].items()]
    if classes:
        counts = sorted(c["rows"] for c in classes)
        lines.append(f"rows per class: min {counts[0]}, max {counts[-1]}")
        shown = [f"{c['wnid'] or 'label ' + str(c['label'])}"
                 + (f" {c['name']}" if c["name"] else "") + f": {c['rows']}"
                 for c in classes[:classes_shown]]
        lines.append("  " + ", ".join(shown) + (" ..." if len(classes) > classes_shown else ""))
    cs = d.get("class_set") or {}
    if d.get("classes_spec") is not None:
        lines.append(f"class set: {d['classes_spec']} ({cs.get('num_classes', len(classes))} "
                     f"classes, labels of {cs.get('num_labels', '?')})")
    s = d["settings"]
    lines.append(f"settings: sampler {_spread_text(s['sampler'])}; steps "
                 f"{_spread_text(s['steps'])}; guidance {_spread_text(s['guidance'])}; size "
                 f"{_spread_text(s['size'])} (height x width); negative prompt "
                 f"{_spread_text(s['negative_prompt'])}; master seed {s['seed']}"
                 + (f"; {s['image_conditioned']} image-conditioned rows"
                    if s["image_conditioned"] else ""))
    if d.get("recipe_options"):
        lines.append("recipe options: " + ", ".join(f"{k}={v}" for k, v in
                                                    d["recipe_options"].items()))
    real = d.get("real_images")
    if real:
        lines.append(f"real images: {real['source']} ({real['kind']}; {real['images']} images,"
                     f" one row each for the plan's classes: {real['rows']} rows; generate reads"
                     " them from there unless --real says otherwise)")
    counts = d.get("counts")
    if counts:
        lines.append(f"real per-class counts from {counts['source']} ({counts['kind']}): "
                     f"{counts['total']} images x {counts['multiplier']:g}")
    return lines


def summarize(plan, examples: int = 3, out=None) -> None:
    """Print :func:`plan_summary`: counts, settings, LLM answer stats, example prompts."""
    out = out or sys.stdout
    d = plan_summary(plan, examples)
    print("\n".join(format_plan_summary(d)), file=out)
    print_examples(d, out)


def print_examples(d: dict, out) -> None:
    """LLM answer stats per recipe, then the example prompts of :func:`plan_summary`."""
    for name, stats in sorted(d["recipe_stats"].items()):
        print_recipe_stats(name, stats, out)
    for name, rows in d["examples"].items():
        if not rows:
            continue
        print(f"examples for {name}:", file=out)
        for r in rows:
            image = f"(image {r['init_image']}) " if r.get("init_image") else ""
            print(f"  [{r['wnid'] or 'label ' + str(r['label'])}] {image}{r['prompt']}", file=out)


def print_recipe_stats(name: str, stats: dict, out) -> None:
    """The LLM answer summary of a recipe: totals, then the classes where answers needed work."""
    from engine.prompts.answers import STAT_KEYS

    totals = {k: sum(s.get(k, 0) for s in stats.values()) for k in STAT_KEYS}
    print(f"{name}: LLM answers for {len(stats)} classes: "
          + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items()), file=out)
    worst = sorted(stats.items(), key=lambda kv: (-(kv[1].get("dropped", 0)
                                                    + kv[1].get("class_inserted", 0)), kv[0]))
    for key, s in worst[:5]:
        if s.get("dropped", 0) or s.get("class_inserted", 0):
            print(f"  {key}: " + ", ".join(f"{s.get(k, 0)} {k.replace('_', ' ')}"
                                           for k in STAT_KEYS), file=out)


def print_notes(plan, err=None) -> None:
    """Notes of the plan header on stderr; warnings (not the paper's method) stand out."""
    err = err or sys.stderr
    for note in plan.header.get("notes", ()):
        loud = "WARNING" if "not the paper" in note else "note"
        print(f"synthclone plan: {loud}: {note}", file=err)


def check_output(path: str, overwrite: bool, flag: str = "--out") -> None:
    """Fail before any work if the output cannot be written as asked."""
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a folder; give a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    extra = {f"recipe_options.{k}": getattr(args, k) for k in RECIPE_OPTIONS}
    if args.recipe:
        extra["recipes"] = dict(args.recipe)
    cfg = config_from_args(PlanConfig, args, section="plan", extra=extra)
    check_output(args.out, args.overwrite)
    from engine.plan import build_plan, write_plan

    plan = build_plan(cfg, progress=args.progress)
    write_plan(plan, args.out, overwrite=args.overwrite)
    summarize(plan, args.examples)
    print_notes(plan)
    print(f"wrote {args.out}")
    return 0
