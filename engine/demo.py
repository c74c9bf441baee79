"""``synthclone demo``: the README's main job on the built-in default, the whole way.

1. plan a small synthetic clone of a few ImageNet classes (recipe "c_hc": class name +
   hypernym, offline through WordNet) and generate it with the ``tiny`` random-weight model;
2. draw a small "real" domain — procedurally drawn fish (``engine.train.toydata``; no photographs
   can be downloaded here) — for training and a held-out set, and pack both into .beton files;
3. train the ``tiny`` recipe (ResNet-18, 64 px, DualBN) dual-domain 50/50 with λ = 0.6;
4. evaluate top-1 on the held-out set with ``synthclone eval`` (``engine.eval``);
5. leave ``metrics.json``, ``curves.png`` (loss/accuracy), ``contact_sheet.png`` (generated
   images) and ``real_sheet.png`` (the drawn "real" images) in ``--out``.

Settings: the ``plan:``, ``generate:``, ``train:`` and ``eval:`` sections of
``engine/configs/tiny_demo.yaml``; the flags below override them. The accuracy means nothing
about the method: the real domain is a toy and the generator has random weights.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

from engine.config import (ArgumentParser, add_config_args, add_out_arg, add_overwrite_arg,
                           config_from_args, load_section)
from engine.generate.config import GenerateConfig
from engine.plan import PlanConfig
from engine.plan_cli import add_recipe_arg

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "tiny_demo.yaml")
PLAN_FLAGS = ("classes", "images_per_class", "steps", "guidance", "sampler", "seed")
"""PlanConfig fields the demo has flags for (the rest: --set is not offered; use --config)."""
GENERATE_FLAGS = ("model", "batch_size", "device", "dtype", "store_size", "writer_workers",
                  "progress")
"""GenerateConfig fields the demo has flags for."""
REAL_DOMAIN = ("procedurally drawn fish (engine/train/toydata.py): per class a body colour, shape "
               "and pattern, random pose, size and water background; not photographs, so the "
               "held-out accuracy says nothing about the method")


def _others(cls, keep) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - set(keep)


def get_args_parser(config: str = DEFAULT_CONFIG) -> ArgumentParser:
    p = ArgumentParser(prog="synthclone demo", description=(
        "Plan and generate a small synthetic clone with the tiny random-weight model; settings "
        "from engine/configs/tiny_demo.yaml, flags override them."),
                       epilog="example: synthclone demo --out runs/demo --overwrite "
                              "--images-per-class 4")
    add_out_arg(p, "demo folder (plan.jsonl, clone.beton, clone.run/)", default="runs/demo")
    add_overwrite_arg(p, "a previous demo in --out (without it: a rerun reports it complete)")
    p.add_argument("--config", metavar="FILE.yaml", default=config,
                   help="YAML config whose 'plan:' and 'generate:' sections replace the demo's "
                        "(flags override it) [default: engine/configs/tiny_demo.yaml]")
    add_recipe_arg(p, default=", ".join(load_section(config, "plan").get("recipes", {})))
    p.add_argument("--size", type=int, metavar="INT", help="generated height = width in pixels")
    p.add_argument("--real-per-class", type=int, default=64, metavar="INT",
                   help="drawn 'real' training images per class [default: 64]")
    p.add_argument("--heldout-per-class", type=int, default=25, metavar="INT",
                   help="drawn held-out images per class for top-1 [default: 25]")
    p.add_argument("--epochs", type=int, metavar="INT",
                   help="training epochs (default: the train: section of the config)")
    add_config_args(p, PlanConfig, section="plan", exclude=_others(PlanConfig, PLAN_FLAGS),
                    defaults=load_section(config, "plan"))
    add_config_args(p, GenerateConfig, section="generate",
                    exclude=_others(GenerateConfig, GENERATE_FLAGS),
                    flags={"writer_workers": ("--workers",)},
                    aliases={"store_size": ("--max-resolution",)},
                    defaults=load_section(config, "generate"))
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from engine.errors import ConfigError

    if args.real_per_class < 1 or args.heldout_per_class < 1:
        raise ConfigError("--real-per-class and --heldout-per-class must be >= 1")
    extra = {"height": args.size, "width": args.size}
    if args.recipe:
        extra["recipes"] = dict(args.recipe)
    plan_cfg = config_from_args(PlanConfig, args, section="plan", extra=extra, assignments=[])
    gen_cfg = config_from_args(GenerateConfig, args, section="generate", assignments=[])
    train_cfg = _train_config(args, gen_cfg)
    times = {}

    # 1. plan + generate the synthetic clone
    t0 = time.perf_counter()
    plan, summary = _generate(args, plan_cfg, gen_cfg)
    times["plan_generate_s"] = time.perf_counter() - t0
    wnids = sorted({r.wnid for r in plan.rows}, key=lambda w: min(
        r.label for r in plan.rows if r.wnid == w))

    # 2. the "real" domain: drawn, packed (train + held-out)
    t0 = time.perf_counter()
    real, heldout = _real_domain(args, wnids, gen_cfg.progress)
    times["real_domain_s"] = time.perf_counter() - t0

    # 3. train the tiny recipe dual-domain 50/50 (its own held-out check at epoch ends)
    t0 = time.perf_counter()
    train_dir = os.path.join(args.out, "train")
    train_cfg.data.real, train_cfg.data.synthetic, train_cfg.data.eval = (
        real, os.path.join(args.out, "clone.beton"), heldout)
    trained = _train(train_cfg, train_dir, args.overwrite)
    times["train_s"] = time.perf_counter() - t0

    # 4. top-1 on the held-out set with `synthclone eval` (the eval: section)
    t0 = time.perf_counter()
    ev = _evaluate(args, train_dir, heldout, wnids)
    times["eval_s"] = time.perf_counter() - t0

    # 5. the demo folder: metrics.json, curves.png, contact sheets
    for src, dst in ((os.path.join(train_dir, "curves.png"), "curves.png"),
                     (os.path.join(args.out, "clone.run", "contact_sheet.png"),
                      "contact_sheet.png")):
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out, dst))
    own = trained.get("eval") or {}
    record = {"heldout_top1": ev["top1"], "heldout_images": ev["images"],
              "trainer_heldout_top1": own.get("top1"),
              "real_domain": REAL_DOMAIN,
              "real_train_images": args.real_per_class * len(wnids),
              "synthetic_images": sum(summary["per_class"].values()),
              "generator": gen_cfg.model, "classes": wnids,
              "train": {k: trained.get(k) for k in ("model", "steps", "epochs_done", "images",
                                                    "images_per_s", "dual_bn",
                                                    "synthetic_weight", "synthetic_share")},
              "train_metrics": trained.get("train"), "seconds": times,
              "files": {"plan": "plan.jsonl", "synthetic": "clone.beton", "real": "real.beton",
                        "heldout": "heldout.beton", "train_run": "train/",
                        "eval": "eval/results.json",
                        "curves": "curves.png", "contact_sheet": "contact_sheet.png",
                        "real_sheet": "real_sheet.png"}}
    from engine.paths import atomic_write

    with atomic_write(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    _print_summary(args, plan, plan_cfg, gen_cfg, summary, trained, record)
    return 0


def _train_config(args, gen_cfg):
    """The ``train:`` section (the tiny recipe) with the ``eval:`` section's crop and batch."""
    from engine.config import load_config
    from engine.train.config import TrainConfig

    overrides = {"run.progress": gen_cfg.progress, "run.device": gen_cfg.device,
                 "schedule.epochs": args.epochs}
    ev = load_section(args.config, "eval") if "eval" in _sections(args.config) else {}
    if ev.get("crop"):
        overrides["data.eval_resolution"] = ev["crop"]
        overrides["data.eval_crop_ratio"] = min(1.0, ev["crop"] / ev.get("resize", ev["crop"]))
    if ev.get("batch_size"):
        overrides["data.eval_batch_size"] = ev["batch_size"]
    return load_config(TrainConfig, args.config, section="train", overrides=overrides)


def _sections(path: str) -> set:
    from engine.config import load_yaml

    return set(load_yaml(path))


def _generate(args, plan_cfg, gen_cfg):
    from engine.generate.runner import generate
    from engine.plan import build_plan, write_plan

    plan_path = os.path.join(args.out, "plan.jsonl")
    beton = os.path.join(args.out, "clone.beton")
    if args.overwrite:
        for p in (beton, beton + ".partial", beton + ".journal"):
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(os.path.join(args.out, "clone.run"), ignore_errors=True)
    plan = build_plan(plan_cfg)
    write_plan(plan, plan_path, overwrite=True)
    return plan, generate(plan, beton, gen_cfg)


def _real_domain(args, wnids: list[str], progress: bool) -> tuple[str, str]:
    """Draw and pack the toy real domain (reused when its .beton files exist)."""
    from engine.train.toydata import write_image_folder
    from loaders.beton.pack import pack
    from loaders.beton.pack_config import PackConfig

    out = []
    for name, per_class, seed in (("real", args.real_per_class, 0),
                                  ("heldout", args.heldout_per_class, 1)):
        folder, beton = os.path.join(args.out, name), os.path.join(args.out, f"{name}.beton")
        if args.overwrite or not os.path.exists(beton):
            shutil.rmtree(folder, ignore_errors=True)
            write_image_folder(folder, wnids, per_class, seed=seed, size=64)
            pack(PackConfig(source=folder, out=beton, max_resolution=None, overwrite=True,
                            progress=progress))
        out.append(beton)
    _real_sheet(out[0], os.path.join(args.out, "real_sheet.png"), wnids)
    return out[0], out[1]


def _real_sheet(beton: str, path: str, wnids: list[str], per_class: int = 8) -> None:
    from engine.catalog import class_names, imagenet_index
    from loaders.beton import BetonReader
    from loaders.sheets import write_sheet

    index, names = imagenet_index(), class_names()
    rows = {}
    with BetonReader(beton) as r:
        for i in range(len(r)):
            item = r.read(i)
            row = rows.setdefault(item["label"], [])
            if len(row) < per_class:
                row.append((item["image"], f"{names[item['label']]} (drawn)"))
    write_sheet([rows[index[w]] for w in wnids if index.get(w) in rows], path)


def _train(cfg, train_dir: str, overwrite: bool) -> dict:
    """Train, or resume an interrupted demo, or reuse a finished one."""
    from engine.train.runner import train

    done = os.path.join(train_dir, "metrics.json")
    if os.path.exists(done) and not overwrite:
        with open(done, encoding="utf-8") as f:
            return {**json.load(f), "reused": True}
    resume = (not overwrite) and os.path.exists(os.path.join(train_dir, "checkpoint.pt"))
    return train(cfg, train_dir, resume=resume, overwrite=not resume)


def _evaluate(args, train_dir: str, heldout: str, wnids: list[str]) -> dict:
    """``synthclone eval`` of the trained run on the held-out .beton (settings: the config's
    ``eval:`` section; the head's outputs are the plan's classes in label order)."""
    from engine.eval.cli import eval_main

    out = os.path.join(args.out, "eval")
    argv = [train_dir, "--config", args.config, "--sets", f"heldout={heldout}",
            "--classes", ",".join(wnids), "--out", out, "--overwrite"]
    if eval_main(argv) != 0:
        raise RuntimeError("synthclone eval failed inside the demo")
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        result = json.load(f)["sets"]["heldout"]
    return {"top1": result["top1"] / 100, "images": result["num_evaluated"]}


def _print_summary(args, plan, plan_cfg, gen_cfg, summary, trained, record) -> None:
    from engine.catalog import class_names, imagenet_index

    index, imagenet_names = imagenet_index(), class_names()
    names = {r.label: f"{r.wnid} {imagenet_names[index[r.wnid]]}" if r.wnid in index
             else (r.wnid or "") for r in plan.rows}
    recipes = ", ".join(sorted(plan_cfg.recipes))
    print(f"\nplan: {len(plan)} rows ({recipes}), hash {plan.hash[:16]} -> "
          f"{os.path.join(args.out, 'plan.jsonl')}")
    if summary["status"] == "already_complete":
        print(f"{os.path.join(args.out, 'clone.beton')} is already complete (pass --overwrite to "
              "generate it again)")
    else:
        print(f"generated with {gen_cfg.model!r}: {summary['written']} images at "
              f"{summary['images_per_s']:.2f} images/s (stage split {summary['stage_split']})")
    print("images per class:")
    for label, n in summary["per_class"].items():
        print(f"  {label:>4} {names[int(label)]}: {n}")
    per_class = max(1, len(plan) // max(1, len(names)))
    print("example prompts: " + " | ".join(r.prompt for r in plan.rows[::per_class][:3]))
    print(f"real domain: {record['real_train_images']} training and {record['heldout_images']} "
          f"held-out images, {REAL_DOMAIN}")
    how = "reused the finished training:" if trained.get("reused") else "trained"
    print(f"{how} {trained['model']} (DualBN, p = {trained['synthetic_share']:g}, λ = "
          f"{trained['synthetic_weight']:g}) for {trained['steps']} steps at "
          f"{trained['images_per_s']:.1f} images/s")
    top1 = record["heldout_top1"]
    print(f"held-out top-1: {100 * top1:.1f}% (toy data: says nothing about the method)"
          if top1 is not None else "held-out top-1: not evaluated")
    print(f"demo folder: {args.out} (metrics.json, curves.png, contact_sheet.png, real_sheet.png, "
          "train/, eval/, plan.jsonl, clone.beton, real.beton, heldout.beton)")
