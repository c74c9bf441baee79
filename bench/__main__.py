"""``python -m bench NAME [--quick] [options]``; ``python -m bench --list``.

Each benchmark is ``bench/<name>.py`` with ``main(argv) -> dict`` built with the harness in
``bench/common.py`` (see its docstring for the rules and a complete example): it prints its
tables to stderr and returns the figures; this runner prints them, with ``benchmark`` and
``env``, as the last stdout line, one JSON object (``bench.common.emit``).
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import bench
from bench.common import emit


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                  if m.name not in ("common", "__main__"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("--list", "-h", "--help"):
        print("benchmarks: " + ", ".join(available()))
        return 0 if argv else 2
    name = argv[0].replace("-", "_")
    if name not in available():
        print(f"unknown benchmark {name!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    result = importlib.import_module(f"bench.{name}").main(argv[1:])
    emit(result or {}, benchmark=name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
