"""``python -m bench loaders [--quick]``: images/s of each backend's train pipeline at 224 px.

All methods decode the same ImageNet-like JPEGs (about 400x350, stored verbatim by
``synthclone pack``) into 224x224 RandomResizedCrop tensors with the same number of CPU
workers (``--workers``, default the pinned thread count):

* ``ffcv``: the FFCV backend over the .beton (one source, full batches);
* ``ffcv_dual``: ``DualDomainLoader`` over two .beton sources, 50/50 (same backend);
* ``dali``: the DALI backend on the CPU (``device_id=None``) over the .beton;
* ``torchvision``: the baseline, PIL + transforms v2 + DataLoader workers over the folder of
  the same JPEGs;
* ``decode_limit``: a bare loop, no framework: ``--workers`` threads each call libjpeg-turbo's
  ``tjDecompress2`` (through ctypes, ``TJFLAG_FASTDCT``, the call FFCV makes) on the stored
  bytes, cut the same kind of random crop (FFCV's ``get_random_crop``) and resize it to 224 with
  OpenCV ``INTER_AREA`` (FFCV's resize). Nothing else: no flip, normalisation, batching or
  copies. OpenCV's own threading is off so every method uses exactly ``--workers`` threads.

Figures (speedups: higher is faster): ``ffcv_vs_torchvision`` (target >= 2),
``ffcv_vs_decode_limit`` (target >= 0.8), ``dali_vs_torchvision``, ``dali_vs_ffcv`` and
``dual_overhead`` = ffcv_dual's time per image / ffcv's - 1 (target <= 0.05).
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import os
import shutil
import tempfile
import threading

import numpy as np

from bench.common import Method, bench_args, measure, pin_threads, ratio, report, speedup

SIZE = 224
"""Output side of every method."""
STORED = (350, 400)
"""(height, width) around which the stored JPEGs vary (ImageNet-like, as packed)."""
QUALITY = 90
"""JPEG quality of the generated images."""
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")
"""ImageNet-1K classes the generated folder uses (pack needs wnid folder names)."""
TJPF_RGB, TJFLAG_FASTDCT = 0, 2048
"""libjpeg-turbo constants (turbojpeg.h)."""


def synthetic_jpeg(i: int) -> bytes:
    """A textured RGB JPEG of about 400x350 (size varies per image), natural-image-like cost."""
    import io

    from PIL import Image

    rng = np.random.default_rng(i)
    h = STORED[0] + int(rng.integers(-40, 41))
    w = STORED[1] + int(rng.integers(-50, 51))
    low = rng.uniform(0, 255, (max(2, h // 24), max(2, w // 24), 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float32)
    img += rng.normal(0, 10, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def make_data(root: str, n: int) -> tuple[str, str, str]:
    """The JPEG folder, its packed .beton and a second copy as the synthetic source."""
    from loaders.beton.pack import PackConfig, pack

    folder = os.path.join(root, "jpegs")
    for i in range(n):
        d = os.path.join(folder, WNIDS[i % len(WNIDS)])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:06d}.JPEG"), "wb") as f:
            f.write(synthetic_jpeg(i))
    real = os.path.join(root, "real.beton")
    pack(PackConfig(source=folder, out=real, max_resolution=1024, num_workers=2))
    syn = os.path.join(root, "syn.beton")
    shutil.copyfile(real, syn)
    return folder, real, syn


class DecodeLimit:
    """The bare libjpeg-turbo + OpenCV loop (module doc), ``workers`` threads."""

    def __init__(self, beton: str, workers: int, config, seed: int = 0):
        import cv2
        from ffcv.fields.rgb_image import get_random_crop

        from loaders.beton import BetonReader

        name = ctypes.util.find_library("turbojpeg")
        if name is None:
            raise OSError("libturbojpeg not found (apt-get install libturbojpeg0)")
        self.lib = ctypes.CDLL(name)
        self.lib.tjInitDecompress.restype = ctypes.c_void_p
        self.lib.tjDecompress2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                           ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                           ctypes.c_int, ctypes.c_int, ctypes.c_int]
        with BetonReader(beton) as r:
            enc = [r.encoded(i) for i in range(len(r))]
        self.items = [(np.frombuffer(e[0], np.uint8), e.height, e.width) for e in enc]
        np.random.seed(seed)
        scale, ratio_ = np.array(config.crop_scale), np.array(config.crop_ratio)
        self.crops = [get_random_crop(h, w, scale, ratio_) for _, h, w in self.items]
        self.cv2, self.local = cv2, threading.local()
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "decode-limit")
        self.workers, self.next = workers, 0

    def _one(self, k: int) -> None:
        if not hasattr(self.local, "tj"):
            self.local.tj = self.lib.tjInitDecompress()
        data, h, w = self.items[k]
        out = np.empty((h, w, 3), np.uint8)
        if self.lib.tjDecompress2(self.local.tj, data.ctypes.data, data.size, out.ctypes.data,
                                  w, 0, h, TJPF_RGB, TJFLAG_FASTDCT) != 0:
            raise RuntimeError(f"libjpeg-turbo failed on image {k}")
        i, j, ch, cw = self.crops[k]
        self.cv2.resize(out[i:i + ch, j:j + cw], (SIZE, SIZE), interpolation=self.cv2.INTER_AREA)

    def _chunk(self, ks) -> None:
        for k in ks:
            self._one(k)

    def run(self, count: int) -> None:
        ks = [(self.next + t) % len(self.items) for t in range(count)]
        self.next = (self.next + count) % len(self.items)
        list(self.pool.map(self._chunk, [ks[w::self.workers] for w in range(self.workers)]))


class Cycle:
    """Pull ``batches`` batches per call from a loader, starting a new epoch when one ends."""

    def __init__(self, loader, batches: int):
        self.loader, self.batches, self.it = loader, batches, None

    def run(self) -> None:
        done = 0
        while done < self.batches:
            if self.it is None:
                self.it = iter(self.loader)
            try:
                next(self.it)
                done += 1
            except StopIteration:
                self.it = None


def overhead(r: dict, target: float) -> dict:
    """``ratio - 1`` (an overhead): the spread and stability stay those of the ratio."""
    out = dict(r)
    for k in ("median", "min", "max"):
        out[k] = r[k] - 1.0
    out["per_round"] = [x - 1.0 for x in r["per_round"]]
    out["target"], out["meets_target"] = target, out["median"] <= target
    return out


def main(argv=None) -> dict:
    p = bench_args("loaders", __doc__)
    p.add_argument("--images", type=int, help="JPEGs in the data set [1024; quick 256]")
    p.add_argument("--batch-size", type=int, help="images per batch [64; quick 32]")
    p.add_argument("--batches", type=int, default=4, help="batches per timed call [4]")
    p.add_argument("--workers", type=int, help="decode threads/processes per method "
                                               "[the pinned thread count]")
    p.add_argument("--dali-py-workers", type=int, default=0,
                   help="DALI feed processes (0: in-process feed, so DALI uses only --workers "
                        "decode threads like the others) [0]")
    p.add_argument("--data-dir", help="keep the generated data here (reused when present)")
    args = p.parse_args(argv)

    import cv2

    from loaders.backends import available_backends
    from loaders.config import LoaderConfig, MixConfig
    from loaders.mixing import DualDomainLoader, make_loader
    from loaders.torchvision import folder_loader

    threads = pin_threads(args.threads)
    cv2.setNumThreads(1)
    workers = args.workers or threads
    n = args.images or (256 if args.quick else 1024)
    batch = args.batch_size or (32 if args.quick else 64)
    per_call = batch * args.batches
    root = args.data_dir or tempfile.mkdtemp(prefix="bench-loaders-")
    os.makedirs(root, exist_ok=True)
    marker = os.path.join(root, f"ready-{n}")
    if os.path.exists(marker):
        folder, real, syn = (os.path.join(root, "jpegs"), os.path.join(root, "real.beton"),
                             os.path.join(root, "syn.beton"))
    else:
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        folder, real, syn = make_data(root, n)
        open(marker, "w").close()

    base = LoaderConfig(batch_size=batch, image_size=SIZE, workers=workers, seed=0)
    ffcv_cfg = base.replace(backend="ffcv", channels_last=True)
    loaders = {
        "ffcv": make_loader(real, ffcv_cfg),
        "ffcv_dual": DualDomainLoader(real, syn, ffcv_cfg, MixConfig(synthetic_share=0.5)),
        "torchvision": folder_loader(folder, base.replace(backend="torchvision")),
    }
    dali_missing = available_backends()["dali"]
    if dali_missing is None:
        loaders["dali"] = make_loader(real, base.replace(
            backend="dali", channels_last=True, dali_py_workers=args.dali_py_workers))
    limit = DecodeLimit(real, workers, base)
    methods = [Method(name, Cycle(ld, args.batches).run, items_per_call=per_call,
                      teardown=ld.close) for name, ld in loaders.items()]
    methods.append(Method("decode_limit", lambda: limit.run(per_call), items_per_call=per_call,
                          teardown=lambda: limit.pool.shutdown()))
    results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)

    headline = {
        "ffcv_vs_torchvision": speedup(results, "ffcv", "torchvision", target=2.0),
        "ffcv_vs_decode_limit": speedup(results, "ffcv", "decode_limit", target=0.8),
        "dual_overhead": overhead(ratio(results, "ffcv_dual", "ffcv"), target=0.05),
    }
    if "dali" in results:
        headline["dali_vs_torchvision"] = speedup(results, "dali", "torchvision")
        headline["dali_vs_ffcv"] = speedup(results, "dali", "ffcv")
    secondary = {"ffcv_vs_torchvision_cpu": speedup(results, "ffcv", "torchvision", cpu=True)}
    out = report(results, headline, secondary=secondary, item="image",
                 title=f"loaders: train pipeline at {SIZE} px, {n} JPEGs ~{STORED[1]}x"
                       f"{STORED[0]}, batch {batch}, {workers} workers, {threads} threads",
                 extra={"images": n, "batch_size": batch, "workers": workers,
                        "quick": args.quick, "dali": dali_missing or "cpu",
                        "env": {"cv2_threads": cv2.getNumThreads(),
                                "dali_py_workers": args.dali_py_workers}})
    if not args.data_dir:
        shutil.rmtree(root, ignore_errors=True)
    return out
