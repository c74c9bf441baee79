"""Command-line entry points of the prompts package (wired into ``engine/cli.py``'s map).

* ``recipes_main``  - list the registered recipes: name, pattern, paper, options.
* ``meanings_main`` - seed 003 §3.1 label-ambiguity resolution for a class set over all real
  images of each class (or a seeded subset), written as the meanings JSON (meanings, K, the
  candidate source, image counts, scores) that ``--recipe disambiguated|cd|sd --meanings FILE``
  reads.

Both raise user errors (``engine/cli.py`` prints them on one line, exit 2); open_clip and torch
are imported only after the arguments are parsed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from engine.config import ArgumentParser, add_out_arg, add_overwrite_arg
from engine.errors import ConfigError
from engine.plan_cli import add_llm_args, check_output

DEFAULT_CLIP_MODEL = "ViT-B-32"


def get_recipes_args_parser() -> ArgumentParser:
    return ArgumentParser(prog="synthclone recipes",
                          description="List the prompt recipes of the papers, with the options "
                                      "each takes, as synthclone plan flags (or --set "
                                      "recipe_options.KEY=VALUE for those without a flag).")


def recipes_main(argv: list[str]) -> int:
    get_recipes_args_parser().parse_args(argv)
    from engine.prompts import accepted_options, recipe_names
    from engine.plan_cli import option_flag
    from engine.prompts.base import recipe_factory

    rows = []
    for name in recipe_names():
        factory = recipe_factory(name)
        flags = sorted((option_flag(o) for o in accepted_options(name)),
                       key=lambda f: (f.startswith("--set"), f))  # flags first, then --set
        opts = ", ".join(flags) or "-"
        rows.append((name, factory.pattern, factory.paper, opts))
    from engine.plan.images import IMAGE_RECIPES, RECIPE_PAPER

    for name in IMAGE_RECIPES:  # image-conditioned rows: one per real image, not a text recipe
        opts = "--from-images DIR_OR_BETON" + (", --strength" if name == "img2img_templates"
                                               else "")
        rows.append((name, "one row per real image (init_image)", RECIPE_PAPER[name], opts))
    width = max(len(r[0]) for r in rows)
    for name, pattern, paper, opts in rows:
        print(f"{name:<{width}}  {pattern}\n{'':<{width}}  {paper}; options: {opts}")
    return 0


def get_meanings_args_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone meanings",
        description="Label-ambiguity resolution (seed 003 §3.1): pick, for every class, the "
                    "candidate meaning with the highest mean CLIP similarity to its real images.",
        epilog="example: synthclone meanings --classes imagenet100 --images /data/imagenet/train "
               "--clip-pretrained open_clip_vit_b32.bin --out meanings.json")
    p.add_argument("--classes", required=True,
                   help="Class-set spec: imagenet1k | imagenet100 | imagenet-r | imagenet-a | "
                        "FILE | name,name,...")
    p.add_argument("--images", required=True,
                   help="real images in ImageFolder layout: DIR/<wnid>/*.jpg")
    add_out_arg(p, "meanings JSON to write ({wnid: meaning})")
    add_overwrite_arg(p, "an existing meanings file (without it: refuse)")
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                   help=f"open_clip architecture that scores the meanings "
                        f"[default: {DEFAULT_CLIP_MODEL}]")
    p.add_argument("--clip-pretrained", metavar="TAG_OR_FILE",
                   help="open_clip pretrained tag (needs the hub) or local weights file "
                        "(required: random weights would score nothing)")
    p.add_argument("--clip-checkpoint", dest="clip_pretrained", help=argparse.SUPPRESS)
    p.add_argument("--clip-config", help="extra open_clip model config JSON (name = file stem)")
    add_llm_args(p)
    p.add_argument("--k", type=int, default=5, help="candidate meanings per class (K) [default: 5]")
    p.add_argument("--real-images-per-class", type=int, default=None, metavar="INT",
                   help="score a seeded random subset of this many real images per class "
                        "[default: all of them, as Eq. 1 sums over all N]")
    p.add_argument("--images-per-class", dest="real_images_per_class", type=int,
                   help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the --real-images-per-class subset [default: 0]")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when available, else CPU) | cpu | cuda | cuda:N "
                        "[default: auto]")
    return p


def meanings_main(argv: list[str]) -> int:
    args = get_meanings_args_parser().parse_args(argv)
    check_output(args.out, args.overwrite)
    if (args.llm_url is None) != (args.llm_model is None):
        raise ConfigError("give both --llm-url and --llm-model, or neither (WordNet senses)")
    if not args.clip_pretrained:
        raise ConfigError("CLIP needs weights: pass --clip-pretrained TAG_OR_FILE (an open_clip "
                          "pretrained tag, or a local weights file)")
    if args.k < 1 or (args.real_images_per_class is not None and args.real_images_per_class < 1):
        raise ConfigError("--k and --real-images-per-class must be >= 1")
    if not os.path.isdir(args.images):
        raise ConfigError(f"--images {args.images}: no such folder (expected real images as "
                          "DIR/<wnid>/*.jpg)")
    from engine.catalog import get_class_set

    classes = get_class_set(args.classes)
    llm = None
    if args.llm_url:
        from engine.config import build
        from engine.prompts.llm import LLMBackend, LLMConfig

        values = {"url": args.llm_url, "model": args.llm_model, "retries": args.llm_retries,
                  "timeout_s": args.llm_timeout_s}
        llm = LLMBackend(build(LLMConfig, {k: v for k, v in values.items() if v is not None}))
    if args.clip_config:
        import open_clip

        open_clip.add_model_config(args.clip_config)
    from engine.clip import load_clip
    from engine.prompts.ambiguity import candidate_source, resolve_classes, write_meanings

    scorer = load_clip(args.clip_model, args.clip_pretrained, device=_device(args.device))
    results = resolve_classes(classes, args.images, scorer, llm=llm, k=args.k,
                              images_per_class=args.real_images_per_class, seed=args.seed,
                              progress=sys.stderr.isatty())
    write_meanings(
        args.out, {key: r.best for key, r in results.items()}, overwrite=args.overwrite,
        k=args.k, candidate_source=candidate_source(llm),
        images_per_class=args.real_images_per_class or "all", seed=args.seed,
        clip={"model": args.clip_model, "pretrained": args.clip_pretrained},
        classes={key: {"candidates": list(r.candidates),
                       "scores": [round(x, 6) for x in r.scores], "num_images": r.num_images}
                 for key, r in results.items()})
    for key, r in results.items():
        print(json.dumps({"class": key, "best": r.best, "images": r.num_images,
                          "scores": dict(zip(r.candidates, [round(x, 4) for x in r.scores]))},
                         ensure_ascii=False), file=sys.stderr)
    print(f"wrote {len(results)} meanings to {args.out}", file=sys.stderr)
    return 0


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
