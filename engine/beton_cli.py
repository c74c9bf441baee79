"""``synthclone pack | merge | inspect | export``: the .beton commands (``loaders.beton`` does the work).

They live in ``engine`` because ``loaders`` may not import ``engine`` (DESIGN.md), and the
command line is built with ``engine.config`` like every other command. FFCV and OpenCV are
imported inside each ``*_main`` after the arguments are parsed, so ``--help`` and usage errors
are immediate. User errors are raised, not printed: ``engine/cli.py`` reports them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from engine.config import (ArgumentParser, add_config_args, add_config_file_args,
                           add_out_arg, add_overwrite_arg, add_progress_arg, add_quiet_alias,
                           config_from_args, positive_int)
from engine.errors import ConfigError
from loaders.beton.export_config import ExportConfig
from loaders.beton.pack_config import PackConfig

__all__ = ["pack_main", "merge_main", "inspect_main", "export_main", "get_pack_args_parser",
           "get_merge_args_parser", "get_inspect_args_parser", "get_export_args_parser"]


# ----------------------------------------------------------------------------- pack
def get_pack_args_parser() -> ArgumentParser:
    p = ArgumentParser(prog="synthclone pack", description=(
        "Pack a real image folder (root/<wnid>/<image>) or a 'path,label' list file into a "
        ".beton with ImageNet-1K labels. Rerun the same command to resume an interrupted pack."),
        epilog="example: synthclone pack /data/imagenet/train --out real.beton --store-size 256 "
               "--on-error skip")
    p.add_argument("source", help="ImageFolder root with wnid folders, or a list file")
    p.add_argument("legacy_out", nargs="?", help=argparse.SUPPRESS)  # old positional OUT
    add_out_arg(p, ".beton file to write", required=False)
    add_overwrite_arg(p, "an existing output and any partial of it (without it: a rerun "
                         "resumes the partial)")
    add_config_file_args(p, "pack", example="jpeg_quality=95")
    add_config_args(p, PackConfig, exclude={"source", "out", "overwrite"},
                    flags={"max_resolution": ("--store-size",), "num_workers": ("--workers",)},
                    aliases={"max_resolution": ("--max-resolution",)},
                    defaults={"progress": True})
    add_quiet_alias(p)
    return p


def pack_main(argv: list[str] | None = None) -> int:
    a = get_pack_args_parser().parse_args(argv)
    out = a.out or a.legacy_out
    if a.out and a.legacy_out:
        raise ConfigError(f"two outputs: {a.legacy_out!r} and --out {a.out!r}; give only --out")
    if not out:
        raise ConfigError("no output: give --out OUT.beton")
    if a.legacy_out:
        print("synthclone pack: note: give the output as --out OUT (the positional OUT is "
              "accepted until the next release)", file=sys.stderr)
    cfg = config_from_args(PackConfig, a, section="pack",
                           extra={"source": a.source, "out": out, "overwrite": a.overwrite})
    if not os.path.exists(cfg.source):
        raise FileNotFoundError(f"{cfg.source}: no such image folder or list file")
    if os.path.isdir(out):
        raise ConfigError(f"--out {out} is a folder; give the .beton file to write")
    from loaders.beton.pack import pack, report

    report(cfg, pack(cfg), sys.stderr)  # the summary, and the skipped files beside the output
    return 0


# ----------------------------------------------------------------------------- merge
def get_merge_args_parser() -> ArgumentParser:
    p = ArgumentParser(prog="synthclone merge", description=(
        "Join .beton files with identical fields (bytes copied verbatim, checksums verified). "
        "Generated files keep their sample ids (unique, one plan, ordered by id); others are "
        "renumbered 0..total-1 in input order. Rerun the same command to resume."),
        epilog="example: synthclone merge clone.shard0of2.beton clone.shard1of2.beton "
               "--out clone.beton")
    p.add_argument("inputs", nargs="+", help="input .beton files, in output order")
    add_out_arg(p, "merged .beton file to write")
    ids = p.add_mutually_exclusive_group()
    ids.add_argument("--keep-sample-ids", dest="sample_ids", action="store_const", const="keep",
                     default="auto", help="keep stored 'sample_id' values (the default for "
                                          "generated files; duplicates are refused)")
    ids.add_argument("--renumber-sample-ids", dest="sample_ids", action="store_const",
                     const="renumber", help="renumber 'sample_id' 0..total-1 in input order "
                                            "(the default for real files)")
    add_overwrite_arg(p)
    add_progress_arg(p)
    return p


def merge_main(argv: list[str] | None = None) -> int:
    a = get_merge_args_parser().parse_args(argv)
    for path in a.inputs:
        if os.path.isdir(path):
            raise ConfigError(f"{path} is a folder; give .beton files to merge")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such .beton file")
    from loaders.beton.merge import merge_betons

    n = merge_betons(a.inputs, a.out, sample_ids=a.sample_ids, overwrite=a.overwrite,
                     progress=a.progress)
    print(f"merged {len(a.inputs)} files, {n} samples -> {a.out}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- inspect
def get_inspect_args_parser() -> ArgumentParser:
    p = ArgumentParser(prog="synthclone inspect", description=(
        "Summarise a .beton (kind, samples per class with the class names the file stores, "
        "domain, fields, size, write-mode mix; --verify checks every checksum) or a plan file "
        "(rows per class and recipe, settings, example prompts, estimated time)."),
        epilog="examples: synthclone inspect clone.beton --verify --grid sheet.png; "
               "synthclone inspect plan.jsonl")
    p.add_argument("path", help=".beton file, or a plan file (.jsonl)")
    p.add_argument("--verify", action="store_true",
                   help="check every checksum and the structure, and decode every image")
    p.add_argument("--grid", metavar="OUT.png",
                   help="write a contact sheet: one row per class, captioned with class names "
                        "(and OUT.html beside it, with each image's prompt)")
    p.add_argument("--grid-columns", type=positive_int, default=6,
                   help="contact sheet: images per class (columns) [default: 6]")
    p.add_argument("--per-class", dest="grid_columns", type=positive_int,
                   help=argparse.SUPPRESS)
    p.add_argument("--grid-rows", type=positive_int, default=10,
                   help="contact sheet: classes shown (rows; drawn at random when there are "
                        "more) [default: 10]")
    p.add_argument("--max-classes", dest="grid_rows", type=positive_int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random choice of contact-sheet samples [default: 0]")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    from loaders.check import add_inspect_args  # --loader, --subset (loaders/check.py)

    add_inspect_args(p)
    from engine.plan_inspect import add_plan_inspect_args  # --examples, --model, --measure, ...

    add_plan_inspect_args(p)
    return p


def inspect_main(argv: list[str] | None = None) -> int:
    a = get_inspect_args_parser().parse_args(argv)
    from loaders.check import run_inspect_extras

    if run_inspect_extras(a):  # --loader (FILE may be an image folder) / --subset
        return 0
    from engine.plan import is_plan_file

    if is_plan_file(a.path):  # a plan starts with '{'; a .beton with its version number
        from engine.plan_inspect import inspect_plan

        return inspect_plan(a)
    if os.path.isdir(a.path):
        raise ConfigError(f"{a.path} is a folder; give a .beton file")
    if not os.path.exists(a.path):
        raise FileNotFoundError(f"{a.path}: no such file")
    from loaders.beton.reader import BetonReader
    from loaders.beton.summary import contact_sheet, format_summary, summarize

    with BetonReader(a.path) as r:
        s = summarize(r)
        if a.verify:
            s["verify"] = r.verify(decode=True)
        if a.grid:
            s["grid"] = contact_sheet(r, a.grid, a.grid_columns, a.grid_rows, a.seed)
    if a.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(format_summary(s))  # kind, stored class names, checksums (loaders/beton/summary.py)
    return 0


# ----------------------------------------------------------------------------- export
def get_export_args_parser() -> ArgumentParser:
    p = ArgumentParser(prog="synthclone export", description=(
        "Write a .beton's images as files (DIR/<wnid>/<index>.jpg, JPEGs as stored, raw images "
        "as PNG) and a table of file, label, class name, prompt, recipe and sample id "
        "(DIR/samples.csv); every exported sample's checksums are verified."),
        epilog="example: synthclone export clone.beton clone_images --class n01440764 "
               "--limit 20")
    p.add_argument("source", help=".beton file")
    p.add_argument("dir", nargs="?", metavar="DIR", help="folder to create (or --out)")
    add_out_arg(p, "folder to create (images and samples.csv)", required=False)
    add_overwrite_arg(p, "an existing folder (without it: refuse)")
    add_config_args(p, ExportConfig, flags={"class_key": ("--class",)})
    add_quiet_alias(p)
    return p


def export_main(argv: list[str] | None = None) -> int:
    a = get_export_args_parser().parse_args(argv)
    if a.dir and a.out:
        raise ConfigError(f"two outputs: {a.dir!r} and --out {a.out!r}; give one")
    out = a.dir or a.out
    if not out:
        raise ConfigError("no output: give the folder to create (DIR or --out DIR)")
    cfg = config_from_args(ExportConfig, a, section="export")
    from loaders.beton.export import export

    res = export(a.source, out, cfg, overwrite=a.overwrite)
    print(f"exported {res['exported']} images to {res['out']} (table: {res['table']})")
    return 0
