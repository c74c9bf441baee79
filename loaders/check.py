"""``synthclone inspect FILE --loader ffcv|dali|torchvision`` and ``--subset INDEX.json``.

* ``--loader``: decode ``--batches`` batches of FILE (a .beton; or an image folder with the
  torchvision backend) through a backend and report images/s, so a user can check a file and
  a backend without writing code. The first batch (numba JIT, worker start-up) is timed apart.
* ``--subset``: the per-class counts of a subset index file (``loaders.subsets``), recomputed
  from FILE's labels and checked against the counts the file records.

These hook into ``inspect``'s parser with :func:`add_inspect_args` and run from
:func:`run_inspect_extras`; errors are :class:`loaders.errors.LoadersError` (one line, exit 2).
"""
from __future__ import annotations

import json
import os
import sys
import time

from loaders.config import BACKEND_NAMES, LoaderConfig

__all__ = ["loader_check", "subset_report", "add_inspect_args", "run_inspect_extras"]


def loader_check(path: str, backend: str = "ffcv", batches: int = 10, batch_size: int = 64,
                 image_size: int = 224, workers: int = 0, pipeline: str = "train",
                 device: str = "cpu", log=None) -> dict:
    """Decode ``batches`` batches of ``path`` (after one untimed first batch) -> a summary with
    ``images_per_s``. ``log(message)`` hears when decoding starts (after the file checks)."""
    from loaders.mixing import make_loader

    config = LoaderConfig(backend=backend, batch_size=batch_size, image_size=image_size,
                          workers=workers, pipeline=pipeline, device=device)
    if os.path.isdir(path):
        from loaders.torchvision import folder_loader

        loader = folder_loader(path, config)
    else:
        loader = make_loader(path, config)
    if log is not None:
        log(f"decoding {batches} batches of {batch_size} with {backend} ...")
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t1 = time.perf_counter()
    images, done, classes = 0, 0, set()
    shape, dtype = tuple(first.images.shape), str(first.images.dtype).replace("torch.", "")
    while done < batches:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        images += b.batch_size
        done += 1
        classes.update(b.labels.tolist())
    t2 = time.perf_counter()
    loader.close()
    return {"path": path, "backend": backend, "pipeline": pipeline, "device": device,
            "batches": done, "images": images, "seconds": t2 - t1,
            "images_per_s": images / (t2 - t1) if t2 > t1 else float("inf"),
            "first_batch_s": t1 - t0, "batch_shape": list(shape), "dtype": dtype,
            "batches_per_epoch": len(loader), "classes_seen": len(classes)}


def subset_report(index_path: str, beton_path: str | None = None) -> dict:
    """Per-class counts of a subset index file; with ``beton_path`` recomputed from its labels
    (the file must be the one the subset was made for)."""
    from loaders.errors import LoadersError
    from loaders.subsets import class_counts, load_subset

    source = None
    if beton_path is not None:
        from loaders.sources import BetonSource

        source = BetonSource(beton_path)
    rows, record = load_subset(index_path, source)
    recorded = {int(k): int(v) for k, v in record.get("counts", {}).items()}
    counts = class_counts(source.labels_all[rows]) if source is not None else recorded
    if source is not None and recorded and counts != recorded:
        raise LoadersError(f"{index_path}: its recorded class counts differ from the labels of "
                           f"{beton_path} at its rows (was it made for another file?)")
    return {"subset": index_path, "spec": record.get("spec"), "num_rows": int(len(rows)),
            "num_classes": len(counts), "classes": counts,
            "clipped": record.get("clipped", [])}


def add_inspect_args(parser) -> None:
    """Add ``--loader``, ``--batches``, ``--batch-size``, ``--image-size``, ``--workers``,
    ``--pipeline``, ``--device`` and ``--subset`` to ``inspect``'s parser."""
    g = parser.add_argument_group("loader check (decode batches and report images/s)")
    g.add_argument("--loader", choices=BACKEND_NAMES, default=None,
                   help="decode batches of FILE through this backend and report images/s")
    g.add_argument("--batches", type=int, default=10, help="batches to time [10]")
    g.add_argument("--batch-size", type=int, default=64, help="images per batch [64]")
    g.add_argument("--image-size", type=int, default=224, help="output size in pixels [224]")
    g.add_argument("--workers", type=int, default=0,
                   help="decode threads/processes, 0 = one per core [0]")
    g.add_argument("--pipeline", choices=("train", "eval"), default="train",
                   help="train (random crop + flip) or eval (center crop) [train]")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    parser.add_argument("--subset", metavar="INDEX.json", default=None,
                        help="report the per-class counts of this subset index file of FILE")


def run_inspect_extras(args) -> bool:
    """Run ``--loader`` / ``--subset`` when given; True if one ran (``inspect`` is done)."""
    if args.loader is None and args.subset is None:
        return False
    from loaders.errors import LoaderConfigError

    as_json = getattr(args, "json", False)
    if args.subset is not None:
        rep = subset_report(args.subset, args.path)
        if as_json:
            print(json.dumps(rep, sort_keys=True))
        else:
            print(f"{rep['subset']}: {rep['num_rows']} rows of {args.path}, "
                  f"{rep['num_classes']} classes, spec {rep['spec']}")
            for label, n in rep["classes"].items():
                print(f"  {label:>5} {n:>7}")
            if rep["clipped"]:
                print(f"  {len(rep['clipped'])} classes had fewer images than their quota "
                      "(kept all they had)")
    if args.loader is not None:
        if args.batches < 1 or args.batch_size < 1:
            raise LoaderConfigError("--batches and --batch-size must be >= 1")
        rep = loader_check(args.path, args.loader, args.batches, args.batch_size,
                           args.image_size, args.workers, args.pipeline, args.device,
                           log=lambda msg: print(msg, file=sys.stderr))
        if as_json:
            print(json.dumps(rep, sort_keys=True))
        else:
            print(f"{rep['path']}: {rep['backend']} {rep['pipeline']} pipeline, "
                  f"{rep['images']} images in {rep['seconds']:.2f} s = "
                  f"{rep['images_per_s']:.0f} images/s (first batch {rep['first_batch_s']:.1f} s"
                  f" incl. start-up); batches {rep['batch_shape']} {rep['dtype']}")
    return True
