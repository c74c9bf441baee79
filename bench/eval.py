"""``python -m bench eval [--quick]``: feature extraction through the product's eval path.

``features_vs_model_only`` (issue #13, target >= 0.9): images/s of ``engine.eval``'s path over
images/s of the same model on the same images already decoded and transformed in memory (the
model's limit). Both at 224 px on the CPU, same batch size and threads. The eval path is
``engine.eval.inference.run_model`` (feature hook on, cache off) over

* ``--input beton`` (default): a .beton of JPEGs read by the loaders' eval pipeline
  (``loaders.mixing.make_eval_loader`` through ``engine.eval.beton_input``; ``--backend`` ffcv
  by default, decode threads ``--workers``): center crop 224/256, then ResNet-18. The loader is
  opened once, outside the timed region (FFCV compiles its pipeline then, ~1 s, once per set
  in ``synthclone eval``); each call reads every image through it again;
* ``--input folder``: the same JPEGs as files, decoded by PIL and transformed (resize 256,
  center crop 224) in ``--workers`` DataLoader processes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from bench.common import Method, bench_args, measure, pin_threads, report, speedup

IMAGE_SIZE = (400, 350)
"""Stored images: ImageNet-like JPEGs (quality 90)."""


def make_images(folder: str, n: int) -> list[str]:
    import numpy as np
    from PIL import Image

    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        w, h = IMAGE_SIZE
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * 3 + 11 * i) % 256, (y * 2 + 5 * i) % 256, (x + y + i) % 256], -1)
        img = np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"{i:05d}.JPEG")
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def make_beton(path: str, images: list[str]) -> str:
    """The JPEG files as one .beton (JPEG quality 90, labels 0), as ``synthclone pack``
    stores a real set."""
    import numpy as np
    from ffcv.fields import IntField, RGBImageField
    from PIL import Image

    from loaders.beton import BetonWriter

    fields = {"image": RGBImageField(write_mode="jpg", jpeg_quality=90), "label": IntField()}
    with BetonWriter(path, num_samples=len(images), fields=fields, num_workers=1) as w:
        for i, p in enumerate(images):
            with Image.open(p) as im:
                w.append(i, {"image": np.asarray(im.convert("RGB")), "label": 0})
    return path


def main(argv=None) -> dict:
    p = bench_args("eval", __doc__)
    p.add_argument("--images", type=int, help="images per call [128; quick 32]")
    p.add_argument("--batch-size", type=int, help="images per forward [32; quick 16]")
    p.add_argument("--workers", type=int, default=1,
                   help="decode threads (beton) or DataLoader processes (folder) [%(default)s]")
    p.add_argument("--input", choices=("beton", "folder"), default="beton",
                   help="what the eval path reads [%(default)s]")
    p.add_argument("--backend", choices=("ffcv", "dali", "torchvision"), default="ffcv",
                   help="loader backend of --input beton [%(default)s]")
    p.add_argument("--arch", default="resnet18", help="torchvision/timm model [%(default)s]")
    args = p.parse_args(argv)
    import torch

    from engine.eval.beton_input import BetonImages
    from engine.eval.checkpoint import build_model, load_model
    from engine.eval.images import ImageDataset, TransformSpec, image_batches
    from engine.eval.inference import run_model

    threads = pin_threads(args.threads)
    n = args.images or (32 if args.quick else 128)
    batch = args.batch_size or (16 if args.quick else 32)
    tmp = tempfile.mkdtemp(prefix="bench-eval-")
    stack = contextlib.ExitStack()
    try:
        paths = make_images(tmp, n)
        torch.manual_seed(0)
        torch.save(build_model(args.arch)[0].state_dict(), os.path.join(tmp, "model.pt"))
        loaded = load_model(os.path.join(tmp, "model.pt"), model=args.arch)
        if args.input == "beton":
            data = BetonImages(make_beton(os.path.join(tmp, "set.beton"), paths), range(n),
                               crop=224, resize=256, backend=args.backend)
            data = stack.enter_context(data.open(batch, args.workers))     # compiled once
        else:
            data = ImageDataset(paths, TransformSpec(256, 224, "bilinear").build())
        tensors = torch.cat([b.clone() for b in image_batches(
            data, batch_size=batch, workers=args.workers)])                   # (n, 3, 224, 224)
        pin_threads(threads)

        def eval_path():
            run_model(loaded, data, batch_size=batch, workers=args.workers, device="cpu")

        def model_only():
            handle = loaded.head.register_forward_hook(lambda m, i, o: None)
            try:
                with torch.inference_mode():
                    for start in range(0, n, batch):
                        loaded.model(tensors[start:start + batch])
            finally:
                handle.remove()

        results = measure([Method("eval_path", eval_path, items_per_call=n),
                           Method("model_only", model_only, items_per_call=n)],
                          rounds=args.rounds, min_seconds=args.min_seconds)
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
    source = (f"a .beton of {n} JPEGs {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} via {args.backend}"
              if args.input == "beton" else f"{n} JPEG files {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}")
    return report(
        results,
        headline={"features_vs_model_only": speedup(results, "eval_path", "model_only",
                                                    target=0.9)},
        title=f"eval feature extraction: {args.arch} at 224 px, {source}, batch {batch}, "
              f"{args.workers} workers, {threads} threads",
        item="image",
        extra={"model": args.arch, "images": n, "batch_size": batch, "workers": args.workers,
               "input": args.input, "backend": args.backend if args.input == "beton" else None,
               "quick": args.quick})
