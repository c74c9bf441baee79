"""The run folder beside the .beton: resolved config, plan hash, per-class counts, throughput
log, contact sheet, guard report; plus the progress bar (images/s, ETA, per-stage split).

    clone.run/config.yaml       resolved GenerateConfig + plan header + git commit
    clone.run/state.json        plan hash and shard (checked before resuming)
    clone.run/throughput.jsonl  one line per progress update
    clone.run/summary.json      counts per class, guard counts, stage times, images/s
    clone.run/dropped.json      CLIP-filter drops and failed rows (when any)
    clone.run/contact_sheet.png the first images, a grid captioned with class names
    clone.run/contact_sheet.html the same images with class names and prompts
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

from engine.paths import atomic_write

THUMB = 128           # contact-sheet cell size (pixels; loaders.sheets draws the captions)
PROGRESS_EVERY = 1.0  # seconds between throughput log lines


class RunLog:
    def __init__(self, run_dir, plan, shard, cfg, applied, resumed: int, total: int):
        self.run_dir = run_dir
        self.plan = plan
        self.shard = list(shard)
        self.cfg = cfg
        self.applied = applied
        self.resumed = resumed
        self.total = total
        self.times: Counter = Counter()
        self.per_class: Counter = Counter()
        self.failed: list[int] = []
        self.thumbs: list = []
        self.written = 0
        self._bar = None
        self._t0 = self._last = time.perf_counter()

    # ------------------------------------------------------------------ files
    def write_state(self) -> None:
        from engine.runs import write_run_config

        with atomic_write(os.path.join(self.run_dir, "state.json"), "w", encoding="utf-8") as f:
            json.dump({"plan_hash": self.plan.hash, "shard": self.shard,
                       "num_rows": self.total}, f)
        write_run_config(self.run_dir, {"generate": self.cfg.to_dict(), "applied": self.applied,
                                        "shard": self.shard, "plan_hash": self.plan.hash,
                                        "plan_header": self.plan.header})

    def _append_throughput(self, record: dict) -> None:
        with open(os.path.join(self.run_dir, "throughput.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ events
    def start(self, todo: int) -> None:
        self._t0 = self._last = time.perf_counter()
        if self.cfg.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.resumed, unit="img",
                             desc=f"generate {self.shard[0]}/{self.shard[1]}", smoothing=0.1)

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

    def progress(self, stats) -> None:
        now = time.perf_counter()
        if now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        ips = self.written / max(now - self._t0, 1e-9)
        split = self.split()
        if self._bar is not None:
            self._bar.set_postfix_str(" ".join(f"{k}={v:.0%}" for k, v in split.items()))
        self._append_throughput({"t": round(now - self._t0, 3), "written": self.written,
                                 "images_per_s": round(ips, 4), "split": split,
                                 "resampled": stats["resampled"]})

    def finish(self, stats, sampler, status: str, clip=None, out=None, per_class=None) -> dict:
        """Write summary.json (+ dropped.json, contact sheet); ``per_class`` counts the whole
        output (resumed rows included), else only this session's images are counted."""
        elapsed = time.perf_counter() - self._t0
        if self._bar is not None:
            self._bar.close()
        times = dict(self.times)
        times.update({f"sampler.{k}": v for k, v in sampler.times.items()})
        summary = {
            "status": status, "out": out, "shard": self.shard, "plan_hash": self.plan.hash,
            "rows": self.total, "resumed": self.resumed, "written": self.written,
            "images_per_s": self.written / elapsed if elapsed > 0 else 0.0,
            "elapsed_s": elapsed, "per_class": {str(k): v for k, v in sorted((per_class or self.per_class).items())},
            "guards": {"nonfinite": stats["nonfinite"], "blank": stats["blank"],
                       "resampled": stats["resampled"], "failed": stats["failed"],
                       "dropped_clip": stats["dropped_clip"],
                       "nsfw_flagged": stats["nsfw_flagged"]},
            "embedding_cache": sampler.cache.stats(), "unet_calls": sampler.unet_calls,
            "stage_seconds": {k: round(v, 4) for k, v in sorted(times.items())},
            "stage_split": self.split(),
        }
        self._append_throughput({"t": round(elapsed, 3), "written": self.written,
                                 "images_per_s": round(summary["images_per_s"], 4),
                                 "split": summary["stage_split"], "final": status})
        with atomic_write(os.path.join(self.run_dir, "summary.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
        dropped = {"clip_dropped": clip.dropped if clip is not None else [],
                   "failed_sample_ids": self.failed}
        if dropped["clip_dropped"] or self.failed:
            with atomic_write(os.path.join(self.run_dir, "dropped.json"), "w",
                              encoding="utf-8") as f:
                json.dump(dropped, f, indent=1)
        if self.thumbs:
            _save_sheet(self.thumbs, os.path.join(self.run_dir, "contact_sheet.png"))
        if status in ("done", "interrupted"):  # this machine's rate, for inspect's estimates
            from engine.rates import record_run

            record_run(self.plan.rows, self.written, elapsed, model=self.cfg.model,
                       applied=self.applied, run_dir=self.run_dir)
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
