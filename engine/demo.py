"""``synthclone demo``: the README's main job on the built-in default.

Plans a small synthetic clone of a few ImageNet classes (recipe "c_hc": class name + hypernym,
offline through WordNet), generates it with the ``tiny`` random-weight model into a .beton, and
prints counts per class, images/s and where the files are. Its settings are the ``plan:`` and
``generate:`` sections of ``engine/configs/tiny_demo.yaml``; the flags below override them.
"""
from __future__ import annotations

import dataclasses
import os
import shutil

from engine.config import (ArgumentParser, add_config_args, add_out_arg, add_overwrite_arg,
                           config_from_args, load_section)
from engine.generate.config import GenerateConfig
from engine.plan import PlanConfig
from engine.plan_cli import add_recipe_arg

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "tiny_demo.yaml")
PLAN_FLAGS = ("classes", "images_per_class", "steps", "guidance", "sampler", "seed")
"""PlanConfig fields the demo has flags for (the rest: --set is not offered; use --config)."""
GENERATE_FLAGS = ("model", "batch_size", "device", "dtype", "store_size", "writer_workers",
                  "progress")
"""GenerateConfig fields the demo has flags for."""


def _others(cls, keep) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - set(keep)


def get_args_parser(config: str = DEFAULT_CONFIG) -> ArgumentParser:
    p = ArgumentParser(prog="synthclone demo", description=(
        "Plan and generate a small synthetic clone with the tiny random-weight model; settings "
        "from engine/configs/tiny_demo.yaml, flags override them."),
                       epilog="example: synthclone demo --out runs/demo --overwrite "
                              "--images-per-class 4")
    add_out_arg(p, "demo folder (plan.jsonl, clone.beton, clone.run/)", default="runs/demo")
    add_overwrite_arg(p, "a previous demo in --out (without it: a rerun reports it complete)")
    p.add_argument("--config", metavar="FILE.yaml", default=config,
                   help="YAML config whose 'plan:' and 'generate:' sections replace the demo's "
                        "(flags override it) [default: engine/configs/tiny_demo.yaml]")
    add_recipe_arg(p, default=", ".join(load_section(config, "plan").get("recipes", {})))
    p.add_argument("--size", type=int, metavar="INT", help="generated height = width in pixels")
    add_config_args(p, PlanConfig, section="plan", exclude=_others(PlanConfig, PLAN_FLAGS),
                    defaults=load_section(config, "plan"))
    add_config_args(p, GenerateConfig, section="generate",
                    exclude=_others(GenerateConfig, GENERATE_FLAGS),
                    flags={"writer_workers": ("--workers",)},
                    aliases={"store_size": ("--max-resolution",)},
                    defaults=load_section(config, "generate"))
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    extra = {"height": args.size, "width": args.size}
    if args.recipe:
        extra["recipes"] = dict(args.recipe)
    plan_cfg = config_from_args(PlanConfig, args, section="plan", extra=extra, assignments=[])
    gen_cfg = config_from_args(GenerateConfig, args, section="generate", assignments=[])
    from engine.generate.runner import generate
    from engine.plan import build_plan, write_plan

    plan_path = os.path.join(args.out, "plan.jsonl")
    beton = os.path.join(args.out, "clone.beton")
    if args.overwrite:
        for p in (beton, beton + ".partial", beton + ".journal"):
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(os.path.join(args.out, "clone.run"), ignore_errors=True)
    plan = build_plan(plan_cfg)
    write_plan(plan, plan_path, overwrite=True)
    summary = generate(plan, beton, gen_cfg)
    from engine.catalog import class_names, imagenet_index

    index, imagenet_names = imagenet_index(), class_names()
    names = {r.label: f"{r.wnid} {imagenet_names[index[r.wnid]]}" if r.wnid in index
             else (r.wnid or "") for r in plan.rows}
    recipes = ", ".join(sorted(plan_cfg.recipes))
    print(f"\nplan: {len(plan)} rows ({recipes}), hash {plan.hash[:16]} -> {plan_path}")
    if summary["status"] == "already_complete":
        print(f"{beton} is already complete (pass --overwrite to generate it again)")
    else:
        print(f"generated with {gen_cfg.model!r}: {summary['written']} images at "
              f"{summary['images_per_s']:.2f} images/s (stage split {summary['stage_split']})")
    print("images per class:")
    for label, n in summary["per_class"].items():
        print(f"  {label:>4} {names[int(label)]}: {n}")
    run = os.path.splitext(beton)[0] + ".run"
    print(f"dataset: {beton}\nrun folder: {run} (config.yaml, summary.json, throughput.jsonl, "
          "contact_sheet.png)")
    per_class = max(1, len(plan) // max(1, len(names)))
    print("example prompts: " + " | ".join(r.prompt for r in plan.rows[::per_class][:3]))
    return 0
