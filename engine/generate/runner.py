"""``generate(plan, out, cfg)``: a plan becomes a .beton, resumable and shardable.

:meth:`GenerateRun.__call__` reads as the table of contents: 1. setup, 2. output (finished /
resume / start), 3. model, 4. writer, 5. loop, 6. finish; each step is a method below it.
"""
from __future__ import annotations

import sys
from collections import Counter

from engine.generate.config import GenerateConfig, require_model
from engine.generate.output import (GenerateError, Output, check_resume, check_run_dir,
                                    finished_run, foreign_output, job_record, make_run_dir,
                                    run_identity)
from engine.generate.fingerprint import model_fingerprint, pixel_settings
from engine.generate.setup_model import resolve_device, resolve_dtype, torch_threads

__all__ = ["GenerateError", "GenerateRun", "generate"]


def generate(plan, out: str, cfg: GenerateConfig, shard=(0, 1), overwrite: bool = False,
             model=None, limit: int | None = None, announce: str | None = None) -> dict:
    """Generate ``plan`` (shard ``i/n``) into ``out``; returns the run summary dict.

    ``model``: an already loaded pipeline (tests, benchmarks) instead of loading ``cfg.model``.
    ``limit``: only the plan's first ``limit`` rows (a preview; recorded with the output);
    None or 0: all rows.
    ``announce``: why this shard was chosen; printed (stderr) when the work starts, so errors
    before it stay one line.
    """
    return GenerateRun(plan, out, cfg, shard, overwrite, model, limit, announce)()


class GenerateRun:
    """One call of :func:`generate`; the attributes are filled step by step."""

    def __init__(self, plan, out: str, cfg: GenerateConfig, shard=(0, 1),
                 overwrite: bool = False, model=None, limit: int | None = None,
                 announce: str | None = None):
        self.plan, self.cfg, self.shard = plan, cfg, tuple(shard)
        self.out, self.overwrite, self.model = out, overwrite, model
        self.limit = limit or None                      # 0 = all rows (as every --limit)
        self.announce = announce

    def __call__(self) -> dict:
        # 1. setup: this shard's rows, the files they go to, the settings that make the pixels
        self.setup()
        # 2. output: a finished output of this very run has nothing to do; a partial must match
        finished = self.check_output()
        if finished is not None:
            return finished
        with torch_threads(self.cfg.threads):           # restored when the run ends
            # 3. model: load and prepare it before any output is touched
            self.load_model()
            # 4. writer: create or resume the .beton; record the run state
            self.open_writer()
            # 5. loop: denoise -> tail (decode, guards, write) -> re-samples
            self.run_loop()
            # 6. finish: close the .beton atomically, write the summary
            return self.finish()

    # ------------------------------------------------------------------ 1. setup
    def setup(self) -> None:
        if self.model is None:
            require_model(self.cfg)
        self.cfg = real_source(self.cfg, self.plan)
        i, n = self.shard
        work = limit_rows(self.plan, self.limit)
        work = work.shard(i, n) if n > 1 else work
        self.rows = sorted(work.rows, key=lambda r: r.sample_id)
        if not self.rows:
            raise GenerateError(f"shard {i}/{n} of the plan has no rows (plan has "
                                f"{len(self.plan)})")
        self.index = {r.sample_id: k for k, r in enumerate(self.rows)}  # plan id -> .beton index
        self.output = Output.for_shard(self.out, i, n)
        self.identity = run_identity(self.plan, self.shard, len(self.rows), self.limit)
        self.device = resolve_device(self.cfg.device)
        self.dtype = resolve_dtype(self.cfg.dtype, self.device)
        model = model_fingerprint(self.cfg.model, self.cfg.model_config,
                                  given=self.model is not None)
        self.settings = pixel_settings(self.cfg, self.dtype, model)

    # ------------------------------------------------------------------ 2. output
    def check_output(self) -> dict | None:
        out = self.output
        self.resuming = out.partial_exists() and not self.overwrite
        if out.exists() and not self.overwrite:
            done = finished_run(out, self.identity, self.settings)
            if done is None:
                raise foreign_output(out, self.identity)
            return done
        if self.resuming:
            check_resume(out, self.identity, self.settings)
        return None

    # ------------------------------------------------------------------ 3. model
    def load_model(self) -> None:
        from engine.generate.batching import conditioning_mode
        from engine.generate.denoise import Denoiser
        from engine.generate.models import load_model
        from engine.generate.setup_model import prepare

        cfg, device, dtype = self.cfg, self.device, self.dtype
        modes = {conditioning_mode(r) for r in self.rows}
        loader = None
        if modes - {"text"}:
            from engine.generate.images import RealImages

            loader = RealImages(cfg.real)
        if self.model is None:
            check_family(cfg, modes)                        # before loading a large model
        pipe = self.model if self.model is not None else load_model(
            cfg.model, cfg.model_config, cfg.safety_checker)
        self.applied = prepare(pipe, cfg, device, dtype)
        self.denoiser = Denoiser(pipe, device, dtype, cfg.cfg_batched, cfg.embed_cache,
                                 self.applied["channels_last"], image_loader=loader)
        self.denoiser.check_modes(modes, f"--model {cfg.model}")
        self.safety_checker = None
        if getattr(pipe, "safety_checker", None) is not None:
            def flagged(x):
                _, nsfw = pipe.run_safety_checker(x, device, dtype)
                return {k for k, f in enumerate(nsfw or []) if f}

            self.safety_checker = flagged
        self.clip = None
        if cfg.clip_filter:
            from engine.generate.clip_filter import load_clip_filter

            self.clip = load_clip_filter(cfg, self.plan, self.rows, device)

    # ------------------------------------------------------------------ 4. writer
    def open_writer(self) -> None:
        from loaders.beton.schema import generated_fields
        from loaders.beton.writer import BetonWriter

        from engine.generate.runlog import RunLog

        cfg, out = self.cfg, self.output
        check_run_dir(out, self.resuming, self.overwrite)
        job = job_record(self.identity, self.settings)
        # the writer takes the output's lock: from here on this process is its only writer
        if self.resuming:
            writer = BetonWriter.resume(out.beton, num_workers=cfg.writer_workers,
                                        durable=cfg.durable)
            try:
                if writer.job is not None:              # the journal's record, read under lock
                    check_resume(out, self.identity, self.settings, prev=writer.job)
                if writer.num_samples != len(self.rows):
                    raise GenerateError(f"{out.beton}.partial holds {writer.num_samples} samples,"
                                        f" the plan shard {len(self.rows)}; pass --overwrite to "
                                        "start over")
            except BaseException:
                writer.abort()
                raise
        else:
            writer = BetonWriter(out.beton, num_samples=len(self.rows),
                                 fields=generated_fields(cfg.store_size, cfg.jpeg_quality),
                                 num_workers=cfg.writer_workers, overwrite=self.overwrite,
                                 durable=cfg.durable, info=self.file_info(), job=job)
        make_run_dir(out, self.resuming)
        self.writer = writer
        done = writer.done_ids
        self.todo = [r for r in self.rows if self.index[r.sample_id] not in done]
        self.log = RunLog(out.run, self.identity, cfg, self.applied, self.plan.header,
                          resumed=len(done), total=len(self.rows), rows=self.todo)
        self.log.write_state(settings=self.settings, status="running")

    def file_info(self):
        """What the .beton is (kind, plan hash, class names, recipes), stored with it; from
        every row of the plan, so that all shards of a plan describe it alike."""
        from loaders.beton.schema import generated_info

        return generated_info(self.plan.hash, self.plan.recipes,
                              {(r.label, r.wnid) for r in self.plan.rows},
                              self.plan.header.get("class_names"))

    # ------------------------------------------------------------------ 5. loop
    def run_loop(self) -> None:
        import torch

        from engine.generate.loop import GenerationLoop

        cfg = self.cfg
        self.loop = GenerationLoop(self.denoiser, self.writer, self.log, cfg, index=self.index,
                                   recipes=list(self.plan.recipes), clip=self.clip,
                                   safety_checker=self.safety_checker)
        if self.announce:
            print(f"synthclone generate: shard {self.shard[0]}/{self.shard[1]} ({self.announce})"
                  f": {len(self.todo)} of {len(self.rows)} rows to generate", file=sys.stderr,
                  flush=True)
        if cfg.compile and self.todo:
            self.compile_warm_up()
        self.log.start()
        try:
            self.loop.run(self.todo)
        except KeyboardInterrupt:
            self._stop("interrupted")
            raise
        except torch.OutOfMemoryError as exc:
            self._stop("out_of_memory")
            raise GenerateError(
                f"out of GPU memory at batch size {cfg.batch_size}: rerun the same command with "
                f"a smaller --batch-size (e.g. {max(1, cfg.batch_size // 2)}) to resume; "
                "--vae-slicing/--vae-tiling also lower peak memory") from exc
        except BaseException as exc:
            if is_disk_full(exc):
                self.writer.abort()        # a writer that hit ENOSPC writes nothing more
                self.log.close_bar()
                raise self._disk_full() from exc
            self._stop("failed")
            raise

    def compile_warm_up(self) -> None:
        """torch.compile compiles on first use: do it now, say so, and keep it out of images/s."""
        from engine import env

        print("synthclone generate: compiling the UNet and VAE decoder with torch.compile "
              "(once per shape; ~1-2 min on a CPU the first time, cached in "
              f"{env.inductor_cache_dir() or 'torch default cache'}) ...", file=sys.stderr,
              flush=True)
        self.log.compile_s = self.loop.warm_up(self.todo)
        print(f"synthclone generate: compiled in {self.log.compile_s:.1f} s (not counted in "
              "images/s)", file=sys.stderr, flush=True)

    def _disk_full(self) -> GenerateError:
        """Disk full: one line, and no summary written onto the full disk."""
        return GenerateError(f"the disk is full (writing {self.output.beton}): free some space or "
                             "choose another --out, then rerun the same command to resume; the "
                             "images committed so far are kept")

    def _stop(self, status: str) -> None:
        """After a failed loop: keep the journaled partial, record what happened."""
        self.writer.abort()
        self.log.finish(status, self.loop.counts, self.denoiser, dropped=self._dropped())

    # ------------------------------------------------------------------ 6. finish
    def finish(self) -> dict:
        counts, have = self.loop.counts, self.writer.appended_ids
        if not have:
            self.writer.abort()
            self.log.finish("nothing_written", counts, self.denoiser, out=self.output.beton,
                            dropped=self._dropped())
            raise GenerateError(
                f"no image passed the guards ({counts.failed} rows failed after "
                f"{self.cfg.max_resample} re-samples, {counts.dropped_clip} CLIP-dropped); see "
                f"{self.output.run.file('dropped.json')}")
        # the completion marker goes first: a crash right after the rename is then recognised
        self.log.write_state(settings=self.settings, status="finalizing", num_samples=len(have))
        try:
            self.writer.close(shrink=len(have) < len(self.rows))
        except BaseException as exc:
            if is_disk_full(exc):
                raise self._disk_full() from exc
            raise
        per_class = Counter(r.label for r in self.rows if self.index[r.sample_id] in have)
        return self.log.finish("done", counts, self.denoiser, out=self.output.beton,
                               per_class=per_class, dropped=self._dropped())

    def _dropped(self) -> dict:
        return {"clip_dropped": self.clip.dropped if self.clip is not None else [],
                "failed_sample_ids": self.loop.failed_ids}


def check_family(cfg: GenerateConfig, modes) -> None:
    """Refuse rows the model's family cannot generate, when the family is known without loading
    the model (built-ins, folders, checkpoint files, cached hub ids)."""
    from engine.errors import ConfigError
    from engine.generate.families import modes_problem
    from engine.generate.models import spec_family

    family = spec_family(cfg.model, cfg.model_config)
    problem = family and modes_problem(family, modes, f"--model {cfg.model}")
    if problem:
        raise ConfigError(problem)


def real_source(cfg: GenerateConfig, plan) -> GenerateConfig:
    """``cfg`` with ``real`` = the plan's recorded real-image source when none is given and the
    plan has image-conditioned rows (``synthclone plan --from-images`` records it); a given
    ``--real`` as an absolute path (what the run records and a resume compares)."""
    import dataclasses

    import os

    if cfg.real is not None:
        return dataclasses.replace(cfg, real=os.path.abspath(cfg.real))   # recorded as one path
    recorded = (plan.header.get("real_images") or {}).get("source")
    if recorded and any(r.init_image is not None for r in plan.rows):
        return dataclasses.replace(cfg, real=recorded)
    return cfg


def limit_rows(plan, limit: int | None):
    """The plan cut to its first ``limit`` rows (file order), or the plan itself."""
    if limit is None:
        return plan
    from engine.plan import Plan

    if limit < 0:
        raise GenerateError(f"--limit {limit}: must be >= 0 (0 = all rows)")
    return Plan(dict(plan.header, num_rows=min(limit, len(plan)), limit=limit),
                plan.rows[:limit])


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is ENOSPC / EDQUOT."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
