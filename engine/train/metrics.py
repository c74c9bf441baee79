"""What a training run reports: JSONL lines, TensorBoard events, the progress bar, the plot.

Only rank 0 writes. ``metrics.jsonl`` gets one line per ``log_every`` steps (``kind: "train"``),
one per epoch (``kind: "epoch"``) and one per evaluation (``kind: "eval"``); TensorBoard gets the
same scalars when the ``tensorboard`` package is installed. The progress bar shows images/s, the
ETA and ``data``: the share of step time spent waiting for the loader.
"""
from __future__ import annotations

import json
import os
import sys
import time

from engine.paths import atomic_write

METRICS = "metrics.jsonl"


class MetricsLog:
    """Rank-0 sink for metric records (JSONL + optional TensorBoard)."""

    def __init__(self, run_dir: str | None, tensorboard: bool = True):
        self.path = os.path.join(run_dir, METRICS) if run_dir else None
        self.tb = None
        if run_dir and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL only
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(os.path.join(run_dir, "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines a killed run wrote after its last checkpoint (``step``)."""
        if not self.path or not os.path.exists(self.path):
            return
        keep = [line for line in read_jsonl(self.path) if line.get("step", 0) <= step]
        with atomic_write(self.path, "w", encoding="utf-8") as f:
            for rec in keep:
                f.write(json.dumps(rec, sort_keys=True) + "\n")

    def write(self, record: dict) -> None:
        if not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.tb is not None:
            kind, step = record.get("kind", "train"), record.get("step", 0)
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_jsonl(path: str) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
    return out


class StepClock:
    """Wall time split into waiting for data and the rest, between ``report()`` calls."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.t0 = time.perf_counter()
        self.wait = 0.0
        self.images = 0

    def waited(self, seconds: float, images: int) -> None:
        self.wait += seconds
        self.images += images

    def report(self) -> dict:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        out = {"images_per_s": self.images / elapsed, "data_wait_share": self.wait / elapsed,
               "seconds": elapsed}
        self.reset()
        return out


class ProgressBar:
    """tqdm over optimizer steps (rank 0, when asked); a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, initial: int = 0):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            file=sys.stderr, desc="train")

    def update(self, n: int = 1, **postfix) -> None:
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v)
                                  for k, v in postfix.items() if v is not None}, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
