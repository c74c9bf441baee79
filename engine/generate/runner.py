"""``generate(plan, out, cfg)``: a plan becomes a .beton, resumable and shardable.

Read top to bottom: 1. shard + paths, 2. refuse bad resumes, 3. load the model (errors before
any work), 4. open/resume the writer, 5. the loop (UNet on the main thread, the tail on a worker,
re-samples queued at the end), 6. finalize the .beton and the run folder.
"""
from __future__ import annotations

from engine.errors import UserError
import json
import os
import time
from collections import Counter, deque

from engine.generate.batching import Batch, group_batches
from engine.generate.config import GenerateConfig, run_dir_for, shard_path
from engine.generate.guards import blank_rows, nonfinite_rows
from engine.generate.runlog import RunLog
from engine.generate.tail import Tail, postprocess


class GenerateError(UserError, RuntimeError):
    """A generation run cannot start or continue; the message says what to do."""


def beton_fields(cfg: GenerateConfig) -> dict:
    from ffcv.fields import BytesField, IntField, RGBImageField

    return {"image": RGBImageField(write_mode="jpg", max_resolution=cfg.store_size,
                                   jpeg_quality=cfg.jpeg_quality),
            "label": IntField(), "sample_id": IntField(), "recipe": IntField(),
            "prompt": BytesField()}


def _check_resume(run_dir: str, plan, shard) -> None:
    state = os.path.join(run_dir, "state.json")
    if not os.path.exists(state):
        raise GenerateError(f"a partial .beton exists but {state} does not: cannot tell which "
                            "plan it belongs to; pass --overwrite to start over")
    with open(state, encoding="utf-8") as f:
        prev = json.load(f)
    if prev.get("plan_hash") != plan.hash or list(prev.get("shard", [0, 1])) != list(shard):
        raise GenerateError(
            f"refusing to resume: the partial output was made from plan {prev.get('plan_hash', '?')[:16]}"
            f" shard {prev.get('shard')}, this run has plan {plan.hash[:16]} shard {list(shard)}. "
            "Use the same plan and --shard, another --out, or --overwrite to start over")


def _finished_summary(run_dir: str, plan, shard) -> dict | None:
    """The summary of a finished run of this very plan shard (a relaunch has nothing to do)."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        prev = json.load(f)
    if prev.get("plan_hash") != plan.hash or prev.get("shard") != list(shard) or \
            prev.get("status") != "done":
        return None
    return {**prev, "status": "already_complete", "resumed": prev.get("written", 0),
            "written": 0}


def generate(plan, out: str, cfg: GenerateConfig, shard=(0, 1), overwrite: bool = False,
             model=None) -> dict:
    """Generate ``plan`` (shard ``i/n``) into ``out``; returns the run summary dict."""
    import torch

    from loaders.beton.writer import BetonWriter

    from engine.generate.models import load_model
    from engine.generate.sampling import Sampler
    from engine.generate.setup_model import prepare, resolve_device, resolve_dtype

    # 1. shard and paths
    i, n = shard
    work = plan.shard(i, n) if n > 1 else plan
    rows = sorted(work.rows, key=lambda r: r.sample_id)
    if not rows:
        raise GenerateError(f"shard {i}/{n} of the plan has no rows (plan has {len(plan)})")
    index = {r.sample_id: k for k, r in enumerate(rows)}       # global id -> .beton index
    out = shard_path(out, i, n)
    run_dir = run_dir_for(out)

    # 2. finished / partial outputs: refuse, overwrite or resume
    resuming = BetonWriter.partial_exists(out) and not overwrite
    if os.path.exists(out) and not overwrite:
        done = _finished_summary(run_dir, plan, (i, n))
        if done is None:
            raise GenerateError(f"{out} exists and was not made from this plan shard; pass "
                                "--overwrite to regenerate it, or another --out")
        return done
    if resuming:
        _check_resume(run_dir, plan, (i, n))

    # 3. the model, before any output is touched
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype, resolve_device(cfg.device))
    modes = {(r.init_image is not None, r.strength is not None) for r in rows}
    pipe = model if model is not None else load_model(
        cfg.model, cfg.model_config, cfg.safety_checker,
        with_image_encoder=(True, False) in modes)
    applied = prepare(pipe, cfg, device, dtype)
    loader = None
    if any(m[0] for m in modes):
        from engine.generate.images import RealImages

        loader = RealImages(cfg.real)
    sampler = Sampler(pipe, device, dtype, cfg.cfg_batched, cfg.embed_cache,
                      applied["channels_last"], image_loader=loader)
    clip = None
    if cfg.clip_filter:
        from engine.generate.guards import ClipFilter, ClipFilterConfig

        names = {r.label: (r.wnid or str(r.label)) for r in rows}
        names.update(_class_names(rows))
        clip = ClipFilter(ClipFilterConfig(cfg.clip_model, cfg.clip_pretrained,
                                           cfg.clip_threshold), names, device)

    # 4. the writer (new or resumed) and the run folder
    os.makedirs(run_dir, exist_ok=True)
    if resuming:
        writer = BetonWriter.resume(out, num_workers=cfg.writer_workers, durable=cfg.durable)
        if writer.num_samples != len(rows):
            writer.abort()
            raise GenerateError(f"{out}.partial holds {writer.num_samples} samples, the plan "
                                f"shard {len(rows)}; pass --overwrite to start over")
    else:
        from loaders.beton.schema import generated_info

        info = generated_info(plan.hash, plan.recipes, {(r.label, r.wnid) for r in plan.rows},
                              plan.header.get("class_names"))   # kind, plan hash, class names
        writer = BetonWriter(out, num_samples=len(rows), fields=beton_fields(cfg),
                             num_workers=cfg.writer_workers, overwrite=overwrite,
                             durable=cfg.durable, info=info)
    done = writer.done_ids
    log = RunLog(run_dir, plan, (i, n), cfg, applied, resumed=len(done), total=len(rows))
    log.write_state()
    todo = [r for r in rows if index[r.sample_id] not in done]
    recipes = list(plan.recipes)

    # 5. the loop
    stats = Counter()
    queue = deque(group_batches(todo, cfg.batch_size, cfg.group_batches))

    flushes, nsfw_count = [0], [0]

    def tail_fn(item):
        batch, latents = item
        t0 = time.perf_counter()
        x = sampler.decode(latents)                                   # (B, 3, H, W)
        t1 = time.perf_counter()
        u8 = postprocess(x, cfg.store_size)                           # (B, h, w, 3) uint8
        t2 = time.perf_counter()
        blank = set(blank_rows(u8, cfg.blank_std))
        if getattr(pipe, "safety_checker", None) is not None:
            # flagged images come back black: count them and re-sample like blank ones
            _, nsfw = pipe.run_safety_checker(x, device, dtype)
            flagged = {k for k, f in enumerate(nsfw or []) if f}
            nsfw_count[0] += len(flagged - blank)
            blank |= flagged
        keep = [k not in blank for k in range(len(batch.rows))]
        if clip is not None:
            ok = clip.keep([r for r, kp in zip(batch.rows, keep) if kp], u8[keep])
            it = iter(ok)
            dropped = [kp and not next(it) for kp in keep]
        else:
            dropped = [False] * len(keep)
        arr = u8.numpy()
        written = []
        for k, r in enumerate(batch.rows):
            if not keep[k] or dropped[k]:
                continue
            writer.append(index[r.sample_id], {
                "image": arr[k], "label": int(r.label), "sample_id": int(r.sample_id),
                "recipe": recipes.index(r.recipe),
                "prompt": _prompt_bytes(r.prompt)})
            written.append((r, arr[k]))
        flushes[0] += 1
        if cfg.flush_every > 0 and flushes[0] % cfg.flush_every == 0:
            writer.flush()                                            # journal commit
        t3 = time.perf_counter()
        return {"blank": [batch.rows[k] for k in sorted(blank)], "attempt": batch.attempt,
                "written": written, "dropped": sum(dropped),
                "times": {"decode": t1 - t0, "postprocess": t2 - t1, "write": t3 - t2}}

    tail = Tail(tail_fn, async_=cfg.pipeline_tail, max_inflight=cfg.tail_inflight)
    retry: dict[int, list] = {}

    def collect(results):
        for res in results:
            for k, v in res["times"].items():
                log.add_time(k, v)
            for r, img in res["written"]:
                log.image_written(r, img)
            stats["dropped_clip"] += res["dropped"]
            if res["blank"]:
                stats["blank"] += len(res["blank"])
                retry.setdefault(res["attempt"] + 1, []).extend(res["blank"])

    def requeue():
        for attempt in sorted(retry):
            rs = retry.pop(attempt)
            if attempt > cfg.max_resample:
                stats["failed"] += len(rs)
                log.failed.extend(r.sample_id for r in rs)
                continue
            stats["resampled"] += len(rs)
            for b in group_batches(rs, cfg.batch_size, cfg.group_batches):
                queue.append(Batch(b.key, b.rows, attempt))

    log.start(len(todo))
    try:
        while queue or retry:
            if not queue:
                collect(tail.drain())
                requeue()
                continue
            batch = queue.popleft()
            t0 = time.perf_counter()
            latents = sampler.denoise(batch)                          # (B, C, h, w)
            log.add_time("unet+text", time.perf_counter() - t0)
            bad = set(nonfinite_rows(latents))
            if bad:
                stats["nonfinite"] += len(bad)
                retry.setdefault(batch.attempt + 1, []).extend(batch.rows[k] for k in sorted(bad))
                good = [k for k in range(len(batch.rows)) if k not in bad]
                if not good:
                    continue
                batch = Batch(batch.key, [batch.rows[k] for k in good], batch.attempt)
                latents = latents[good]
            tail.submit((batch, latents))
            collect(tail.take())
            log.progress(stats)
        collect(tail.drain())
    except KeyboardInterrupt:
        collect(tail.drain())
        tail.close()
        writer.abort()
        log.finish(stats, sampler, status="interrupted")
        raise
    except torch.OutOfMemoryError as exc:
        tail.close(wait=False)
        writer.abort()
        log.finish(stats, sampler, status="out_of_memory")
        raise GenerateError(f"out of GPU memory at batch size {cfg.batch_size}: rerun the same "
                            f"command with a smaller --batch-size (e.g. {max(1, cfg.batch_size // 2)}) "
                            "to resume; --vae-slicing/--vae-tiling also lower peak memory") from exc
    except BaseException:
        tail.close(wait=False)
        writer.abort()
        log.finish(stats, sampler, status="failed")
        raise
    tail.close()

    # 6. finalize
    stats["nsfw_flagged"] = nsfw_count[0]
    have = writer.appended_ids
    per_class = Counter(r.label for r in rows if index[r.sample_id] in have)
    if not have:
        writer.abort()
        log.finish(stats, sampler, status="nothing_written", clip=clip, out=out)
        raise GenerateError(f"no image passed the guards ({stats['failed']} rows failed after "
                            f"{cfg.max_resample} re-samples, {stats['dropped_clip']} CLIP-dropped);"
                            f" see {run_dir}/dropped.json")
    writer.close(shrink=len(have) < len(rows))
    summary = log.finish(stats, sampler, status="done", clip=clip, out=out, per_class=per_class)
    return summary


def _prompt_bytes(prompt: str):
    import numpy as np

    return np.frombuffer(prompt.encode("utf-8"), dtype=np.uint8)


def _class_names(rows) -> dict:
    """label -> readable class name (first lemma) where the catalog knows the wnid."""
    out = {}
    try:
        from engine.catalog import imagenet_class
    except ImportError:
        return out
    for r in rows:
        if r.label in out or r.wnid is None:
            continue
        try:
            out[r.label] = imagenet_class(r.wnid).name
        except (KeyError, ValueError, LookupError, AttributeError):
            pass
    return out
