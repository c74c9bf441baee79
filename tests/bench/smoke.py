"""Run a benchmark at its tiniest size in a subprocess and check its JSON line's schema.

Smoke tests only: figures measured with ``--min-seconds 0.01`` on a busy machine are not
results, so nothing here asserts a timing or a ratio's value; only that every figure the
benchmark reports exists, is finite and positive, and that the harness's rules were followed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE_SECONDS = "0.01"


def run_bench(name: str, *args: str, timeout: int = 600, env: dict | None = None) -> dict:
    """``python -m bench NAME --quick --min-seconds 0.01 ARGS``; -> the last stdout line, parsed."""
    cmd = [sys.executable, "-m", "bench", name, "--quick", "--min-seconds", SMOKE_SECONDS,
           *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})
    assert res.returncode == 0, res.stderr[-4000:]
    lines = res.stdout.strip().splitlines()
    assert lines, res.stderr[-2000:]
    out = json.loads(lines[-1])
    assert isinstance(out, dict)
    out["_stderr"] = res.stderr
    return out


def _positive(value, what: str) -> None:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), (what, value)
    assert math.isfinite(value) and value > 0, (what, value)


def check_result(out: dict, name: str, headline: set[str]) -> None:
    """The JSON schema of ``bench.common.report`` + ``emit``, with finite positive figures."""
    assert out["benchmark"] == name
    assert set(out["headline"]) == headline
    assert out["rounds"] >= 3
    assert out["min_seconds"] == float(SMOKE_SECONDS)
    assert out["min_round_seconds"] >= float(SMOKE_SECONDS)
    assert isinstance(out["stable"], bool)
    assert out["stable"] == all(out["ratios"][h]["stable"] for h in headline)
    assert "getrusage" in out["cpu_clock"]
    for h in headline:
        _positive(out[h], h)
        assert out[h] == out["ratios"][h]["median"]
    for fig, r in out["ratios"].items():
        for key in ("median", "min", "max"):
            _positive(r[key], f"{fig}.{key}")
        assert r["min"] <= r["median"] <= r["max"], fig
        assert len(r["per_round"]) == out["rounds"], fig
        assert r["spread"] >= 0 and isinstance(r["stable"], bool), fig
        assert r["a"] in out["methods"] and r["b"] in out["methods"], fig
        if "target" in r:
            assert isinstance(r["meets_target"], bool), fig
    for m, s in out["methods"].items():
        for clock in ("wall_s_per_item", "cpu_s_per_item"):
            for key in ("median", "min", "max"):
                _positive(s[clock][key], f"{m}.{clock}.{key}")
        _positive(s["items_per_s"], f"{m}.items_per_s")
        assert s["rounds"] == out["rounds"] and s["calls_per_round"] >= 1, m
    env = out["env"]
    assert {"torch", "threads", "device", "cpu_model", "cpu_count", "load_avg"} <= set(env)
    _positive(env["threads"], "env.threads")
    for h in headline:  # the table on stderr names every headline figure
        assert h in out["_stderr"], h
