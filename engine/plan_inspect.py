"""``synthclone inspect plan.jsonl``: what a plan will generate, and how long that takes here.

The summary is ``synthclone plan``'s (:func:`engine.plan_cli.plan_summary`): rows per recipe and
class, the sampling settings, the header's class set, counts, recipe options and notes, example
prompts per recipe. The time estimate needs this machine's generation rate, and says where it
came from (:mod:`engine.rates`):

1. ``--measure --model M``: generate the plan's first ``--measure-rows`` rows now (into a
   temporary folder, removed afterwards) and time them;
2. ``--rate-from RUN``: the run folder (``clone.run``) of an earlier ``generate``;
3. otherwise the last ``generate`` run recorded on this machine (of ``--model`` if given);
4. none of these: "unknown", with the commands that would measure it.

A rate measured at other settings is scaled to the plan's rows by steps x pixels, and the
estimate says so (rough: fixed costs per image and batching are not modelled).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

from engine.config import int_at_least, positive_int
from engine.errors import ConfigError, UserError

class GenerateFailed(UserError):
    """``--measure`` could not generate any image."""


MEASURE_ROWS = 8
"""Rows ``--measure`` generates by default (one batch at generate's default batch size)."""


def add_plan_inspect_args(parser) -> None:
    """The flags of ``synthclone inspect`` that apply to plan files."""
    g = parser.add_argument_group(
        "plan files (synthclone inspect plan.jsonl)",
        "The estimated time uses this machine's rate of --model (default: of the last generate "
        "run here), or an earlier run's folder (--rate-from), or times the plan's first rows "
        "now (--measure --model M).")
    g.add_argument("--examples", type=int_at_least(0), default=3,
                   help="example prompts to show per recipe [default: 3]")
    # the same flag, help and values as generate --model (one name, one meaning)
    from engine.config import field_docs
    from engine.generate.config import GenerateConfig

    g.add_argument("--model", help=field_docs(GenerateConfig)["model"])
    g.add_argument("--rate-from", metavar="RUN", help="take the rate from an earlier generate "
                                                      "run: its run folder (clone.run)")
    g.add_argument("--measure", action="store_true",
                   help="measure the rate now: generate the plan's first rows with --model "
                        "into a temporary folder (removed afterwards)")
    g.add_argument("--measure-rows", type=positive_int, default=MEASURE_ROWS, metavar="N",
                   help=f"rows --measure generates [default: {MEASURE_ROWS}]")


def check_plan_args(a) -> None:
    """Refuse the .beton-only flags and inconsistent rate flags before any work."""
    if a.grid:
        raise ConfigError(f"--grid draws the images of a .beton; {a.path} is a plan (generate "
                          "it, then inspect the .beton)")
    if a.measure and not a.model:
        raise ConfigError("--measure needs --model (the model to time, e.g. --model tiny or "
                          "--model /models/sd-v1-5)")
    if a.measure and a.rate_from:
        raise ConfigError("give either --measure or --rate-from, not both")


def inspect_plan(a) -> int:
    """``synthclone inspect PLAN``: print (or ``--json``) the summary and the time estimate."""
    check_plan_args(a)
    from engine.plan import read_plan
    from engine.plan_cli import format_plan_summary, plan_summary, print_examples

    plan = read_plan(a.path)  # checks format, hash and every row: --verify adds nothing
    d = {"path": a.path, **plan_summary(plan, a.examples)}
    d["estimate"] = estimate(plan, model=a.model, rate_from=a.rate_from, measure=a.measure,
                             measure_rows=a.measure_rows)
    if a.json:
        print(json.dumps(d, sort_keys=True))
        return 0
    lines = format_plan_summary(d)
    lines[0] = f"{a.path}: " + lines[0] + f", written by synthclone {d['version']}"
    print("\n".join(lines))
    print_examples(d, sys.stdout)
    for note in d["notes"]:
        print(f"note: {note}")
    print(format_estimate(d["estimate"], d["rows"]))
    return 0


def estimate(plan, model=None, rate_from=None, measure=False,
             measure_rows: int = MEASURE_ROWS) -> dict:
    """``{"seconds", "rate", "source", "scaled"}`` for ``plan`` (``seconds`` None when no rate
    is known, with ``"unknown"`` saying why)."""
    from engine import rates

    if measure:
        rate = measure_rate(plan, model, measure_rows)
    elif rate_from:
        rate = rates.rate_from_run(rate_from)
    else:
        rate = rates.latest_rate(model)
    if rate is None:
        what = f" with model {model}" if model else ""
        return {"seconds": None, "rate": None, "source": None, "scaled": None,
                "unknown": f"no generate run{what} is recorded on this machine"}
    return {"seconds": rates.estimate_seconds(plan.rows, rate),
            "rate": dataclasses.asdict(rate), "source": rate.source,
            "scaled": rates.needs_scaling(plan.rows, rate)}


def measure_rate(plan, model: str, n: int):
    """Generate the first ``n`` rows of ``plan`` with ``model`` in a temporary folder and return
    the rate (the first batch's warm-up is included: the figure errs on the slow side)."""
    import tempfile

    from engine import rates
    from engine.generate.config import GenerateConfig
    from engine.generate.runner import generate
    from engine.plan import Plan, content_hash

    rows = plan.rows[:n]
    header = {k: v for k, v in plan.header.items() if k not in ("shard", "shard_hash")}
    sub = Plan(dict(header, num_rows=len(rows), hash=content_hash(rows)), rows)
    print(f"synthclone inspect: measuring: generating {len(rows)} rows with model {model} ...",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="synthclone-measure-") as tmp:
        out = os.path.join(tmp, "measure.beton")
        summary = generate(sub, out, GenerateConfig(model=model, progress=False))
        applied = rates.run_config(os.path.join(tmp, "measure.run")).get("applied") or {}
    written, seconds = summary.get("written") or 0, summary.get("elapsed_s") or 0.0
    if written < 1 or not seconds > 0:
        raise GenerateFailed(f"--measure: generating {len(rows)} rows wrote no images "
                             f"({summary.get('status')}); see the messages above")
    steps, pixels = rates.mean_settings(rows[:written])
    return rates.rate_of(
        {"images_per_s": written / seconds, "steps": steps, "pixels": pixels, "model": model,
         "device": applied.get("device"), "dtype": applied.get("dtype"),
         "compile": applied.get("compile"), "images": written, "seconds": seconds},
        f"a measurement just now: the plan's first {written} rows in {seconds:.1f} s (model "
        "loading excluded, first batch's warm-up included)")


def format_estimate(e: dict, rows: int) -> str:
    if e["seconds"] is None:
        return (f"estimated time: unknown ({e['unknown']}). Measure it with "
                "`synthclone generate PLAN --model M --out X.beton --dry-run`, or "
                "`synthclone inspect PLAN --measure --model M`, or give an earlier run's "
                "folder with --rate-from X.run")
    from engine.rates import Rate

    rate = Rate(**e["rate"]).settings()
    scaled = ("; scaled to this plan's steps x pixels per row (rough)" if e["scaled"] else
              "; same steps and size as this plan")
    return (f"estimated time: about {duration(e['seconds'])} for {rows} images at this "
            f"machine's measured rate ({rate}), from {e['source']}{scaled}; model loading and "
            "re-samples not included")


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
