"""The benchmark harness: every ``bench/<name>.py`` measures with these helpers, one way.

A benchmark is a module ``bench/<name>.py`` with ``main(argv) -> dict``; ``python -m bench
<name> [--quick]`` runs it and prints the returned dict (plus ``env``) as the LAST stdout line,
one JSON object.  Tables go to stderr.  The rules (issue #8 item 10, DESIGN.md "Benchmarks"):

- the methods being compared run **interleaved**: each round runs every method once, round-robin
  (the starting method rotates each round), so load from other processes falls on all alike;
- **>= 3 rounds**, and each method's share of a round is **>= 2 s of work**: after its untimed
  warm-up (imports, JIT, ``torch.compile``, page cache) each method is calibrated and repeats its
  call enough times per round;
- per method: the **median** and **min-max** over rounds of wall time per item and of **CPU time
  per item** (see ``cpu_seconds`` for what is counted);
- **headline ratios** are computed per round (from methods measured side by side in that round);
  the JSON holds their median, min, max and spread = (max - min) / median, and ``stable: false``
  when any headline ratio's spread exceeds 20 %;
- threads are pinned (``pin_threads``) and re-pinned before each timed block; ``env`` reports the
  torch version, threads, device, CPU model and load average;
- ``--quick`` keeps the rounds and the 2 s per round but shrinks the problem (< ~5 min in all).

Complete example (``bench/relu.py``; ``python -m bench relu --quick``)::

    \"\"\"``python -m bench relu [--quick]``: ``clamp(min=0)`` vs ``relu``.\"\"\"
    from bench.common import Method, bench_args, measure, pin_threads, ratio, report

    def main(argv=None) -> dict:
        p = bench_args("relu", __doc__)                 # --quick --rounds --min-seconds --threads
        p.add_argument("--size", type=int, help="elements per call [2**22; quick 2**18]")
        args = p.parse_args(argv)
        import torch

        threads = pin_threads(args.threads)
        n = args.size or (2**18 if args.quick else 2**22)
        x = torch.randn(n)
        methods = [
            Method("relu", lambda: torch.relu(x), items_per_call=n),
            Method("clamp", lambda: x.clamp(min=0), items_per_call=n),
            Method("copy", lambda: x.clone(), items_per_call=n),     # the memory bound
        ]
        results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)
        return report(
            results,
            headline={"clamp_vs_relu": ratio(results, "clamp", "relu", target=1.1)},
            secondary={"relu_vs_copy": ratio(results, "relu", "copy")},
            title=f"relu, {n} fp32 elements, {threads} threads",
            item="element",
            extra={"size": n, "quick": args.quick},
        )

``Method(name, run, items_per_call=1, setup=None, teardown=None, warmup=1)``: ``run()`` does one
call's work (``items_per_call`` items: images, samples, elements); it must be repeatable.
``setup()`` runs once before the warm-up, untimed; ``teardown()`` after the last round.
``measure(methods, rounds, min_seconds)`` -> results (a dict name -> ``Stats``).
``ratio(results, a, b)``: a's time per item over b's, per round (a cost ratio: lower is better).
``speedup(results, a, b)``: b's time per item over a's (a is X times faster: higher is better).
Both take ``cpu=True`` (ratio of CPU time instead of wall time) and ``target=``.
``report(results, headline=..., extra=...)`` prints the tables and returns the JSON dict:
``{<figure>: median, ..., "headline": [<figure>, ...], "ratios": {<figure>: {median, min,
max, spread, per_round, stable, kind, a, b, clock, target?, meets_target?}}, "methods":
{<name>: {wall_s_per_item: {median, min, max, spread}, cpu_s_per_item: {...}, items_per_s,
cpu_per_wall, items_per_call, calls_per_round (calibrated), calls (made, per round), rounds,
min_round_seconds}}, "stable",
"rounds", "min_seconds" (asked), "min_round_seconds" (measured), "cpu_clock", "item",
**extra}``.  ``emit(result)`` (called by ``python -m bench``) adds
``benchmark`` and ``env`` and prints it as the last stdout line.
Notes: compare several cases (sizes, layouts) by giving every case's methods to ONE
``measure`` call with distinct names (``csrc_d4``, ``torch_d4``, ...): ratios need methods from
one call.  A method whose call spawns worker processes is fine: ``cpu_seconds`` counts them.
Work a call needs redone (a file to overwrite) belongs inside ``run`` and is timed alike for
every method.  A call longer than ``min_seconds`` simply runs once per round.
Smoke tests run a benchmark with ``--min-seconds 0.01`` and its tiniest sizes; figures measured
so are not results (``min_seconds`` in the JSON says so).
"""
from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

MIN_ROUNDS = 3
"""Fewest rounds a benchmark may run (issue #8 item 10)."""
MIN_SECONDS = 2.0
"""Default and rule: seconds of work per method per round."""
SPREAD_LIMIT = 0.20
"""A headline ratio whose (max - min) / median exceeds this is ``stable: false``."""
CALIBRATION_SECONDS = 0.25
"""Calibration times calls until this much wall time has passed (or one call took longer)."""
MARGIN = 1.1
"""Calls per round are sized for ``MARGIN * min_seconds`` so noise keeps rounds above it."""


# ----------------------------------------------------------------------------- set-up

def bench_args(name: str, doc: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the flags every benchmark shares:
    ``--quick``, ``--rounds`` (>= 3), ``--min-seconds`` and ``--threads``."""
    p = argparse.ArgumentParser(prog=f"python -m bench {name}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smaller problem sizes; same rounds and seconds per round (< ~5 min)")
    p.add_argument("--rounds", type=_rounds, default=MIN_ROUNDS,
                   help=f"interleaved rounds, >= {MIN_ROUNDS} [%(default)s]")
    p.add_argument("--min-seconds", type=float, default=MIN_SECONDS,
                   help="seconds of work per method per round [%(default)s]; values below 2 "
                        "are for smoke tests only (figures so measured are not results)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch/OpenMP threads [BENCH_THREADS, else min(cores, 2)]")
    return p


def _rounds(text: str) -> int:
    n = int(text)
    if n < MIN_ROUNDS:
        raise argparse.ArgumentTypeError(f"--rounds must be >= {MIN_ROUNDS}, got {n}")
    return n


def pin_threads(n: int | None = None) -> int:
    """Pin torch's intra-op threads and ``OMP_NUM_THREADS`` (inherited by child processes) to
    ``n`` (default: ``BENCH_THREADS``, else min(cores, 2)); returns the number used.

    On the shared 2-core machine small ops cost ~8 ms each when another process holds a core
    and torch uses both (PLATFORM.md), so every benchmark pins and reports its threads."""
    import torch

    n = n or int(os.environ.get("BENCH_THREADS", 0)) or min(os.cpu_count() or 1, 2)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    return n


def keep_freed_memory(limit_mb: int = 512) -> bool:
    """Make glibc keep freed blocks up to ``limit_mb`` in the heap instead of returning them to
    the OS (``mallopt`` of ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``); returns whether it
    could (glibc only).

    A method that allocates and frees megabyte temporaries on every call (torch's eager ops)
    otherwise gets fresh pages, and pays their page faults, on every call, or not, depending
    on glibc's adaptive threshold in that process: the same code ran 1.2-8 ms per image in
    different processes. Pinned, such a method runs at its warm speed in every process. Call
    it before the data is allocated; it favours the method that allocates, so a ratio against
    it can only shrink."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        return bool(libc.mallopt(m_mmap_threshold, limit_mb << 20)
                    and libc.mallopt(m_trim_threshold, 2 * limit_mb << 20))
    except (OSError, AttributeError, TypeError):
        return False


def _current_threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _repin(threads: int | None) -> None:
    """Restore torch's thread count (FFCV's writer and others change it behind our back)."""
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- clocks

def cpu_clock() -> str:
    """What ``cpu_seconds`` counts, for the JSON."""
    base = "getrusage(SELF)+getrusage(CHILDREN, reaped)"
    return base + ("+psutil(live descendants incl. their reaped children)"
                   if _psutil() is not None else " (psutil missing: live workers not counted)")


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process (all threads), its reaped child
    processes (``RUSAGE_CHILDREN``) and, with psutil, its live descendants (each with its own
    reaped children).  A worker alive at the start and reaped by the end is counted once: its
    time moves from the live sum to ``RUSAGE_CHILDREN``."""
    import multiprocessing
    import resource

    multiprocessing.active_children()  # reap finished multiprocessing workers
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    psutil = _psutil()
    if psutil is not None:
        for child in psutil.Process().children(recursive=True):
            try:
                t = child.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


# ----------------------------------------------------------------------------- measuring

@dataclass
class Method:
    """One way of doing the work.  ``run()`` does ``items_per_call`` items and is repeatable;
    ``setup()`` runs once before the warm-up and ``teardown()`` after the last round (both
    untimed); ``warmup`` untimed calls precede calibration (compile, JIT, caches)."""

    name: str
    run: Callable[[], Any]
    items_per_call: int = 1
    setup: Callable[[], Any] | None = None
    teardown: Callable[[], Any] | None = None
    warmup: int = 1

    def __post_init__(self):
        if self.items_per_call <= 0:
            raise ValueError(f"{self.name}: items_per_call must be positive")
        if self.warmup < 1:
            raise ValueError(f"{self.name}: at least one warm-up call (compile outside timing)")


@dataclass
class Stats:
    """One method's measurements: per round, wall and CPU seconds per item."""

    name: str
    items_per_call: int
    calls_per_round: int
    """Calls per round from calibration."""
    wall: list[float] = field(default_factory=list)
    """Wall seconds per item, one entry per round."""
    cpu: list[float] = field(default_factory=list)
    """CPU seconds per item (``cpu_seconds``), one entry per round."""
    round_seconds: list[float] = field(default_factory=list)
    """Wall seconds of this method's share of each round (>= min_seconds)."""
    calls: list[int] = field(default_factory=list)
    """Calls made in each round (``calls_per_round``, more if a round ran short)."""
    min_seconds: float = 0.0
    """The seconds per round that were asked for."""
    group: int = 0
    """Which ``measure`` call produced it: ratios only compare methods of one call."""

    def summary(self) -> dict:
        wall, cpu = _spread(self.wall), _spread(self.cpu)
        return {"wall_s_per_item": wall, "cpu_s_per_item": cpu,
                "items_per_s": 1.0 / wall["median"] if wall["median"] > 0 else math.inf,
                "cpu_per_wall": statistics.median(c / w for c, w in zip(self.cpu, self.wall)),
                "items_per_call": self.items_per_call, "calls_per_round": self.calls_per_round,
                "calls": list(self.calls),
                "rounds": len(self.wall), "min_round_seconds": min(self.round_seconds)}


def _spread(values: list[float]) -> dict:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"median": med, "min": lo, "max": hi,
            "spread": (hi - lo) / med if med > 0 else math.inf}


def _timed(method: Method, calls: int, min_seconds: float) -> tuple[int, float, float]:
    """Run ``calls`` calls, then more until ``min_seconds`` have passed;
    -> (calls made, wall seconds, CPU seconds)."""
    run = method.run
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    for _ in range(calls):
        run()
    made = calls
    while time.perf_counter() - t0 < min_seconds:
        run()
        made += 1
    t1 = time.perf_counter()
    return made, t1 - t0, cpu_seconds() - c0


def _calibrate(method: Method, min_seconds: float) -> int:
    """Calls per round so that one round of this method takes >= min_seconds."""
    calls, elapsed = 0, 0.0
    while elapsed < CALIBRATION_SECONDS and elapsed < min_seconds:
        t0 = time.perf_counter()
        method.run()
        elapsed += time.perf_counter() - t0
        calls += 1
    per_call = elapsed / calls
    return max(1, math.ceil(MARGIN * min_seconds / per_call)) if per_call > 0 else 1


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(methods: list[Method], rounds: int = MIN_ROUNDS,
            min_seconds: float = MIN_SECONDS) -> dict[str, Stats]:
    """Set up, warm up and calibrate every method, then run ``rounds`` interleaved rounds;
    returns ``{name: Stats}`` in the order given.  In each round a method makes its calibrated
    number of calls, and more if they took less than ``min_seconds``.  Before every timed block
    threads are re-pinned to the count in effect when ``measure`` was called, and
    ``gc.collect()`` runs."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds must be >= {MIN_ROUNDS}, got {rounds}")
    if min_seconds <= 0:
        raise ValueError(f"min_seconds must be positive, got {min_seconds}")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique: {names}")
    threads = _current_threads()
    group = time.monotonic_ns()
    stats = {}
    for m in methods:
        _log(f"  warm-up {m.name} ...")
        _repin(threads)
        if m.setup is not None:
            m.setup()
        for _ in range(m.warmup):
            m.run()
        calls = _calibrate(m, min_seconds)
        stats[m.name] = Stats(m.name, m.items_per_call, calls, min_seconds=min_seconds,
                               group=group)
    for r in range(rounds):
        order = methods[r % len(methods):] + methods[:r % len(methods)]
        for m in order:
            s = stats[m.name]
            gc.collect()
            _repin(threads)
            calls, wall, cpu = _timed(m, s.calls_per_round, min_seconds)
            items = calls * m.items_per_call
            s.calls.append(calls)
            s.wall.append(wall / items)
            s.cpu.append(cpu / items)
            s.round_seconds.append(wall)
        _log(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{m.name} {_fmt_time(stats[m.name].wall[-1])}/item" for m in methods))
    for m in methods:
        if m.teardown is not None:
            m.teardown()
    return stats


# ----------------------------------------------------------------------------- ratios

def _ratio(results: Mapping[str, Stats], a: str, b: str, kind: str, cpu: bool,
           target: float | None) -> dict:
    for name in (a, b):
        if name not in results:
            raise KeyError(f"no method {name!r} in results ({', '.join(results)})")
    sa, sb = results[a], results[b]
    if sa.group != sb.group:
        raise ValueError(f"{a!r} and {b!r} were measured by different measure() calls; "
                         "per-round ratios need methods interleaved in one call")
    xa, xb = (sa.cpu, sb.cpu) if cpu else (sa.wall, sb.wall)
    per_round = [(x / y if kind == "ratio" else y / x) if min(x, y) > 0 else math.inf
                 for x, y in zip(xa, xb)]
    out = {**_spread(per_round), "per_round": per_round, "kind": kind, "a": a, "b": b,
           "clock": "cpu" if cpu else "wall"}
    out["stable"] = out["spread"] <= SPREAD_LIMIT
    if target is not None:
        out["target"] = target
        out["meets_target"] = (out["median"] <= target if kind == "ratio"
                               else out["median"] >= target)
    return out


def ratio(results: Mapping[str, Stats], a: str, b: str, *, cpu: bool = False,
          target: float | None = None) -> dict:
    """a's time per item / b's, per round (lower is better; ``meets_target``: median <= target)."""
    return _ratio(results, a, b, "ratio", cpu, target)


def speedup(results: Mapping[str, Stats], a: str, b: str, *, cpu: bool = False,
            target: float | None = None) -> dict:
    """b's time per item / a's, per round: a is X times faster (``meets_target``: >= target)."""
    return _ratio(results, a, b, "speedup", cpu, target)


# ----------------------------------------------------------------------------- output

def report(results: Mapping[str, Stats], headline: Mapping[str, dict], *, title: str = "",
           item: str = "item", secondary: Mapping[str, dict] | None = None,
           extra: Mapping[str, Any] | None = None) -> dict:
    """Print the method and ratio tables on stderr; return the benchmark's JSON dict.

    ``headline``: the issue's figures (``ratio``/``speedup`` results); their medians also go at
    the top level under their names, and ``stable`` is false if any has spread > 20 %.
    ``secondary``: more ratios, reported but not deciding ``stable``."""
    secondary = dict(secondary or {})
    rows = []
    for name, s in results.items():
        w, c = _spread(s.wall), _spread(s.cpu)
        rows.append({"method": name, f"wall/{item}": _fmt_time(w["median"]),
                     "min-max": f"{_fmt_time(w['min'])}-{_fmt_time(w['max'])}",
                     "spread": f"{100 * w['spread']:.0f}%", f"{item}s/s": 1 / w["median"],
                     f"cpu/{item}": _fmt_time(c["median"]),
                     "calls/round": f"{min(s.calls)}-{max(s.calls)}" if min(s.calls) != max(s.calls)
                     else str(s.calls[0])})
    table(rows, title)
    ratio_rows = []
    for name, r in [*headline.items(), *secondary.items()]:
        ratio_rows.append({"figure": name + ("" if name in headline else " (secondary)"),
                           "median": r["median"], "min": r["min"], "max": r["max"],
                           "spread": f"{100 * r['spread']:.0f}%",
                           "stable": r["stable"],
                           "target": (("<= " if r["kind"] == "ratio" else ">= ")
                                      + f"{r['target']:g}") if "target" in r else "-",
                           "meets": r.get("meets_target", "-")})
    table(ratio_rows, "ratios (per round, then median and min-max over rounds)")
    stable = all(r["stable"] for r in headline.values())
    if not stable:
        _log("stable: false (a headline ratio's spread exceeds "
             f"{100 * SPREAD_LIMIT:.0f}%; the machine was busy?)")
    out = {name: r["median"] for name, r in headline.items()}
    out.update({
        "ratios": {**headline, **secondary},
        "headline": list(headline),
        "methods": {name: s.summary() for name, s in results.items()},
        "stable": stable,
        "rounds": min(len(s.wall) for s in results.values()),
        "min_seconds": min(s.min_seconds for s in results.values()),
        "min_round_seconds": min(min(s.round_seconds) for s in results.values()),
        "cpu_clock": cpu_clock(),
        "item": item,
    })
    for k, v in (extra or {}).items():
        if k in out:
            raise ValueError(f"extra key {k!r} collides with a report key")
        out[k] = v
    return out


def env_info() -> dict:
    """torch version, threads, device, CPU model and count, load average, python."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    torch = sys.modules.get("torch")
    device = "cpu"
    if torch is not None and torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    return {
        "torch": torch_version,
        "threads": _current_threads() or int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def emit(result: Mapping[str, Any], benchmark: str | None = None) -> None:
    """Print ``result`` + ``benchmark`` + ``env`` as one strict JSON object (inf/nan -> null),
    the last stdout line.  ``env`` keys the benchmark set itself (``cv2_threads``) are kept."""
    out = dict(result)
    if benchmark is not None:
        out.setdefault("benchmark", benchmark)
    out["env"] = {**env_info(), **out.get("env", {})}
    sys.stderr.flush()
    sys.stdout.flush()
    print(json.dumps(_finite(out), sort_keys=True, default=_json_default, allow_nan=False),
          flush=True)


def _finite(o):
    """inf / nan -> None, so the line stays strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o):
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return str(s)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def table(rows: list[dict], title: str = "") -> None:
    """Print rows (dicts with the same keys) as an aligned table on stderr."""
    if title:
        print(title, file=sys.stderr)
    if not rows:
        return
    keys = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(k), *(len(fmt(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)), file=sys.stderr)
    for r in rows:
        print("  ".join(fmt(r[k]).ljust(w) for k, w in zip(keys, widths)), file=sys.stderr)
    print(file=sys.stderr)

