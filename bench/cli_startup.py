"""``python -m bench cli_startup [--quick]``: how fast the command line answers (issue #15:
"--help and argument errors in well under a second").

Each method runs ``python -m engine.cli ARGS`` in a fresh process (what a user waits for after
pressing Enter): ``synthclone --help``, ``synthclone plan --help`` (the issue's two figures),
every other command's ``--help`` and one usage error. Methods are interleaved round by round;
a round runs each method ``--runs`` times (about 2 s of work per method and round with the
defaults). Figures: median seconds per invocation over the rounds, the min-max spread of the
round medians, child CPU seconds per invocation, ``stable`` (spread within 20% of the median).
Nothing here is asserted in a test: timings on a shared machine are for reading, not gating.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

from bench.common import table, timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STABLE_SPREAD = 0.2
"""A figure is ``stable`` when (max - min) / median of its round medians is at most this."""


def methods() -> dict[str, list[str]]:
    from engine.cli import COMMANDS

    out = {"synthclone --help": ["--help"], "synthclone plan --help": ["plan", "--help"]}
    for name in COMMANDS:
        out.setdefault(f"synthclone {name} --help", [name, "--help"])
    out["synthclone plan --steps x (usage error)"] = ["plan", "--steps", "x", "--out", "p.jsonl"]
    return out


def _invoke(args: list[str]):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run():
        subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return run


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench cli_startup")
    p.add_argument("--quick", action="store_true", help="3 rounds, the two headline methods")
    p.add_argument("--rounds", type=int, help="rounds (default 5; --quick 3)")
    p.add_argument("--runs", type=int, default=10, help="invocations per method and round")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    todo = methods()
    if args.quick:
        todo = {k: v for k, v in list(todo.items())[:2]}
    fns = {name: _invoke(a) for name, a in todo.items()}
    for fn in fns.values():  # warm-up outside the timed region (page cache, .pyc files)
        fn()
    medians = {name: [] for name in fns}
    cpu = {name: 0.0 for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():  # interleaved: every method once per round
            before = _child_cpu()
            medians[name].append(timeit(fn, repeat=args.runs, warmup=0)["median"])
            cpu[name] += _child_cpu() - before
    rows, figures = [], {}
    for name, values in medians.items():
        med = statistics.median(values)
        spread = (max(values) - min(values)) / med if med else 0.0
        figures[name] = {"median_s": med, "min_s": min(values), "max_s": max(values),
                         "cpu_s_per_invocation": cpu[name] / (rounds * args.runs),
                         "stable": spread <= STABLE_SPREAD}
        rows.append({"command": name, "median_s": med, "min_s": min(values),
                     "max_s": max(values), "cpu_s": figures[name]["cpu_s_per_invocation"],
                     "stable": figures[name]["stable"]})
    table(rows, f"cli_startup: {rounds} rounds x {args.runs} runs per method (fresh process "
                "each; median of round medians)")
    return {
        "help_s": figures["synthclone --help"]["median_s"],
        "plan_help_s": figures["synthclone plan --help"]["median_s"],
        "spread_s": {k: [v["min_s"], v["max_s"]] for k, v in figures.items()},
        "cpu_s_per_invocation": {k: v["cpu_s_per_invocation"] for k, v in figures.items()},
        "median_s": {k: v["median_s"] for k, v in figures.items()},
        "stable": all(v["stable"] for v in figures.values()),
        "rounds": rounds, "runs_per_round": args.runs,
    }
