"""``python -m bench generate [--quick] [--model tiny|sd15-arch|sdxl-arch]``: images/s of
``synthclone generate`` vs the naive path, on the same plan, same machine, in one run.

naive: diffusers ``StableDiffusionPipeline.__call__`` on batches of prompts (same batch size,
default settings: its own scheduler, attention and memory format; per-row generators so both
paths draw the same noise), PIL-saved JPEG files, then FFCV's ``DatasetWriter`` over that folder.
ours: ``engine.generate.runner.generate`` with its defaults (embedding cache, batched CFG,
dtype auto = bf16 on CPUs with native bf16, pipelined tail, streaming .beton writer).  unet-only: our denoising loops alone
(no text encoder, no decode, no writing): the ceiling the pipeline is measured against.
Both paths get the already-built model (building it is not timed); every method runs the
whole plan per call, interleaved with the others in >= 3 rounds (``bench.common``), after an
untimed warm-up call.  Headlines: ``ratio_vs_naive`` and ``pipeline_vs_unet_only`` (images/s
ratios per round).  ``--ablate`` adds ours with one throughput switch off at a time.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import replace

from bench.common import Method, bench_args, measure, pin_threads, report, speedup, table

PRESETS = {  # model -> (size, steps, images, quick images, batch size)
    "tiny": (64, 10, 96, 48, 8),
    "sd15-arch": (128, 10, 8, 4, 2),
    "sdxl-arch": (128, 2, 4, 2, 1),       # SDXL base's shapes: ~4 s per CFG step at 128^2
}
TARGETS = {  # model -> (ratio_vs_naive, pipeline_vs_unet_only) targets (from the README benchmark table)
    "tiny": (3.0, 0.9),
    "sd15-arch": (1.5, 0.9),
    "sdxl-arch": (1.5, 0.9),              # provisional: as sd15-arch until the lead measures
}
SAMPLER = {"sdxl-arch": "dpmpp"}
"""The plan's sampler where the naive path's own scheduler is not PNDM: SDXL ships Euler (one
UNet call per step, as DPM-Solver++; PLMS makes steps + 1 calls), so both do the same work."""
SHARED_PIPE = ("sdxl-arch",)
"""Models too large for two copies in memory (SDXL: ~7 GB in bf16): naive and ours run the same
pipeline object (ours prepares it in place; on a bf16 CPU that changes nothing: the built-in is
made in bf16 and sdpa is diffusers' default attention)."""
ABLATIONS = {  # one throughput switch turned off at a time (--ablate)
    "no_embed_cache": {"embed_cache": False},
    "no_cfg_batching": {"cfg_batched": False},
    "no_pipeline_tail": {"pipeline_tail": False},
    "no_group_batches": {"group_batches": False},
    "fp32": {"dtype": "fp32"},
}
CLASSES = ["tench", "goldfish", "great white shark", "tiger shark"]


def make_plan(n: int, size: int, steps: int, sampler: str = "pndm"):
    from engine.plan import PlanRow, plan_from_rows, row_seed

    rows = [PlanRow(sample_id=i, label=i % len(CLASSES), wnid=None, recipe="c",
                    prompt=f"a photo of a {CLASSES[i % len(CLASSES)]}", seed=row_seed(0, i),
                    guidance=7.5, steps=steps, height=size, width=size, sampler=sampler)
            for i in range(n)]
    return plan_from_rows(rows, version="bench")


class _Fresh:
    """A new output path per call under ``root``; the previous call's output is deleted first
    (inside the timed call, alike for every method: a few files)."""

    def __init__(self, root: str, name: str):
        self.root, self.name, self.i = root, name, 0

    def next(self) -> str:
        old = os.path.join(self.root, f"{self.name}{self.i}")
        for path in (old, old + ".beton"):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)
        self.i += 1
        return os.path.join(self.root, f"{self.name}{self.i}")


def run_naive(pipe, rows, batch_size: int, workdir: str) -> None:
    """The path users write today: diffusers pipeline -> PIL JPEGs -> FFCV DatasetWriter."""
    import torch
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from PIL import Image

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
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # FFCV's tqdm bar
        writer.from_indexed_dataset(Folder())


def run_unet_only(pipe, rows, cfg) -> None:
    """Our denoising loops alone for ``rows`` (the pipe is already prepared by generate())."""
    from engine.generate.batching import group_batches
    from engine.generate.denoise import Denoiser

    applied = pipe._synthclone_prepared[1]           # what generate() set up on this pipe
    sampler = Denoiser(pipe, applied["device"], None, cfg.cfg_batched, cfg.embed_cache,
                      applied["channels_last"])
    for b in group_batches(rows, cfg.batch_size):
        sampler.denoise(b)


def main(argv=None) -> dict:
    p = bench_args("generate", __doc__)
    p.add_argument("--model", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--images", type=int, help="images per call [preset; quick: fewer]")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--ablate", action="store_true",
                   help="also time ours with each throughput switch off, one at a time")
    p.add_argument("--compile", action="store_true",
                   help="ours with torch.compile (UNet + VAE decoder; compile time not timed)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One intra-op thread unless --threads/BENCH_THREADS say otherwise: on our shared 2-core
    # machine two OpenMP threads that fight other processes made each small op ~10x slower.
    threads = pin_threads(args.threads or int(os.environ.get("BENCH_THREADS", 0)) or 1)

    from engine.generate.config import GenerateConfig
    from engine.generate.models import load_model
    from engine.generate.runner import generate

    size, steps, n, n_quick, bs = PRESETS[args.model]
    n = args.images or (n_quick if args.quick else n)
    bs = args.batch_size or bs
    plan = make_plan(n, size, steps, SAMPLER.get(args.model, "pndm"))
    workdir = tempfile.mkdtemp(prefix="bench-generate-")
    summaries = {}
    try:
        cfg = GenerateConfig(model=args.model, batch_size=bs, progress=False,
                             compile=args.compile)
        pipe = load_model(args.model)
        naive_pipe = pipe if args.model in SHARED_PIPE else load_model(args.model)

        def ours_method(name, cfg, pipe):
            out = _Fresh(workdir, name)

            def run():
                summaries[name] = generate(plan, out.next() + ".beton", cfg, model=pipe,
                                           overwrite=True)
            return Method(name, run, items_per_call=n)

        naive_out = _Fresh(workdir, "naive")
        methods = [
            Method("naive", lambda: run_naive(naive_pipe, plan.rows, bs, naive_out.next()),
                   items_per_call=n),
            ours_method("ours", cfg, pipe),
            # after ours's warm-up, which prepared the pipe
            Method("unet_only", lambda: run_unet_only(pipe, plan.rows, cfg), items_per_call=n),
        ]
        if args.ablate:
            for name, change in ABLATIONS.items():
                if "dtype" in change and args.model in SHARED_PIPE:
                    continue                 # a second (fp32) copy would not fit in memory
                # switches outside the prepared-model key share ours's pipe; dtype needs its own
                own = load_model(args.model) if "dtype" in change else pipe
                methods.append(ours_method(f"ours_{name}", replace(cfg, **change), own))
        results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    vs_naive, vs_unet = TARGETS[args.model]
    headline = {"ratio_vs_naive": speedup(results, "ours", "naive", target=vs_naive),
                "pipeline_vs_unet_only": speedup(results, "ours", "unet_only", target=vs_unet)}
    secondary = {f"ablation_{name}_vs_ours": speedup(results, f"ours_{name}", "ours")
                 for name in ABLATIONS if f"ours_{name}" in results}
    summary = summaries["ours"]
    out = report(results, headline, secondary=secondary, item="image",
                 title=f"generate bench: model={args.model} {size}x{size} steps={steps} "
                       f"batch={bs} images/call={n} threads={threads}",
                 extra={"model": args.model, "images": n, "size": size, "steps": steps,
                        "batch_size": bs, "quick": args.quick, "compile": args.compile,
                        "shared_pipe": naive_pipe is pipe,
                        "stage_split": summary["stage_split"],
                        "stage_seconds": summary["stage_seconds"],
                        "embedding_cache": summary["embedding_cache"],
                        "ours_applied": pipe._synthclone_prepared[1],
                        "env": {"threads": threads}})
    table([{"stage": k, "share": v} for k, v in summary["stage_split"].items()],
          "ours: stage split (last call)")
    return out
