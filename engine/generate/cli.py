"""``synthclone generate PLAN --model M --out clone.beton``: a plan becomes a .beton.

The reference pattern for every command: an :class:`engine.config.ArgumentParser`, flags
generated from the config dataclass (:func:`engine.config.add_config_args`, help from the field
docs), the config built by :func:`engine.config.config_from_args`, heavy imports inside
``main``, and user errors raised (``engine/cli.py`` prints them and exits 2).
"""
from __future__ import annotations

import json
import sys

from engine.config import (ArgumentParser, add_config_args, add_config_file_args,
                           add_out_arg, add_overwrite_arg, config_from_args)
from engine.generate.config import GenerateConfig


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone generate", description="Generate a plan into a .beton (resumable).",
        epilog="example: synthclone generate plan.jsonl --model /models/sd-v1-4 --out clone.beton; "
               "rerun the same command to resume; --shard 0/4 for shards (torchrun/SLURM: auto)")
    p.add_argument("plan", help="plan file (synthclone plan ... --out plan.jsonl)")
    add_out_arg(p, ".beton to write (shards: NAME.shardIofN.beton)")
    add_config_file_args(p, "generate", example="batch_size=4")
    p.add_argument("--shard", default="auto",
                   help="I/N: generate shard I of N; auto (default): RANK/WORLD_SIZE (torchrun), "
                        "else SLURM_PROCID/SLURM_NTASKS, else 0/1; the choice is printed")
    add_overwrite_arg(p, "the output and its run folder, starting over (without it: a rerun "
                         "resumes)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="generate only the plan's first N rows (0 = all; a preview, recorded: a "
                        "rerun needs the same --limit)")
    p.add_argument("--dry-run", action="store_true",
                   help="write nothing: print rows, batches, classes, settings and the estimated "
                        "time at this machine's rate (times one short calibration batch)")
    add_config_args(p, GenerateConfig, flags={"writer_workers": ("--workers",)},
                    aliases={"writer_workers": ("--writer-workers",),
                             "store_size": ("--max-resolution",)})
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from engine import env
    from engine.generate.config import parse_shard, require_model
    from engine.generate.runner import generate
    from engine.plan import read_plan

    cfg = config_from_args(GenerateConfig, args, section="generate")
    require_model(cfg)
    i, n, why = parse_shard(args.shard)
    plan = read_plan(args.plan)
    if args.dry_run:
        from engine.generate.dryrun import format_preview, preview
        from engine.generate.runner import GenerateRun

        run = GenerateRun(plan, args.out, cfg, (i, n), args.overwrite, limit=args.limit)
        print(format_preview(preview(run), shard_why=why))
        return 0
    env.use_project_inductor_cache()
    try:
        summary = generate(plan, args.out, cfg, shard=(i, n), overwrite=args.overwrite,
                           limit=args.limit, announce=why if n > 1 else None)
    except KeyboardInterrupt:
        print("\nsynthclone generate: interrupted; written images are journaled. Rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    if summary["status"] == "already_complete":
        print(f"{summary['out']} is already complete ({summary['resumed']} images of this plan "
              "shard); nothing to do (pass --overwrite to regenerate)")
        return 0
    g = summary["guards"]
    compiled = (f" (after {summary['compile_s']:.0f} s of torch.compile)"
                if summary.get("compile_s") else "")
    print(f"wrote {summary['out']}: {summary['written']} new images ({summary['resumed']} "
          f"resumed) of {summary['rows']} rows at {summary['images_per_s']:.2f} images/s"
          f"{compiled}; resampled {g['resampled']}, failed {g['failed']}, CLIP-dropped "
          f"{g['dropped_clip']}")
    print(json.dumps({"stage_split": summary["stage_split"]}))
    return 0
