"""``python -m bench generate [--quick] [--model tiny|sd15-arch]``: images/s of
``synthclone generate`` vs the naive path, on the same plan, same machine, in one run.

naive: diffusers ``StableDiffusionPipeline.__call__`` on batches of prompts (same batch size,
default settings: its own scheduler, attention and memory format; per-row generators so both
paths draw the same noise), PIL-saved JPEG files, then FFCV's ``DatasetWriter`` over that folder.
ours: ``engine.generate.runner.generate`` with its defaults (embedding cache, batched CFG,
dtype auto = bf16 on CPUs with native bf16, pipelined tail, streaming .beton writer).  unet-only: our denoising loops alone
(no text encoder, no decode, no writing): the ceiling the pipeline is measured against.
Both paths get the already-built model (building it is not timed) and one warm-up batch.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from bench.common import pin_threads, table

PRESETS = {  # model -> (size, steps, images, quick images, batch size)
    "tiny": (64, 10, 96, 48, 8),
    "sd15-arch": (128, 10, 8, 4, 2),
}
WARMUP_STEPS = 2
ABLATIONS = {  # one throughput switch turned off at a time (--ablate)
    "no_embed_cache": {"embed_cache": False},
    "no_cfg_batching": {"cfg_batched": False},
    "no_pipeline_tail": {"pipeline_tail": False},
    "no_group_batches": {"group_batches": False},
    "fp32": {"dtype": "fp32"},
}
CLASSES = ["tench", "goldfish", "great white shark", "tiger shark"]


def make_plan(n: int, size: int, steps: int):
    from engine.plan import PlanRow, plan_from_rows, row_seed

    rows = [PlanRow(sample_id=i, label=i % len(CLASSES), wnid=None, recipe="c",
                    prompt=f"a photo of a {CLASSES[i % len(CLASSES)]}", seed=row_seed(0, i),
                    guidance=7.5, steps=steps, height=size, width=size, sampler="pndm")
            for i in range(n)]
    return plan_from_rows(rows, version="bench")


def run_naive(pipe, rows, batch_size: int, workdir: str) -> float:
    """The path users write today; returns seconds."""
    import torch
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from PIL import Image

    t0 = time.perf_counter()
    folder = os.path.join(workdir, "naive_jpgs")
    files = []
    for k in range(0, len(rows), batch_size):
        batch = rows[k:k + batch_size]
        gens = [torch.Generator().manual_seed(r.seed & 0x7FFF_FFFF_FFFF_FFFF) for r in batch]
        with torch.no_grad():
            images = pipe([r.prompt for r in batch], num_inference_steps=batch[0].steps,
                          guidance_scale=batch[0].guidance, height=batch[0].height,
                          width=batch[0].width, generator=gens).images
        for r, im in zip(batch, images):
            d = os.path.join(folder, str(r.label))
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, f"{r.sample_id:08d}.jpg")
            im.save(path, quality=90)
            files.append((path, r.label))

    class Folder:
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            path, label = files[i]
            return Image.open(path).convert("RGB"), label

    writer = DatasetWriter(os.path.join(workdir, "naive.beton"), {
        "image": RGBImageField(write_mode="jpg", max_resolution=256, jpeg_quality=90),
        "label": IntField()}, num_workers=2)
    writer.from_indexed_dataset(Folder())
    return time.perf_counter() - t0


def run_unet_only(pipe, rows, cfg) -> float:
    """Seconds of the UNet calls alone for ``rows`` (the pipe is already prepared)."""
    from engine.generate.batching import group_batches
    from engine.generate.sampling import Sampler

    applied = pipe._synthclone_prepared[1]           # what generate() set up on this pipe
    sampler = Sampler(pipe, applied["device"], None, cfg.cfg_batched, cfg.embed_cache,
                      applied["channels_last"])
    batches = group_batches(rows, cfg.batch_size)
    sampler.denoise(batches[0])                         # fills the embedding cache
    sampler.times["unet"] = 0.0
    for b in batches:
        sampler.denoise(b)
    return sampler.times["unet"]


def run_ablations(plan, bs, size, steps, args, threads) -> dict:
    """images/s of ours with each ABLATIONS entry applied (fresh model each, one warm-up)."""
    from engine.generate.config import GenerateConfig
    from engine.generate.models import load_model
    from engine.generate.runner import generate

    out = {}
    for name, change in ABLATIONS.items():
        cfg = GenerateConfig(model=args.model, batch_size=bs, progress=False,
                             compile=args.compile, **change)
        pipe = load_model(args.model)
        workdir = tempfile.mkdtemp(prefix=f"bench-generate-{name}-")
        try:
            pin_threads(threads)
            generate(make_plan(bs, size, WARMUP_STEPS), os.path.join(workdir, "warm.beton"), cfg,
                     model=pipe)
            t0 = time.perf_counter()
            generate(plan, os.path.join(workdir, "run.beton"), cfg, model=pipe)
            out[name] = len(plan) / (time.perf_counter() - t0)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench generate")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--images", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--rounds", type=int, help="alternating naive/ours rounds; the best of each "
                                               "counts (default 1 with --quick, else 2)")
    p.add_argument("--ablate", action="store_true",
                   help="also time ours with each throughput switch off, one at a time")
    p.add_argument("--compile", action="store_true",
                   help="ours with torch.compile (UNet + VAE decoder; compile time not timed)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One intra-op thread unless BENCH_THREADS says otherwise: on our shared 2-core machine two
    # OpenMP threads that fight other processes made each small op ~10x slower (PLATFORM.md).
    threads = pin_threads(int(os.environ.get("BENCH_THREADS", 0)) or 1)

    from engine.generate.config import GenerateConfig
    from engine.generate.models import load_model
    from engine.generate.runner import generate

    size, steps, n, n_quick, bs = PRESETS[args.model]
    n = args.images or (n_quick if args.quick else n)
    bs = args.batch_size or bs
    plan = make_plan(n, size, steps)
    warm = make_plan(bs, size, WARMUP_STEPS).rows      # warms every code path, cheaply
    rounds = args.rounds or (1 if args.quick else 2)
    workdir = tempfile.mkdtemp(prefix="bench-generate-")
    t_naive, t_ours, t_unet = [], [], []
    try:
        naive_pipe = load_model(args.model)
        cfg = GenerateConfig(model=args.model, batch_size=bs, progress=False,
                             compile=args.compile)
        pipe = load_model(args.model)
        pin_threads(threads)           # FFCV's DatasetWriter changes torch's thread count
        generate(make_plan(bs, size, WARMUP_STEPS), os.path.join(workdir, "warm.beton"), cfg,
                 model=pipe)
        run_naive(naive_pipe, warm, bs, os.path.join(workdir, "warm"))
        for r in range(rounds):        # alternate the paths: machine noise hits both alike
            pin_threads(threads)
            t_naive.append(run_naive(naive_pipe, plan.rows, bs, os.path.join(workdir, f"n{r}")))
            pin_threads(threads)
            t0 = time.perf_counter()
            summary = generate(plan, os.path.join(workdir, f"ours{r}.beton"), cfg, model=pipe)
            t_ours.append(time.perf_counter() - t0)
            t_unet.append(run_unet_only(pipe, plan.rows, cfg))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    t_naive, t_ours, t_unet = min(t_naive), min(t_ours), min(t_unet)
    ablation = run_ablations(plan, bs, size, steps, args, threads) if args.ablate else {}

    ips = {"naive": n / t_naive, "ours": n / t_ours, "unet_only": n / t_unet}
    rows = [{"path": k, "images": n, "seconds": n / v, "images_per_s": v} for k, v in ips.items()]
    table(rows, f"generate bench: model={args.model} {size}x{size} steps={steps} batch={bs} "
                f"threads={threads}")
    if ablation:
        table([{"ours_with": k, "images_per_s": v, "vs_ours": v / ips["ours"]}
               for k, v in ablation.items()], "ablation (one switch off at a time)")
    split = summary["stage_split"]
    table([{"stage": k, "share": v} for k, v in split.items()], "ours: stage split")
    return {
        "model": args.model, "images": n, "size": size, "steps": steps, "batch_size": bs,
        "images_per_s": {k: round(v, 4) for k, v in ips.items()},
        "ratio_vs_naive": round(ips["ours"] / ips["naive"], 3),
        "pipeline_vs_unet_only": round(ips["ours"] / ips["unet_only"], 3),
        "stage_split": split, "stage_seconds": summary["stage_seconds"],
        "embedding_cache": summary["embedding_cache"], "quick": args.quick,
        "ablation_images_per_s": {k: round(v, 4) for k, v in ablation.items()},
        "compile": args.compile, "rounds": rounds, "ours_applied": pipe._synthclone_prepared[1],
    }
