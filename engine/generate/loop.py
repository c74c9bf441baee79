"""The generation loop: the UNet denoises batch k+1 on the main thread while batch k goes through
the tail (VAE decode -> uint8 -> guards -> writer) on a worker thread; rows that fail a guard are
re-sampled with a derived seed at the end, at most ``max_resample`` times.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from engine.generate.batching import Batch, group_batches
from engine.generate.guards import GuardCounts, blank_rows, nonfinite_rows
from engine.generate.tail import Tail, postprocess


@dataclass
class TailResult:
    """What the tail did with one batch."""

    attempt: int
    written: list = field(default_factory=list)
    """``[(row, uint8 image)]`` appended to the writer."""
    blank: list = field(default_factory=list)
    """Rows whose image was blank (or flagged by the safety checker): re-sampled."""
    nsfw: int = 0
    dropped_clip: int = 0
    times: dict = field(default_factory=dict)


class GenerationLoop:
    """Runs every batch of ``rows`` into ``writer``; ``log`` records images, times, progress."""

    def __init__(self, denoiser, writer, log, cfg, *, index: dict, recipes: list,
                 clip=None, safety_checker=None):
        self.denoiser = denoiser
        self.writer = writer
        self.log = log
        self.cfg = cfg
        self.index = index                 # plan sample_id -> .beton index
        self.recipes = recipes             # recipe name -> its index (the "recipe" field)
        self.clip = clip
        self.safety_checker = safety_checker
        self.counts = GuardCounts()
        self.failed_ids: list[int] = []
        self._batches = 0
        self._retry: dict[int, list] = {}

    # ------------------------------------------------------------------ the loop
    def warm_up(self, rows) -> float:
        """Run the first batch's shapes once through the UNet (two steps) and the VAE decoder,
        so that torch.compile compiles here, not inside the timed loop; returns the seconds."""
        first = group_batches(rows, self.cfg.batch_size, self.cfg.group_batches)[0]
        t0 = time.perf_counter()
        warm = Batch(first.key._replace(steps=min(first.key.steps, 2)), first.rows)
        self.denoiser.decode(self.denoiser.denoise(warm))
        self.denoiser.reset_times()
        return time.perf_counter() - t0

    def run(self, rows) -> None:
        """Generate ``rows``; on any error the tail is stopped and the error propagates."""
        cfg = self.cfg
        queue = deque(group_batches(rows, cfg.batch_size, cfg.group_batches))
        tail = Tail(self.process, async_=cfg.pipeline_tail, max_inflight=cfg.tail_inflight)
        try:
            while queue or self._retry:
                if not queue:                                   # re-samples go last
                    self._collect(tail.drain())
                    queue.extend(self._requeue())
                    continue
                batch = queue.popleft()
                t0 = time.perf_counter()
                latents = self.denoiser.denoise(batch)           # (B, C, h, w)
                self.log.add_time("unet+text", time.perf_counter() - t0)
                batch, latents = self._drop_nonfinite(batch, latents)
                if batch is not None:
                    tail.submit((batch, latents))
                self._collect(tail.take())
                self.log.progress(self.counts)
            self._collect(tail.drain())
        except KeyboardInterrupt:
            self._collect(tail.drain())       # keep what the tail finished: it is journaled
            tail.close()
            raise
        except BaseException:
            tail.close(wait=False)
            raise
        tail.close()

    def _drop_nonfinite(self, batch: Batch, latents):
        """Queue rows with NaN/Inf latents for a re-sample; the rest go on."""
        bad = set(nonfinite_rows(latents))
        if not bad:
            return batch, latents
        self.counts.nonfinite += len(bad)
        self._retry.setdefault(batch.attempt + 1, []).extend(
            batch.rows[k] for k in sorted(bad))
        good = [k for k in range(len(batch.rows)) if k not in bad]
        if not good:
            return None, None
        return Batch(batch.key, [batch.rows[k] for k in good], batch.attempt), latents[good]

    def _requeue(self) -> list[Batch]:
        out = []
        for attempt in sorted(self._retry):
            rows = self._retry.pop(attempt)
            if attempt > self.cfg.max_resample:
                self.counts.failed += len(rows)
                self.failed_ids.extend(r.sample_id for r in rows)
                continue
            self.counts.resampled += len(rows)
            out += [Batch(b.key, b.rows, attempt)
                    for b in group_batches(rows, self.cfg.batch_size, self.cfg.group_batches)]
        return out

    def _collect(self, results: list[TailResult]) -> None:
        for res in results:
            for stage, seconds in res.times.items():
                self.log.add_time(stage, seconds)
            for row, image in res.written:
                self.log.image_written(row, image)
            self.counts.nsfw_flagged += res.nsfw
            self.counts.dropped_clip += res.dropped_clip
            if res.blank:
                self.counts.blank += len(res.blank)
                self._retry.setdefault(res.attempt + 1, []).extend(res.blank)

    # ------------------------------------------------------------------ the tail (worker thread)
    def process(self, item) -> TailResult:
        """Decode, convert, check and write one batch (runs on the tail's worker thread)."""
        batch, latents = item
        cfg, res = self.cfg, TailResult(batch.attempt)
        t0 = time.perf_counter()
        x = self.denoiser.decode(latents)                              # (B, 3, H, W)
        t1 = time.perf_counter()
        images = postprocess(x, cfg.store_size)                        # (B, h, w, 3) uint8
        t2 = time.perf_counter()
        keep = self._guard(batch, x, images, res)
        arr = images.numpy()
        for k, row in enumerate(batch.rows):
            if keep[k]:
                self.writer.append(self.index[row.sample_id], {
                    "image": arr[k], "label": int(row.label), "sample_id": int(row.sample_id),
                    "recipe": self.recipes.index(row.recipe), "prompt": prompt_bytes(row.prompt)})
                res.written.append((row, arr[k]))
        self._batches += 1
        if cfg.flush_every > 0 and self._batches % cfg.flush_every == 0:
            self.writer.flush()                                        # journal commit
        res.times = {"decode": t1 - t0, "postprocess": t2 - t1,
                     "write": time.perf_counter() - t2}
        return res

    def _guard(self, batch: Batch, x, images, res: TailResult) -> list[bool]:
        """Which rows to write: blank and flagged images are re-sampled, CLIP drops recorded."""
        blank = set(blank_rows(images, self.cfg.blank_std))
        if self.safety_checker is not None:
            flagged = self.safety_checker(x)                   # flagged images come back black
            res.nsfw = len(flagged - blank)
            blank |= flagged
        res.blank = [batch.rows[k] for k in sorted(blank)]
        keep = [k not in blank for k in range(len(batch.rows))]
        if self.clip is not None and any(keep):
            kept = [k for k in range(len(keep)) if keep[k]]
            passed = self.clip.keep([batch.rows[k] for k in kept], images[kept])
            for k, ok in zip(kept, passed):
                if not ok:
                    keep[k] = False
                    res.dropped_clip += 1
        return keep


def prompt_bytes(prompt: str):
    """A prompt as the uint8 array the ``prompt`` BytesField stores (UTF-8)."""
    import numpy as np

    return np.frombuffer(prompt.encode("utf-8"), dtype=np.uint8)
