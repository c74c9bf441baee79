"""``python -m bench NAME [--quick] [options]``; ``python -m bench --list``.

Each benchmark is ``bench/<name>.py`` with ``main(argv) -> dict``: it prints a readable table
to stderr and returns the figures; this runner prints them, last on stdout, as one JSON line
(with ``env``: torch version, threads, device).
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import sys

import bench
from bench.common import env_info


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
    result = dict(result or {})
    result.setdefault("benchmark", name)
    result["env"] = {**env_info(), **result.get("env", {})}
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
