"""``synthclone classes SPEC``: resolve a class set and show its classes."""
from __future__ import annotations

import argparse
import json
import sys

from engine.config import ArgumentParser, int_at_least

DEFAULT_LIMIT = 20
"""Classes shown in the text listing unless --limit says otherwise."""


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(prog="synthclone classes", description="Resolve and show a class set.",
                       epilog="example: synthclone classes imagenet1k --limit 0 | grep -i crane")
    p.add_argument("spec", nargs="?", default="imagenet100",
                   help="imagenet1k | imagenet100 | imagenet-r | imagenet-a | FILE | "
                        "comma-separated wnids/names [default: imagenet100]")
    p.add_argument("--compact-labels", action=argparse.BooleanOptionalAction, default=False,
                   help="Renumber labels 0..n-1 instead of keeping ImageNet-1K indices. "
                        "[default: False]")
    p.add_argument("--limit", type=int_at_least(0, "0 shows all"),
                   help=f"classes to show (0 = all) [default: {DEFAULT_LIMIT} in the text "
                        "listing, all with --json]")
    p.add_argument("--json", action="store_true", help="print every class as a JSON line")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from engine.catalog.classes import get_class_set

    cs = get_class_set(args.spec, compact=args.compact_labels)
    limit = args.limit if args.limit is not None else (0 if args.json else DEFAULT_LIMIT)
    shown = cs.classes if limit == 0 else cs.classes[:limit]
    if args.json:
        for c in shown:
            print(json.dumps({"index": c.index, "wnid": c.wnid, "lemmas": list(c.lemmas),
                              "definition": c.definition,
                              "hypernyms": list(c.hypernyms) if c.hypernyms else None}))
        if len(shown) < len(cs):  # on stderr, so that the JSON lines stay machine-readable
            print(f"synthclone classes: note: --limit {limit} printed {len(shown)} of "
                  f"{len(cs)} classes (--limit 0 prints all)", file=sys.stderr)
        return 0
    print(f"{cs.name}: {len(cs)} classes, label space {cs.num_labels}")
    for c in shown:
        h = ", ".join(c.hypernyms) if c.hypernyms else "-"
        print(f"  {c.index:>4}  {c.wnid or '-':<10} {', '.join(c.lemmas)[:40]:<40}  h_c: {h}")
    if len(shown) < len(cs):
        print(f"  ... {len(cs) - len(shown)} more (--limit 0 shows all)")
    return 0
