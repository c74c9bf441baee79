"""``python -m bench cli_startup [--quick]``: how fast the command line answers (issue #15:
"--help and argument errors in well under a second").

Each method runs one command in a fresh process (what a user waits for after pressing Enter):
``synthclone --help`` and ``synthclone plan --help`` (the issue's two figures, ``help_s`` and
``plan_help_s``: median wall seconds per invocation), and without ``--quick`` every other
command's ``--help`` and a usage error. ``python -c pass`` is the floor no command can beat;
the headline ratios are each figure's time over it (cost ratios, lower is better), measured side
by side in every round, so they hold still on a busy machine where the absolute times do not. Nothing here is asserted in a
test: timings on a shared machine are for reading, not gating.
"""
from __future__ import annotations

import os
import subprocess
import sys

from bench.common import Method, bench_args, measure, ratio, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON_FLOOR = "python -c pass"
HELP, PLAN_HELP = "synthclone --help", "synthclone plan --help"


def methods(quick: bool = False) -> dict[str, list[str]]:
    """name -> the arguments of ``python`` for each method."""
    from engine.cli import COMMANDS

    cli = [sys.executable, "-m", "engine.cli"]
    out = {PYTHON_FLOOR: [sys.executable, "-c", "pass"], HELP: [*cli, "--help"],
           PLAN_HELP: [*cli, "plan", "--help"]}
    if not quick:
        for name in COMMANDS:
            out.setdefault(f"synthclone {name} --help", [*cli, name, "--help"])
        out["synthclone plan --steps x (usage error)"] = [*cli, "plan", "--steps", "x", "--out",
                                                          "p.jsonl"]
    return out


def _invoke(argv: list[str]):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run():
        subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return run


def main(argv=None) -> dict:
    p = bench_args("cli_startup", __doc__)
    args = p.parse_args(argv)
    todo = methods(quick=args.quick)
    results = measure([Method(name, _invoke(a)) for name, a in todo.items()],
                      rounds=args.rounds, min_seconds=args.min_seconds)
    wall = {name: s.summary()["wall_s_per_item"] for name, s in results.items()}
    return report(
        results,
        headline={"help_vs_python_floor": ratio(results, HELP, PYTHON_FLOOR),
                  "plan_help_vs_python_floor": ratio(results, PLAN_HELP, PYTHON_FLOOR)},
        title="cli_startup: one fresh process per call (wall and CPU seconds per invocation)",
        item="call",
        extra={"help_s": wall[HELP]["median"], "plan_help_s": wall[PLAN_HELP]["median"],
               "help_s_spread": [wall[HELP]["min"], wall[HELP]["max"]],
               "plan_help_s_spread": [wall[PLAN_HELP]["min"], wall[PLAN_HELP]["max"]],
               "target_s": 1.0, "quick": args.quick},
    )
