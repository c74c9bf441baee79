"""``synthclone pack | merge | inspect``: argparse front-ends; each ``*_main(argv) -> int``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from loaders.beton.format import DEFAULT_PAGE_SIZE, BetonFormatError

__all__ = ["pack_main", "merge_main", "inspect_main", "get_pack_args_parser",
           "get_merge_args_parser", "get_inspect_args_parser"]


def _resolution(v: str):
    return None if v.lower() in ("none", "0") else int(v)


def get_pack_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthclone pack", description=(
        "Pack a real image folder (root/<wnid>/<image>) or a 'path,label' list file into a "
        ".beton with ImageNet-1K labels."))
    p.add_argument("source", help="ImageFolder root with wnid folders, or a list file")
    p.add_argument("out", help="output .beton path")
    p.add_argument("--max-resolution", type=_resolution, default=256,
                   help="longest side after resizing ('none' keeps sizes) [256]")
    p.add_argument("--write-mode", default="jpg", choices=["jpg", "raw", "smart", "proportion"])
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--workers", type=int, default=2, help="read and encode threads [2]")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"],
                   help="unreadable image: stop, or skip it and list it [fail]")
    p.add_argument("--no-passthrough", action="store_true",
                   help="re-encode JPEGs even when they already fit")
    p.add_argument("--compact-labels", action="store_true",
                   help="labels 0..k-1 in sorted class order instead of ImageNet-1K indices")
    p.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def pack_main(argv: list[str] | None = None) -> int:
    from loaders.beton.pack import PackConfig, PackError, pack

    a = get_pack_args_parser().parse_args(argv)
    try:
        cfg = PackConfig(source=a.source, out=a.out, max_resolution=a.max_resolution,
                         write_mode=a.write_mode, jpeg_quality=a.jpeg_quality,
                         num_workers=a.workers, on_error=a.on_error,
                         passthrough=not a.no_passthrough, compact_labels=a.compact_labels,
                         page_size=a.page_size, overwrite=a.overwrite, progress=not a.quiet)
        res = pack(cfg)
    except (PackError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"synthclone pack: error: {exc}", file=sys.stderr)
        return 1
    print(f"packed {res.num_written} images of {len(res.classes)} classes into {a.out} "
          f"({res.passthrough} JPEGs stored verbatim)", file=sys.stderr)
    if res.skipped:
        listing = a.out + ".skipped.txt"
        with open(listing, "w", encoding="utf8") as f:
            f.writelines(f"{p}\t{why}\n" for p, why in res.skipped)
        print(f"skipped {len(res.skipped)} unreadable files (listed in {listing}):",
              file=sys.stderr)
        for p, why in res.skipped[:20]:
            print(f"  {why}", file=sys.stderr)
    return 0


def get_merge_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthclone merge", description=(
        "Concatenate .beton files with identical fields (bytes copied verbatim, sample ids "
        "renumbered 0..total-1)."))
    p.add_argument("inputs", nargs="+", help="input .beton files, in output order")
    p.add_argument("-o", "--out", required=True, help="output .beton path")
    p.add_argument("--keep-sample-ids", action="store_true",
                   help="keep stored 'sample_id' values instead of renumbering them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def merge_main(argv: list[str] | None = None) -> int:
    from loaders.beton.merge import merge_betons

    a = get_merge_args_parser().parse_args(argv)
    try:
        n = merge_betons(a.inputs, a.out, renumber_field=None if a.keep_sample_ids else "sample_id",
                         overwrite=a.overwrite, progress=not a.quiet)
    except (BetonFormatError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"synthclone merge: error: {exc}", file=sys.stderr)
        return 1
    print(f"merged {len(a.inputs)} files, {n} samples -> {a.out}", file=sys.stderr)
    return 0


def get_inspect_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthclone inspect", description=(
        "Summarise a .beton: samples per class and domain, fields, size, write-mode mix."))
    p.add_argument("path", help=".beton file")
    p.add_argument("--verify", action="store_true",
                   help="structural checks and decode every image")
    p.add_argument("--grid", metavar="OUT.png", help="write a contact sheet of random samples")
    p.add_argument("--per-class", type=int, default=6, help="grid columns [6]")
    p.add_argument("--max-classes", type=int, default=10, help="grid rows [10]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return p


def inspect_main(argv: list[str] | None = None) -> int:
    from loaders.beton.summary import class_names, contact_sheet, summarize
    from loaders.beton.reader import BetonReader

    a = get_inspect_args_parser().parse_args(argv)
    if not os.path.exists(a.path):
        print(f"synthclone inspect: error: {a.path} does not exist", file=sys.stderr)
        return 1
    try:
        r = BetonReader(a.path)
        s = summarize(r)
        if a.verify:
            s["verify"] = r.verify(decode=True)
        if a.grid:
            s["grid"] = contact_sheet(r, a.grid, a.per_class, a.max_classes, a.seed)
    except BetonFormatError as exc:
        print(f"synthclone inspect: error: {exc}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(f"{s['path']}: {s['num_samples']} samples, {s['file_bytes'] / 2**20:.1f} MiB, "
          f"page {s['page_size']}")
    print("fields: " + ", ".join(f"{n} ({t})" for n, t in s["fields"].items()))
    if "write_modes" in s:
        print(f"write modes: {s['write_modes']}  height {s['image_height']}  "
              f"width {s['image_width']}")
    print(f"domains: {s['domains']}")
    if "classes" in s:
        names = class_names(s["classes"])
        print(f"classes: {s['num_classes']}")
        for label, n in sorted(s["classes"].items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {label:>5} {n:>7}  {names.get(label, '')}")
    if a.verify:
        print(f"verify: OK ({s['verify']['image_modes']})")
    if a.grid:
        print(f"grid: {s['grid']}")
    return 0
