"""Write and pack throughput of ``loaders.beton`` vs FFCV's ``DatasetWriter``.

``python -m bench beton_write [--quick]``

1. write: the same in-memory 256 px RGB images (JPEG q90, ``max_resolution=256``), the same
   number of workers: our ``BetonWriter`` (threads, fsynced commits) vs FFCV's
   ``DatasetWriter`` (processes) vs a bare JPEG-encode loop on the same cores (the limit).
2. pack: a folder of ImageNet-like JPEGs (500x375, resized to 256) and one of JPEGs that
   already fit (passthrough): ``loaders.beton.pack`` vs FFCV's writer over a PIL dataset of the
   same files (FFCV's documented ImageFolder route).
All seven methods run interleaved in one measurement (``bench.common``); headlines
``ratio_vs_ffcv`` (>= 1.5) and ``ratio_vs_encode_limit`` (>= 0.85) are images/s ratios per
round.  CPU time per image (this process + its worker processes) is reported too:
``cpu_ratio_*`` compare efficiency, which other load on a shared machine disturbs less.
OpenCV's own threading is off (``cv2.setNumThreads(1)``) so every method uses exactly
``--workers`` encoding threads/processes.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import tempfile

import numpy as np

from bench.common import Method, bench_args, measure, pin_threads, report, speedup

RESOLUTION = 256
"""Side of the in-memory images and ``max_resolution`` of every writer."""
QUALITY = 90
"""JPEG quality of every writer."""
PACK_SRC = (375, 500)
"""(height, width) of the ImageNet-like folder images (resized to RESOLUTION when packed)."""
TARGETS = {"ratio_vs_ffcv": 1.5, "ratio_vs_encode_limit": 0.85}


def synthetic_image(i: int, h: int, w: int) -> np.ndarray:
    """Smooth gradients + texture + noise: JPEG cost and size close to natural images."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.01, 0.08, 3)
    img = np.stack([127 + 100 * np.sin(f[c] * x + (c + 1) * f[(c + 1) % 3] * y + i)
                    for c in range(3)], -1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


class _Images:
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[int(i)], int(i) % 1000


class _Files:
    """FFCV's documented route: a dataset that opens each file with PIL."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.items[int(i)]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), label


def _fields():
    from ffcv.fields import IntField, RGBImageField

    return {"image": RGBImageField(write_mode="jpg", max_resolution=RESOLUTION,
                                   jpeg_quality=QUALITY), "label": IntField()}


@contextlib.contextmanager
def _quiet():
    """FFCV's writer draws tqdm bars on stderr; keep the benchmark's table readable."""
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        yield


def write_methods(n: int, workers: int, tmp: str) -> tuple[list, int]:
    """encode_limit / ours / ffcv writing the same ``n`` in-memory images;
    -> (methods, JPEG bytes)."""
    from ffcv.fields.rgb_image import encode_jpeg
    from ffcv.writer import DatasetWriter

    from loaders.beton import BetonWriter

    base = [synthetic_image(i, RESOLUTION, RESOLUTION) for i in range(64)]
    images = [base[i % len(base)] for i in range(n)]
    ours_path, ffcv_path = os.path.join(tmp, "ours.beton"), os.path.join(tmp, "ffcv.beton")
    pool = concurrent.futures.ThreadPoolExecutor(workers)

    def encode_limit():
        return sum(b.nbytes for b in pool.map(lambda im: encode_jpeg(im, QUALITY), images))

    def ours():
        with BetonWriter(ours_path, n, _fields(), num_workers=workers, overwrite=True) as w:
            for i, im in enumerate(images):
                w.append(i, {"image": im, "label": i % 1000})

    def ffcv():
        with _quiet():
            DatasetWriter(ffcv_path, _fields(), num_workers=workers).from_indexed_dataset(
                _Images(images))

    nbytes = encode_limit()
    return [Method("encode_limit", encode_limit, n),
            Method("ours", ours, n),
            Method("ffcv", ffcv, n, teardown=pool.shutdown)], nbytes


def _make_folder(root: str, n: int, hw) -> list:
    from PIL import Image

    items = []
    for i in range(n):
        d = os.path.join(root, "n01440764" if i % 2 else "n02123045")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{i:06d}.jpg")
        Image.fromarray(synthetic_image(1000 + i, *hw)).save(path, quality=90)
        items.append((path, 0 if i % 2 else 281))
    return sorted(items)


PACK_CASES = {"resize": PACK_SRC, "passthrough": (RESOLUTION * 3 // 4, RESOLUTION)}
"""Folder image sizes: ImageNet-like (resized when packed) and already fitting (passthrough)."""


def pack_methods(n: int, workers: int, tmp: str) -> tuple[list, dict]:
    """ours_pack_<case> / ffcv_pack_<case> over folders of ``n`` JPEGs; -> (methods, bytes)."""
    from ffcv.writer import DatasetWriter

    from loaders.beton.pack import PackConfig, pack

    methods, nbytes = [], {}
    for case, hw in PACK_CASES.items():
        root = os.path.join(tmp, f"folder_{case}")
        items = _make_folder(root, n, hw)
        nbytes[case] = sum(os.path.getsize(p) for p, _ in items)
        ours_path = os.path.join(tmp, f"pack_{case}.beton")
        ffcv_path = os.path.join(tmp, f"ffcv_pack_{case}.beton")

        def ours(root=root, ours_path=ours_path):
            pack(PackConfig(root, ours_path, max_resolution=RESOLUTION, jpeg_quality=QUALITY,
                            num_workers=workers, overwrite=True))

        def ffcv(items=items, ffcv_path=ffcv_path):
            with _quiet():
                DatasetWriter(ffcv_path, _fields(), num_workers=workers).from_indexed_dataset(
                    _Files(items))

        methods += [Method(f"ours_pack_{case}", ours, n), Method(f"ffcv_pack_{case}", ffcv, n)]
    return methods, nbytes


def main(argv=None) -> dict:
    import cv2

    p = bench_args("beton_write", __doc__)
    p.add_argument("--images", type=int, default=None, help="in-memory images [3000; quick 800]")
    p.add_argument("--pack-images", type=int, default=None, help="folder images [800; quick 240]")
    p.add_argument("--workers", type=int, default=2, help="encoding workers for every method")
    a = p.parse_args(argv)
    n = a.images or (800 if a.quick else 3000)
    n_pack = a.pack_images or (240 if a.quick else 800)
    threads = pin_threads(a.threads)
    cv2.setNumThreads(1)
    tmp = tempfile.mkdtemp(prefix="bench_beton_")
    try:
        write, write_bytes = write_methods(n, a.workers, tmp)
        packs, pack_bytes = pack_methods(n_pack, a.workers, tmp)
        results = measure(write + packs, rounds=a.rounds, min_seconds=a.min_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    headline = {
        "ratio_vs_ffcv": speedup(results, "ours", "ffcv", target=TARGETS["ratio_vs_ffcv"]),
        "ratio_vs_encode_limit": speedup(results, "ours", "encode_limit",
                                         target=TARGETS["ratio_vs_encode_limit"]),
    }
    secondary = {
        "cpu_ratio_vs_ffcv": speedup(results, "ours", "ffcv", cpu=True),
        "cpu_ratio_vs_encode_limit": speedup(results, "ours", "encode_limit", cpu=True),
        **{f"pack_{case}_ratio_vs_ffcv": speedup(results, f"ours_pack_{case}",
                                                 f"ffcv_pack_{case}")
           for case in PACK_CASES},
    }
    ips = {name: 1 / s.summary()["wall_s_per_item"]["median"] for name, s in results.items()}
    folders = ", ".join(f"{k} {w}x{h}" for k, (h, w) in PACK_CASES.items())
    out = report(results, headline, secondary=secondary, item="image",
                 title=f"write: {n} in-memory {RESOLUTION}px images, jpg q{QUALITY}; pack: "
                       f"{n_pack} JPEGs per folder ({folders}); {a.workers} workers",
                 extra={"write_images": n, "pack_images": n_pack, "workers": a.workers,
                        "quick": a.quick,
                        "write_MB_per_s": write_bytes / n * ips["ours"] / 1e6,
                        "pack_input_MB_per_s": {c: pack_bytes[c] / n_pack
                                                * ips[f"ours_pack_{c}"] / 1e6
                                                for c in PACK_CASES},
                        "env": {"threads": threads, "cv2_threads": 1}})
    return out
