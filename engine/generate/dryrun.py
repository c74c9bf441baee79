"""``generate --dry-run``: what a run would do, and how long it would take here, writing nothing.

The estimate comes from this machine: the model is loaded and prepared (without torch.compile)
and the first batch is timed at 1 and 2 denoising steps (after one warm-up), which separates
the per-step cost (UNet) from the fixed cost per batch (text encoder, VAE decode, uint8):
``time(row) = (fixed + per_step * steps) / batch * pixels / calibration pixels``
(img2img rows run ``steps * strength`` steps). Model loading, compilation, re-samples and the
writer (which overlaps the UNet) are not included; on a shared machine the figure is rough.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass


@dataclass
class Calibration:
    fixed_s: float
    """Seconds per batch besides the denoising steps (conditioning, decode, postprocess)."""
    per_step_s: float
    """Seconds per denoising step of one batch."""
    batch: int
    height: int
    width: int

    def seconds(self, row) -> float:
        steps = row.steps * (row.strength if row.init_image is not None and row.strength is not None
                             else 1.0)
        scale = (row.height * row.width) / (self.height * self.width)
        return (self.fixed_s + self.per_step_s * steps) / self.batch * scale


def calibrate(denoiser, rows, cfg) -> Calibration:
    """Time the first batch of ``rows`` at 1 and 2 steps (after a warm-up)."""
    from engine.generate.batching import Batch, group_batches
    from engine.generate.tail import postprocess

    first = group_batches(rows, cfg.batch_size, cfg.group_batches)[0]

    def once(steps: int) -> float:
        t0 = time.perf_counter()
        x = denoiser.decode(denoiser.denoise(Batch(first.key._replace(steps=steps), first.rows)))
        postprocess(x, cfg.store_size)
        return time.perf_counter() - t0

    once(1)                                               # warm-up (allocations, kernels)
    t1, t2 = once(1), once(2)
    per_step = max(t2 - t1, 0.0)
    return Calibration(max(t1 - per_step, 0.0), per_step, len(first.rows), first.key.height,
                       first.key.width)


def preview(run, calibrate_time: bool = True) -> dict:
    """The dry run of a :class:`~engine.generate.runner.GenerateRun` (nothing is written)."""
    import dataclasses

    from engine.generate.batching import group_batches

    run.setup()
    out = run.output
    if out.exists() and not run.overwrite:
        state = "complete" if run.check_output() is not None else "?"
    elif out.partial_exists() and not run.overwrite:
        run.check_output()                                # refuses a mismatched resume
        state = "resume (a journaled partial exists; its rows are skipped)"
    else:
        state = "overwrite" if run.overwrite and (out.exists() or out.partial_exists()) else "new"
    cfg = run.cfg
    batches = group_batches(run.rows, cfg.batch_size, cfg.group_batches)
    kinds = Counter(b.key for b in batches)
    result = {
        "status": "dry_run", "out": out.beton, "run_dir": out.run_dir, "output": state,
        "shard": list(run.shard), "rows": len(run.rows), "plan_rows": len(run.plan),
        "limit": run.limit, "classes": dict(sorted(Counter(r.label for r in run.rows).items())),
        "batches": len(batches),
        "batch_kinds": [{**k._asdict(), "batches": n} for k, n in kinds.items()],
        "settings": run.settings, "estimate_s": None, "calibration": None,
    }
    if calibrate_time and state != "complete":
        run.cfg = dataclasses.replace(cfg, compile=False)  # compile time is not the rate
        run.load_model()
        cal = calibrate(run.denoiser, run.rows, run.cfg)
        run.cfg = cfg
        result["calibration"] = dataclasses.asdict(cal)
        result["estimate_s"] = sum(cal.seconds(r) for r in run.rows)
    return result


def format_preview(d: dict, shard_why: str | None = None) -> str:
    """The dry run as the lines ``synthclone generate --dry-run`` prints."""
    s = d["settings"]
    model = s["model"]
    lines = [
        "dry run: nothing was written",
        f"output:   {d['out']} ({d['output']}); run folder {d['run_dir']}",
        f"rows:     {d['rows']} (shard {d['shard'][0]}/{d['shard'][1]} of "
        + (f"the first {d['limit']} of " if d["limit"] else "") + f"{d['plan_rows']} plan rows)",
        f"classes:  {len(d['classes'])} ("
        + ", ".join(f"{k}: {v}" for k, v in list(d["classes"].items())[:8])
        + (", ..." if len(d["classes"]) > 8 else "") + " images)",
        f"batches:  {d['batches']}",
    ]
    if shard_why:
        lines.insert(3, f"shard:    {d['shard'][0]}/{d['shard'][1]} ({shard_why})")
    for k in d["batch_kinds"]:
        lines.append(f"  {k['batches']:>5} x {k['sampler']} {k['steps']} steps, guidance "
                     f"{k['guidance']:g}, {k['height']}x{k['width']}, {k['mode']}"
                     + (f" strength {k['strength']:g}" if k["strength"] is not None else ""))
    digest = str(model.get("hash") or "")
    lines.append(f"model:    {model['spec']} ({model['kind']}"
                 + (f", {digest}" if digest.startswith("builtin:") else
                    f", files sha256 {digest[:16]}" if digest else "") + ")")
    lines.append("settings: " + ", ".join(f"{k} {v}" for k, v in s.items()
                                          if k not in ("model",) and v is not None))
    if d["estimate_s"] is None:
        lines.append("estimate: unknown (no calibration run)"
                     if d["output"] != "complete" else "estimate: nothing to do")
    else:
        c = d["calibration"]
        lines.append(f"estimate: ~{_duration(d['estimate_s'])} for {d['rows']} images at this "
                     f"machine's measured rate (one batch of {c['batch']} at {c['height']}x"
                     f"{c['width']}: {c['per_step_s']:.2f} s per step + {c['fixed_s']:.2f} s; "
                     "model loading, compilation and re-samples not included)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
