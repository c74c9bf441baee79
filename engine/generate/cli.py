"""``synthclone generate PLAN --model M --out clone.beton``: a plan becomes a .beton."""
from __future__ import annotations

import argparse
import json
import sys

from engine.generate.config import GenerateConfig

# flags that map 1:1 onto GenerateConfig fields: (flag, field, argparse kwargs)
_OPTS = [
    ("--model", "model", dict(help="tiny | sd15-arch | hub id | diffusers folder | .safetensors/.ckpt")),
    ("--model-config", "model_config", dict(help="diffusers folder with configs for a checkpoint file")),
    ("--device", "device", dict(help="auto | cpu | cuda[:N]")),
    ("--dtype", "dtype", dict(help="auto | fp32 | fp16 | bf16")),
    ("--batch-size", "batch_size", dict(type=int)),
    ("--attention", "attention", dict(help="auto | sdpa | xformers | math")),
    ("--compile-mode", "compile_mode", dict(help="torch.compile mode")),
    ("--tail-inflight", "tail_inflight", dict(type=int)),
    ("--writer-workers", "writer_workers", dict(type=int)),
    ("--store-size", "store_size", dict(type=int, help="longest stored side (default 256)")),
    ("--jpeg-quality", "jpeg_quality", dict(type=int)),
    ("--max-resample", "max_resample", dict(type=int)),
    ("--flush-every", "flush_every", dict(type=int)),
    ("--threads", "threads", dict(type=int)),
    ("--clip-model", "clip_model", dict()),
    ("--clip-pretrained", "clip_pretrained", dict()),
    ("--clip-threshold", "clip_threshold", dict(type=float)),
    ("--real", "real", dict(help="folder or .beton of real images (image-conditioned rows)")),
    ("--contact-sheet", "contact_sheet", dict(type=int)),
]
# on/off switches: --X / --no-X
_SWITCHES = ["group_batches", "cfg_batched", "embed_cache", "compile", "channels_last",
             "fuse_qkv", "vae_slicing", "vae_tiling", "pipeline_tail", "clip_filter",
             "safety_checker", "progress", "durable"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthclone generate", description="Generate a plan into a .beton (resumable).",
        epilog="example: synthclone generate plan.jsonl --model tiny --out clone.beton; "
               "rerun the same command to resume; --shard 0/4 (or torchrun/SLURM env) for shards")
    p.add_argument("plan", help="plan file (synthclone plan ... --out plan.jsonl)")
    p.add_argument("--out", required=True, help=".beton to write (shards: NAME.shardIofN.beton)")
    p.add_argument("--config", help="YAML file; its 'generate:' section sets GenerateConfig options")
    p.add_argument("--shard", help="I/N: generate shard I of N (default: RANK/WORLD_SIZE, "
                                   "SLURM_PROCID/SLURM_NTASKS, else 0/1)")
    p.add_argument("--overwrite", action="store_true", help="start over, replacing outputs")
    for flag, field, kw in _OPTS:
        kw = dict(kw)
        kw.setdefault("help", _field_doc(field))
        p.add_argument(flag, dest=field, **kw)
    for field in _SWITCHES:
        flag = field.replace("_", "-")
        p.add_argument(f"--{flag}", dest=field, action=argparse.BooleanOptionalAction,
                       default=None, help=_field_doc(field))
    return p


def _field_doc(name: str) -> str:
    """The docstring under a GenerateConfig field (the help text of its flag)."""
    return field_docs().get(name, "").replace("%", "%%")


def field_docs() -> dict:
    import ast
    import inspect

    from engine.generate import config

    tree = ast.parse(inspect.getsource(config.GenerateConfig))
    body, docs = tree.body[0].body, {}
    for a, b in zip(body, body[1:]):
        if (isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def main(argv=None) -> int:
    from engine.config import resolve
    from engine.generate.config import parse_shard
    from engine.generate.models import ModelLoadError
    from engine.generate.runner import GenerateError, generate
    from engine.plan import PlanFileError, read_plan

    args = get_args_parser().parse_args(argv)
    overrides = {f: getattr(args, f) for _, f, _ in _OPTS}
    overrides.update({f: getattr(args, f) for f in _SWITCHES})
    try:
        cfg = resolve(GenerateConfig, args.config, overrides,
                      section="generate" if args.config else None)
        shard = parse_shard(args.shard)
        plan = read_plan(args.plan)
        summary = generate(plan, args.out, cfg, shard=shard, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print("\nsynthclone generate: interrupted; written images are journaled. Rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    except (ModelLoadError, GenerateError, PlanFileError, ValueError, FileNotFoundError,
            FileExistsError) as exc:
        print(f"synthclone generate: {exc}", file=sys.stderr)
        return 2
    if summary["status"] == "already_complete":
        print(f"{summary['out']} is already complete ({summary['resumed']} images of this plan "
              "shard); nothing to do (pass --overwrite to regenerate)")
        return 0
    g = summary["guards"]
    print(f"wrote {summary['out']}: {summary['written']} new images ({summary['resumed']} "
          f"resumed) of {summary['rows']} rows at {summary['images_per_s']:.2f} images/s; "
          f"resampled {g['resampled']}, failed {g['failed']}, CLIP-dropped {g['dropped_clip']}")
    print(json.dumps({"stage_split": summary["stage_split"]}))
    return 0
