"""The run folder beside the .beton (written through :class:`engine.runs.RunDir`), and the
progress bar (images/s, ETA, per-stage split).

    clone.run/config.yaml       resolved GenerateConfig + plan header + git commit
    clone.run/state.json        plan hash, shard, pixel settings (checked before resuming)
    clone.run/throughput.jsonl  one line per progress update
    clone.run/summary.json      counts per class, guard counts, stage times, images/s
    clone.run/dropped.json      CLIP-filter drops and failed rows (when any)
    clone.run/contact_sheet.png the first images, a grid captioned with class names
    clone.run/contact_sheet.html the same images with class names and prompts

A finished (or interrupted) run also logs its rate for ``inspect``'s estimates
(``engine.rates.record_run``).
"""
from __future__ import annotations

import time
from collections import Counter

from engine.generate.output import STATE, SUMMARY

THUMB = 128           # contact-sheet cell size (pixels; loaders.sheets draws the captions)
PROGRESS_EVERY = 1.0  # seconds between throughput log lines


class RunLog:
    def __init__(self, run, identity: dict, cfg, applied: dict, plan_header: dict,
                 resumed: int, total: int, rows=()):
        self.run = run                    # engine.runs.RunDir
        self.identity = identity          # output.run_identity(...)
        self.cfg = cfg
        self.applied = applied
        self.plan_header = plan_header
        self.resumed = resumed
        self.total = total
        self.rows = rows                  # this run's plan rows (their settings scale the rate)
        self.times: Counter = Counter()
        self.per_class: Counter = Counter()
        self.thumbs: list = []
        self.written = 0
        self.compile_s = 0.0              # torch.compile warm-up, outside the timed loop
        self._bar = None
        self._t0 = self._last = time.perf_counter()

    @property
    def shard(self) -> list:
        return self.identity["shard"]

    # ------------------------------------------------------------------ files
    def write_state(self, **extra) -> None:
        """``state.json`` (what the output is made of) and ``config.yaml``."""
        self.run.write_json(STATE, {**self.identity, **extra})
        self.run.write_config({"generate": self.cfg.to_dict(), "applied": self.applied,
                               "shard": self.shard, "plan_hash": self.identity["plan_hash"],
                               "plan_header": self.plan_header})

    # ------------------------------------------------------------------ events
    def start(self) -> None:
        self._t0 = self._last = time.perf_counter()
        if self.cfg.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.resumed, unit="img",
                             desc=f"shard {self.shard[0]}/{self.shard[1]}", smoothing=0.1)

    def add_time(self, stage: str, seconds: float) -> None:
        self.times[stage] += seconds

    def image_written(self, row, image) -> None:
        self.written += 1
        self.per_class[row.label] += 1
        if self._bar is not None:
            self._bar.update(1)
        if len(self.thumbs) < self.cfg.contact_sheet:
            self.thumbs.append((_thumb(image), _caption(row), row.prompt))

    def split(self) -> dict:
        tot = sum(self.times.values()) or 1.0
        return {k: round(v / tot, 3) for k, v in sorted(self.times.items())}

    def progress(self, counts) -> None:
        now = time.perf_counter()
        if now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        ips = self.written / max(now - self._t0, 1e-9)
        split = self.split()
        if self._bar is not None:
            self._bar.set_postfix_str(" ".join(f"{k}={v:.0%}" for k, v in split.items()))
        self.run.append_jsonl("throughput.jsonl", {
            "t": round(now - self._t0, 3), "written": self.written, "images_per_s": round(ips, 4),
            "split": split, "resampled": counts.resampled})

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def finish(self, status: str, counts, denoiser, *, out=None, per_class=None,
               dropped=None) -> dict:
        """Write summary.json (+ dropped.json, contact sheet); ``per_class`` counts the whole
        output (resumed rows included), else only this session's images are counted."""
        elapsed = time.perf_counter() - self._t0
        self.close_bar()
        times = dict(self.times)
        times.update({f"sampler.{k}": v for k, v in denoiser.stage_times().items()})
        summary = {
            "status": status, "out": out, "shard": self.shard,
            "plan_hash": self.identity["plan_hash"], "rows": self.total,
            "resumed": self.resumed, "written": self.written,
            "images_per_s": self.written / elapsed if elapsed > 0 else 0.0, "elapsed_s": elapsed,
            "compile_s": round(self.compile_s, 3),
            "per_class": {str(k): v for k, v in sorted((per_class or self.per_class).items())},
            "guards": counts.to_dict(),
            "embedding_cache": denoiser.cache_stats(), "unet_calls": denoiser.unet_calls,
            "stage_seconds": {k: round(v, 4) for k, v in sorted(times.items())},
            "stage_split": self.split(),
        }
        self.run.append_jsonl("throughput.jsonl", {
            "t": round(elapsed, 3), "written": self.written,
            "images_per_s": round(summary["images_per_s"], 4), "split": summary["stage_split"],
            "final": status})
        self.run.write_json(SUMMARY, summary)
        if dropped and any(dropped.values()):
            self.run.write_json("dropped.json", dropped)
        if self.thumbs:
            _save_sheet(self.thumbs, self.run.file("contact_sheet.png"))
        if status in ("done", "interrupted"):  # this machine's rate, for inspect's estimates
            from engine.rates import record_run

            record_run(self.rows, self.written, elapsed, model=self.cfg.model,
                       applied=self.applied, run_dir=self.run.path)
        return summary


def _thumb(image):
    from PIL import Image

    im = Image.fromarray(image)
    im.thumbnail((THUMB, THUMB))
    return im


def _caption(row) -> str:
    """The class name under a contact-sheet image (ImageNet name, else the wnid or label)."""
    from engine.catalog import class_names, imagenet_index

    index = imagenet_index()
    return class_names()[index[row.wnid]] if row.wnid in index else (row.wnid or
                                                                       f"label {row.label}")


def _save_sheet(thumbs, path: str) -> None:
    """``thumbs``: ``(image, caption, prompt)``, drawn as a near-square captioned grid (PNG)
    and as an HTML sheet beside it with the prompts (``loaders.sheets``)."""
    from loaders.sheets import grid_rows, write_sheet

    write_sheet(grid_rows(thumbs), path, tile=THUMB)
