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
                           add_overwrite_arg, add_progress_arg, config_from_args, finite_float)
from engine.errors import ConfigError
from engine.plan import PlanConfig

RECIPE_OPTIONS = ("backgrounds", "template", "llm_url", "llm_model", "llm_retries",
                  "llm_timeout_s", "per_class", "meanings")
"""Recipe options the plan command has flags for (each passed to the recipes that take it)."""


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
        epilog="example: synthclone plan --classes imagenet100 --recipe c_hc_inside_b "
               "--backgrounds places365.txt --images-per-class 13 --out plan.jsonl")
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
    p.add_argument("--examples", type=int, default=3, help="example prompts to show per recipe")
    add_progress_arg(p)
    return p


def summarize(plan, examples: int = 3, out=None) -> None:
    out = out or sys.stdout
    by_recipe, by_class = plan.counts("recipe"), plan.counts("wnid")
    print(f"plan: {len(plan)} rows, {len(by_class)} classes, hash {plan.hash[:16]}", file=out)
    print("rows per recipe:", file=out)
    for name in sorted(by_recipe):
        print(f"  {name:<22} {by_recipe[name]}", file=out)
    vals = sorted(by_class.values())
    print(f"rows per class: min {vals[0]}, max {vals[-1]}", file=out)
    shown = list(by_class.items())[:5]
    print("  " + ", ".join(f"{w}: {n}" for w, n in shown) + (" ..." if len(by_class) > 5 else ""),
          file=out)
    counts = plan.header.get("counts")
    if counts:
        print(f"real per-class counts from {counts['source']} ({counts['kind']}): "
              f"{counts['total']} images x {counts['multiplier']:g}", file=out)
    for name, stats in sorted(plan.header.get("recipe_stats", {}).items()):
        print_recipe_stats(name, stats, out)
    for name in sorted(by_recipe):
        rows = [r for r in plan.rows if r.recipe == name]
        step = max(1, len(rows) // max(1, examples))
        print(f"examples for {name}:", file=out)
        for r in rows[::step][:examples]:
            print(f"  [{r.wnid}] {r.prompt}", file=out)


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
