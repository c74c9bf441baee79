"""``synthclone plan``: build a generation plan and write it (JSONL), with a summary."""
from __future__ import annotations

import argparse
import sys

from engine.catalog import ClassLookupError
from engine.config import load_yaml, resolve
from engine.plan import PlanConfig, build_plan, write_plan
from engine.prompts.llm import LLMError


def _recipe_arg(text: str) -> tuple[str, float]:
    name, _, weight = text.partition("=")
    try:
        return name.strip(), float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=WEIGHT, got {text!r}") from None


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthclone plan", description="Build a deterministic generation plan.",
        epilog="example: synthclone plan --classes imagenet100 --recipe c_hc_inside_b "
               "--backgrounds places365.txt --images-per-class 13 --out plan.jsonl")
    p.add_argument("--config", help="YAML file of PlanConfig options (CLI flags override it)")
    p.add_argument("--classes", help="imagenet1k | imagenet100 | imagenet-r | imagenet-a | FILE | "
                                     "comma-separated wnids/names (default imagenet100)")
    p.add_argument("--compact-labels", action="store_true", default=None,
                   help="renumber labels 0..n-1 instead of ImageNet-1K indices")
    p.add_argument("--recipe", action="append", type=_recipe_arg, metavar="NAME[=WEIGHT]",
                   help="prompt recipe (repeatable; weights split each class's images)")
    p.add_argument("--images-per-class", type=int)
    p.add_argument("--counts-file", help="'wnid count' lines, e.g. ImageNet's real per-class counts")
    p.add_argument("--multiplier", type=float, dest="counts_multiplier",
                   help="multiply per-class counts (e.g. 10 for a 10x set)")
    p.add_argument("--guidance", type=float)
    p.add_argument("--steps", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--sampler", help="pndm | ddim | dpmpp")
    p.add_argument("--negative-prompt")
    p.add_argument("--seed", type=int, help="master seed")
    g = p.add_argument_group("recipe options (passed to the recipes that take them)")
    g.add_argument("--backgrounds", help="Places365 category file for c_hc_inside_b "
                                         "(default: downloaded once into the cache)")
    g.add_argument("--template", help="prompt template containing {c}")
    g.add_argument("--llm-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--llm-model", help="model name on the LLM server")
    g.add_argument("--llm-retries", type=int, help="further attempts per LLM request (default 4)")
    g.add_argument("--llm-timeout", type=float, dest="llm_timeout_s",
                   help="seconds per LLM request (default 120)")
    g.add_argument("--per-class", type=int, help="distinct cd/sd descriptions per class (600)")
    g.add_argument("--meanings", help="JSON wnid -> meaning from label-ambiguity resolution")
    p.add_argument("--out", required=True, help="plan file to write (.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing plan file")
    p.add_argument("--examples", type=int, default=3, help="example prompts to show per recipe")
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
    for name in sorted(by_recipe):
        rows = [r for r in plan.rows if r.recipe == name]
        step = max(1, len(rows) // max(1, examples))
        print(f"examples for {name}:", file=out)
        for r in rows[::step][:examples]:
            print(f"  [{r.wnid}] {r.prompt}", file=out)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in (
        "classes", "compact_labels", "images_per_class", "counts_file", "counts_multiplier",
        "guidance", "steps", "height", "width", "sampler", "negative_prompt", "seed")}
    if args.recipe:
        overrides["recipes"] = dict(args.recipe)
    options = {k: getattr(args, k) for k in (
        "backgrounds", "template", "llm_url", "llm_model", "llm_retries", "llm_timeout_s",
        "per_class", "meanings") if getattr(args, k) is not None}
    try:
        section = "plan" if args.config and "plan" in load_yaml(args.config) else None
        cfg = resolve(PlanConfig, args.config, overrides, section=section)
        cfg.recipe_options = {**cfg.recipe_options, **options}
        plan = build_plan(cfg, progress=True)
        write_plan(plan, args.out, overwrite=args.overwrite)
    except ClassLookupError as exc:
        print(f"synthclone plan: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError, LLMError) as exc:
        print(f"synthclone plan: {exc}", file=sys.stderr)
        return 2
    summarize(plan, args.examples)
    print(f"wrote {args.out}")
    return 0
