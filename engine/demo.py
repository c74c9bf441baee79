"""``synthclone demo``: the README's main job on the built-in default.

Plans a small synthetic clone of a few ImageNet classes (recipe "c_hc": class name + hypernym,
offline through WordNet), generates it with the ``tiny`` random-weight model into a .beton, and
prints counts per class, images/s and where the files are.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

DEMO_CLASSES = "tench,goldfish,great white shark,tiger shark"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthclone demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--classes", default=DEMO_CLASSES, help="comma-separated classes")
    p.add_argument("--recipe", default="c_hc", help="prompt recipe (c_hc or c_dc work offline)")
    p.add_argument("--images-per-class", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=64, help="generated height = width")
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--overwrite", action="store_true", help="replace a previous demo in --out")
    return p


def main(argv=None) -> int:
    from engine.generate.config import GenerateConfig
    from engine.generate.runner import GenerateError, generate
    from engine.plan import PlanConfig, build_plan, write_plan

    args = get_args_parser().parse_args(argv)
    plan_path = os.path.join(args.out, "plan.jsonl")
    beton = os.path.join(args.out, "clone.beton")
    if args.overwrite:
        for p in (beton, beton + ".partial", beton + ".journal"):
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(os.path.join(args.out, "clone.run"), ignore_errors=True)
    try:
        plan = build_plan(PlanConfig(classes=args.classes, recipes={args.recipe: 1.0},
                                     images_per_class=args.images_per_class, guidance=7.5,
                                     steps=args.steps, height=args.size, width=args.size,
                                     sampler="dpmpp", seed=0))
        write_plan(plan, plan_path, overwrite=True)
        cfg = GenerateConfig(model=args.model, batch_size=args.batch_size, store_size=None)
        summary = generate(plan, beton, cfg)
    except (GenerateError, ValueError, FileExistsError) as exc:
        print(f"synthclone demo: {exc}", file=sys.stderr)
        return 2
    names = {r.label: r.wnid for r in plan.rows}
    print(f"\nplan: {len(plan)} rows ({args.recipe}), hash {plan.hash[:16]} -> {plan_path}")
    if summary["status"] == "already_complete":
        print(f"{beton} is already complete (pass --overwrite to generate it again)")
    else:
        print(f"generated with {args.model!r}: {summary['written']} images at "
              f"{summary['images_per_s']:.2f} images/s (stage split {summary['stage_split']})")
    print("images per class:")
    for label, n in summary["per_class"].items():
        print(f"  {label:>4} {names[int(label)]}: {n}")
    run = os.path.splitext(beton)[0] + ".run"
    print(f"dataset: {beton}\nrun folder: {run} (config.yaml, summary.json, throughput.jsonl, "
          "contact_sheet.png)")
    print("example prompts: " + " | ".join(r.prompt for r in plan.rows[::args.images_per_class][:3]))
    return 0
