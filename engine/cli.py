"""``synthclone <command> ...``: a name -> function map, and the one place errors are reported.

Each command is ``main(argv: list[str]) -> int`` in its own module, imported only when called
(so ``--help`` stays fast: command modules import heavy libraries inside ``main``).

Errors (DESIGN.md "Errors"): a usage error (argparse) prints one line and exits 2; a user error (:data:`engine.errors.USER_ERRORS`) or an ``OSError``
(missing file, read-only folder, disk full) prints one line ``synthclone CMD: error: ...`` and
exits 2; Ctrl-C prints one line and exits 130; a closed stdout pipe (``| head``) exits quietly.
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "classes": ("engine.catalog.cli", "main", "resolve and show a class set"),
    "plan": ("engine.plan_cli", "main", "build and write a generation plan"),
    "generate": ("engine.generate.cli", "main", "generate a plan into a .beton"),
    "pack": ("engine.beton_cli", "pack_main", "pack a real image folder into a .beton"),
    "merge": ("engine.beton_cli", "merge_main", "merge .beton shards into one file"),
    "inspect": ("engine.beton_cli", "inspect_main", "summarise / verify a .beton"),
    "export": ("engine.beton_cli", "export_main", "write a .beton's images + a table to a folder"),
    "recipes": ("engine.prompts.cli", "recipes_main", "list the prompt recipes of the papers"),
    "meanings": ("engine.prompts.cli", "meanings_main", "resolve ambiguous class names (CLIP)"),
    "train": ("engine.train.cli", "main", "train a classifier on real + synthetic .beton files"),
    "demo": ("engine.demo", "main", "the README's main job on the built-in default"),
    "eval": ("engine.eval.cli", "eval_main", "evaluate a checkpoint on test sets and transfer"),
    "eval-data": ("engine.eval.cli", "eval_data_main", "diagnose a .beton (CLIP, IS, FID)"),
    "report": ("engine.eval.cli", "report_main", "plots and an HTML page of evaluations"),
}


def usage() -> str:
    lines = ["usage: synthclone <command> [options]   (synthclone <command> --help)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> ``x: No space left on device``."""
    what = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else None
    return f"{name}: {what}" if name else what


def run_command(name: str, argv: list[str]) -> int:
    """Run one command, turning user errors into one line and exit code 2."""
    from engine.errors import USER_ERRORS

    module, func, _ = COMMANDS[name]
    prog = f"synthclone {name}"
    try:
        code = int(getattr(importlib.import_module(module), func)(argv) or 0)
        sys.stdout.flush()  # a closed pipe (| head) shows here, inside the handler below
        return code
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2, one line printed)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except USER_ERRORS as exc:
        print(f"{prog}: error: {' '.join(str(exc).split()) or type(exc).__name__}",
              file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as exc:
        print(f"{prog}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """After the reader of our stdout went away: point stdout at /dev/null so the interpreter's
    final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from engine import __version__

        print(f"synthclone {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"synthclone: error: unknown command {name!r} (commands: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    return run_command(name, rest)


if __name__ == "__main__":
    sys.exit(main())
