"""``synthclone classes SPEC``: resolve a class set and show its classes."""
from __future__ import annotations

import argparse
import json
import sys

from engine.catalog.classes import ClassLookupError, get_class_set


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthclone classes",
                                description="Resolve and show a class set.")
    p.add_argument("spec", nargs="?", default="imagenet100",
                   help="imagenet1k | imagenet100 | imagenet-r | imagenet-a | FILE | "
                        "comma-separated wnids/names")
    p.add_argument("--compact-labels", action="store_true")
    p.add_argument("--limit", type=int, default=20, help="classes to show (0 = all)")
    p.add_argument("--json", action="store_true", help="print every class as a JSON line")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        cs = get_class_set(args.spec, compact=args.compact_labels)
    except (ClassLookupError, FileNotFoundError, ValueError) as exc:
        print(f"synthclone classes: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    shown = cs.classes if args.limit == 0 else cs.classes[: args.limit]
    if args.json:
        for c in shown:
            print(json.dumps({"index": c.index, "wnid": c.wnid, "lemmas": list(c.lemmas),
                              "definition": c.definition,
                              "hypernyms": list(c.hypernyms) if c.hypernyms else None}))
        return 0
    print(f"{cs.name}: {len(cs)} classes, label space {cs.num_labels}")
    for c in shown:
        h = ", ".join(c.hypernyms) if c.hypernyms else "-"
        print(f"  {c.index:>4}  {c.wnid or '-':<10} {', '.join(c.lemmas)[:40]:<40}  h_c: {h}")
    if len(shown) < len(cs):
        print(f"  ... {len(cs) - len(shown)} more (--limit 0 shows all)")
    return 0
