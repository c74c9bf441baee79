"""``synthclone <command> ...``: a name -> function map, nothing else.

Each command is ``main(argv: list[str]) -> int`` in its own module, imported only when called.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "classes": ("engine.catalog.cli", "main", "resolve and show a class set"),
    "plan": ("engine.plan_cli", "main", "build and write a generation plan"),
    "generate": ("engine.generate.cli", "main", "generate a plan into a .beton"),
    "pack": ("loaders.beton.cli", "pack_main", "pack a real image folder into a .beton"),
    "merge": ("loaders.beton.cli", "merge_main", "merge .beton shards into one file"),
    "inspect": ("loaders.beton.cli", "inspect_main", "summarise / verify a .beton"),
    "recipes": ("engine.prompts.cli", "recipes_main", "list the prompt recipes of the papers"),
    "meanings": ("engine.prompts.cli", "meanings_main", "resolve ambiguous class names (CLIP)"),
    "demo": ("engine.demo", "main", "the README's main job on the built-in default"),
}


def usage() -> str:
    lines = ["usage: synthclone <command> [options]   (synthclone <command> --help)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"synthclone: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
