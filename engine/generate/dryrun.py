"""``generate --dry-run``: what a run would do, and how long it would take here, writing nothing.

The estimate comes from this machine, now: the model is loaded and prepared (without
torch.compile) and the first batch is timed at 1 and 2 denoising steps (after one warm-up),
which separates the per-step cost (UNet) from the fixed cost per batch (conditioning, VAE
decode, uint8); extrapolated to the batch's own steps this is a :class:`engine.rates.Rate`,
and :func:`engine.rates.estimate_seconds` scales it to every row (steps x pixels), as
``synthclone inspect PLAN`` does with recorded rates. Model loading, compilation, re-samples
and the writer (which overlaps the UNet) are not included; on a shared machine it is rough.
"""
from __future__ import annotations

import time
from collections import Counter


def calibrate(denoiser, rows, cfg):
    """A :class:`engine.rates.Rate` measured on the first batch of ``rows`` (1 and 2 steps,
    after a warm-up, extrapolated to the batch's steps)."""
    from engine.generate.batching import Batch, group_batches
    from engine.generate.tail import postprocess
    from engine.rates import Rate

    first = group_batches(rows, cfg.batch_size, cfg.group_batches)[0]

    def once(steps: int) -> float:
        t0 = time.perf_counter()
        x = denoiser.decode(denoiser.denoise(Batch(first.key._replace(steps=steps), first.rows)))
        postprocess(x, cfg.store_size)
        return time.perf_counter() - t0

    once(1)                                               # warm-up (allocations, kernels)
    t1, t2 = once(1), once(2)
    per_step = max(t2 - t1, 0.0)
    fixed = max(t1 - per_step, 0.0)
    k, b = first.key, len(first.rows)
    steps = k.steps * (k.strength if k.mode == "img2img" else 1.0)
    seconds = fixed + per_step * steps
    return Rate(images_per_s=b / max(seconds, 1e-9), steps=steps, pixels=k.height * k.width,
                model=cfg.model, device=str(denoiser.device),
                dtype=str(denoiser.dtype).replace("torch.", ""), images=b,
                seconds=round(seconds, 3),
                source=f"one batch of {b} at {k.height}x{k.width} timed now ({per_step:.2f} s "
                       f"per step + {fixed:.2f} s per batch)")


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
        "settings": run.settings, "estimate_s": None, "rate": None,
    }
    if calibrate_time and state != "complete":
        from engine.rates import estimate_seconds

        run.cfg = dataclasses.replace(cfg, compile=False)  # compile time is not the rate
        run.load_model()
        rate = calibrate(run.denoiser, run.rows, run.cfg)
        run.cfg = cfg
        result["rate"] = dataclasses.asdict(rate)
        result["estimate_s"] = estimate_seconds(run.rows, rate)
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
        r = d["rate"]
        lines.append(f"estimate: ~{_duration(d['estimate_s'])} for {d['rows']} images at this "
                     f"machine's measured rate, {r['images_per_s']:.3g} images/s ({r['source']}; "
                     "other sizes and steps scaled by steps x pixels; model loading, "
                     "compilation and re-samples not included)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
