"""Command-line entry points of the prompts package (wired into ``engine/cli.py``'s map).

* ``recipes_main``  - list the registered recipes: name, pattern, paper.
* ``meanings_main`` - seed 003 §3.1 label-ambiguity resolution for a class set, written as the
  ``{wnid: meaning}`` JSON that ``--recipe disambiguated|cd|sd --meanings FILE`` reads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def recipes_main(argv: list[str]) -> int:
    from engine.prompts import accepted_options, recipe_names
    from engine.prompts.base import _REGISTRY

    parser = argparse.ArgumentParser(prog="synthclone recipes",
                                     description="List the prompt recipes of the papers.")
    parser.parse_args(argv)
    rows = []
    for name in recipe_names():
        factory = _REGISTRY[name]
        opts = ", ".join(sorted(accepted_options(name))) or "-"
        rows.append((name, factory.pattern, factory.paper, opts))
    width = max(len(r[0]) for r in rows)
    for name, pattern, paper, opts in rows:
        print(f"{name:<{width}}  {pattern}\n{'':<{width}}  {paper}; options: {opts}")
    return 0


def get_meanings_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthclone meanings",
        description="Label-ambiguity resolution (seed 003 §3.1): pick, for every class, the "
                    "candidate meaning with the highest mean CLIP similarity to its real images.")
    p.add_argument("--classes", required=True, help="class set spec (imagenet100, a file, ...)")
    p.add_argument("--images", required=True,
                   help="real images in ImageFolder layout: DIR/<wnid>/*.jpg")
    p.add_argument("--out", required=True, help="meanings JSON to write ({wnid: meaning})")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--clip-checkpoint", help="local open_clip weights file")
    src.add_argument("--clip-pretrained", help="open_clip pretrained tag (needs the hub)")
    p.add_argument("--clip-config", help="extra open_clip model config JSON (name = file stem)")
    p.add_argument("--llm-url", help="OpenAI-compatible server for candidates (default: WordNet)")
    p.add_argument("--llm-model", help="model name on that server")
    p.add_argument("--k", type=int, default=5, help="candidate meanings per class (K)")
    p.add_argument("--images-per-class", type=int, default=50, help="real images scored per class")
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def meanings_main(argv: list[str]) -> int:
    args = get_meanings_parser().parse_args(argv)
    from engine.catalog import get_class_set
    from engine.prompts.ambiguity import OpenClipScorer, resolve_classes, write_meanings
    from engine.prompts.llm import LLMBackend, LLMConfig

    if os.path.exists(args.out) and not args.overwrite:
        print(f"synthclone meanings: {args.out} exists; pass --overwrite to replace it",
              file=sys.stderr)
        return 2
    if (args.llm_url is None) != (args.llm_model is None):
        print("synthclone meanings: give both --llm-url and --llm-model, or neither",
              file=sys.stderr)
        return 2
    if args.clip_config:
        import open_clip

        open_clip.add_model_config(args.clip_config)
    llm = LLMBackend(LLMConfig(url=args.llm_url, model=args.llm_model)) if args.llm_url else None
    scorer = OpenClipScorer.load(args.clip_model, pretrained=args.clip_pretrained,
                                 checkpoint=args.clip_checkpoint, device=args.device)
    results = resolve_classes(get_class_set(args.classes), args.images, scorer, llm=llm, k=args.k,
                              images_per_class=args.images_per_class)
    write_meanings(args.out, {key: r.best for key, r in results.items()})
    for key, r in results.items():
        print(json.dumps({"class": key, "best": r.best,
                          "scores": dict(zip(r.candidates, [round(s, 4) for s in r.scores]))},
                         ensure_ascii=False), file=sys.stderr)
    print(f"wrote {len(results)} meanings to {args.out}", file=sys.stderr)
    return 0
