"""``python -m bench eval [--quick]``: feature extraction through the product's eval path.

``features_vs_model_only`` (issue #13, target >= 0.9): images/s of ``engine.eval``'s path —
JPEG files listed, decoded and transformed (resize 256, center crop 224) by DataLoader workers,
then a ResNet-18 forward with the feature hook (``engine.eval.inference.run_model``, cache off)
— over images/s of the same model on the same images already decoded and transformed in
memory (the model's limit). Both at 224 px on the CPU, same batch size and threads.
"""
from __future__ import annotations

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


def main(argv=None) -> dict:
    p = bench_args("eval", __doc__)
    p.add_argument("--images", type=int, help="images per call [128; quick 32]")
    p.add_argument("--batch-size", type=int, help="images per forward [32; quick 16]")
    p.add_argument("--workers", type=int, default=1,
                   help="DataLoader decode workers of the eval path [%(default)s]")
    p.add_argument("--arch", default="resnet18", help="torchvision/timm model [%(default)s]")
    args = p.parse_args(argv)
    import torch

    from engine.eval.checkpoint import build_model, load_model
    from engine.eval.images import ImageDataset, TransformSpec
    from engine.eval.inference import run_model

    threads = pin_threads(args.threads)
    n = args.images or (32 if args.quick else 128)
    batch = args.batch_size or (16 if args.quick else 32)
    tmp = tempfile.mkdtemp(prefix="bench-eval-")
    try:
        paths = make_images(tmp, n)
        torch.manual_seed(0)
        torch.save(build_model(args.arch)[0].state_dict(), os.path.join(tmp, "model.pt"))
        loaded = load_model(os.path.join(tmp, "model.pt"), model=args.arch)
        transform = TransformSpec(256, 224, "bilinear").build()
        dataset = ImageDataset(paths, transform)
        tensors = torch.stack([dataset[i][0] for i in range(n)])             # (n, 3, 224, 224)

        def eval_path():
            run_model(loaded, dataset, batch_size=batch, workers=args.workers, device="cpu")

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
        shutil.rmtree(tmp, ignore_errors=True)
    return report(
        results,
        headline={"features_vs_model_only": speedup(results, "eval_path", "model_only",
                                                    target=0.9)},
        title=f"eval feature extraction: {args.arch} at 224 px, {n} JPEGs "
              f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, batch {batch}, {args.workers} workers, "
              f"{threads} threads",
        item="image",
        extra={"model": args.arch, "images": n, "batch_size": batch, "workers": args.workers,
               "quick": args.quick})
