"""Shared benchmark helpers: thread pinning, timing (median, p20, p80), env, tables."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time


def pin_threads(n: int | None = None) -> int:
    """Pin torch/OpenMP threads (default: all cores, at most 2 here); returns what was used."""
    import torch

    n = n or int(os.environ.get("BENCH_THREADS", 0)) or min(os.cpu_count() or 1, 2)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    return n


def env_info() -> dict:
    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def timeit(fn, repeat: int = 5, warmup: int = 1) -> dict:
    """Run ``fn`` warmup+repeat times; median/p20/p80 seconds of the timed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(round(p * (len(times) - 1))))]  # noqa: E731
    return {"median": statistics.median(times), "p20": q(0.2), "p80": q(0.8), "runs": len(times)}


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
