"""``synthclone train CONFIG.yaml [key=value ...] --out DIR``: train a classifier.

The config's ``train:`` section, then ``key=value`` overrides (``optim.lr=0.4``), then flags
(``--optim.lr 0.4``) build a :class:`engine.train.config.TrainConfig`; unknown keys are an error
listing the valid ones. Under ``torchrun`` (or ``srun``) every process runs this same command.
"""
from __future__ import annotations

import os
import sys

from engine.config import (ArgumentParser, add_config_args, add_config_file_args, add_out_arg,
                           add_overwrite_arg, config_from_args)
from engine.train.config import TrainConfig

FLAGS = {"run.seed": ("--seed",), "run.device": ("--device",),
         "data.batch_size": ("--batch-size",), "data.workers": ("--workers",),
         "run.progress": ("--progress",)}


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone train",
        description="Train a classifier on real and synthetic .beton files (DualBN, the λ loss).",
        epilog="example: synthclone train engine/configs/train_tiny.yaml data.real=real.beton "
               "data.synthetic=clone.beton --out runs/tiny; rerun with --resume after a stop; "
               "torchrun --nproc_per_node 8 -m engine.cli train ... for DDP")
    p.add_argument("recipe", nargs="?", metavar="CONFIG.yaml",
                   help="YAML file with a 'train:' section (engine/configs/train_*.yaml); the "
                        "same as --config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="train: options to set, e.g. optim.lr=0.4 model.dual_bn=false (the same "
                        "as --set)")
    add_out_arg(p, "the run folder (config.yaml, metrics, checkpoint.pt, model_real.pt)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt, exactly")
    add_overwrite_arg(p, "a previous run in --out (without it, or --resume: refuse)")
    add_config_file_args(p, "train", example="optim.lr=0.4")
    add_config_args(p, TrainConfig, flags=FLAGS)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_intermixed_args(argv)  # KEY=VALUE may follow flags
    from engine.errors import ConfigError

    overrides = list(args.overrides)
    recipe = args.recipe
    if recipe and "=" in recipe and not os.path.exists(recipe):  # no YAML, only overrides
        overrides.insert(0, recipe)
        recipe = None
    if recipe and args.config:
        raise ConfigError(f"two config files: {recipe} and --config {args.config}; give one")
    cfg = config_from_args(TrainConfig, args, section="train", yaml_path=recipe or args.config,
                           assignments=list(args.assignments or []) + overrides)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: "
                          "give one of them")
    from engine.train.runner import train

    try:
        summary = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\nsynthclone train: interrupted; continue with the same command and --resume "
              f"(from the last checkpoint in {args.out})", file=sys.stderr)
        return 130
    ev = summary.get("eval") or {}
    top1 = f"; held-out top-1 {100 * ev['top1']:.2f}% on {ev['images']} images" \
        if ev.get("top1") is not None else ""
    print(f"trained {summary['model']} for {summary['steps']} steps ({summary['epochs_done']} "
          f"epochs, {summary['images']} images) at {summary['images_per_s']:.1f} images/s"
          f"{top1}\nrun folder: {args.out} (config.yaml, metrics.jsonl, metrics.json, curves.png"
          f", checkpoint.pt{', model_real.pt' if summary.get('export') else ''})")
    return 0
