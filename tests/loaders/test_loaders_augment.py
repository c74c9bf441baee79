"""loaders.augment: the counter-based hash against SplitMix64's published outputs and a plain
Python reference, the crop windows against the reference written from torchvision's
``RandomResizedCrop.get_params``, and the windows' distribution against torchvision's own draws
(fixed seeds, tolerances of 5 standard errors). Then the backends: FFCV, torchvision and DALI
cut the same window and flip from the same (seed, epoch, row), and a loader gives the same
bytes in any process (PYTHONHASHSEED, worker counts)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from loaders.augment import (CropSpec, crop_params, epoch_key, mix64, sample_keys, uniforms)
from tests.loaders.loader_refs import (crop_window_ref, epoch_key_ref, sample_key_ref,
                                       splitmix_mix, splitmix_next, uniform_ref)


def test_the_hash_is_splitmix64():
    # SplitMix64 seeded with 0 (Vigna's splitmix64.c): its first three outputs
    state, out = 0, []
    for _ in range(3):
        state, o = splitmix_next(state)
        out.append(o)
    assert out == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    rng = np.random.default_rng(0)
    zs = rng.integers(0, 2 ** 63, 500, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert [int(mix64(z)) for z in zs] == [splitmix_mix(int(z)) for z in zs]
    # the draws of a key are SplitMix64's outputs from the key as its state
    key = 0x0123456789ABCDEF
    state, outs = key, []
    for _ in range(4):
        state, o = splitmix_next(state)
        outs.append((o >> 11) / 2.0 ** 53)
    assert uniforms([key], 4)[0].tolist() == outs


def test_keys_equal_the_reference_and_depend_on_every_input():
    for seed, epoch in [(0, 0), (7, 3), (-1, 10 ** 6), (2 ** 40, 1)]:
        assert epoch_key(seed, epoch) == epoch_key_ref(seed & (2 ** 64 - 1), epoch)
    ek = epoch_key(7, 3)
    rows = np.arange(0, 5000, 7)
    assert sample_keys(ek, rows).tolist() == [sample_key_ref(ek, int(r)) for r in rows]
    keys = {epoch_key(s, e, st) for s in range(4) for e in range(4) for st in ("crop",
                                                                              "multicrop")}
    assert len(keys) == 32
    assert len(set(sample_keys(ek, np.arange(100000)).tolist())) == 100000
    u = uniforms(sample_keys(ek, np.arange(300)), 50)
    assert u.shape == (300, 50) and 0 <= u.min() and u.max() < 1
    assert u[:5, :5].tolist() == [[uniform_ref(sample_key_ref(ek, r), n) for n in range(5)]
                                  for r in range(5)]


@pytest.mark.parametrize("spec", [CropSpec(), CropSpec((0.35, 1.0), (3 / 4, 4 / 3), False),
                                  CropSpec((1.0, 1.0), (1.0, 1.0)),
                                  CropSpec((1.0, 1.0), (3 / 4, 4 / 3))])
def test_windows_equal_the_torchvision_reference(spec):
    rng = np.random.default_rng(1)
    n = 3000
    heights = rng.integers(1, 700, n)
    widths = rng.integers(1, 700, n)
    widths[:200] = heights[:200] * 5  # very wide and very tall images: the centre fallback
    heights[200:400] = widths[200:400] * 5
    ek = epoch_key(3, 2)
    rows = rng.integers(0, 10 ** 9, n)
    got = crop_params(ek, rows, heights, widths, spec)
    for k in range(n):
        key = sample_key_ref(ek, int(rows[k]))
        want = crop_window_ref(key, int(heights[k]), int(widths[k]), spec.scale, spec.ratio)
        assert tuple(got[k, :4]) == want, (k, heights[k], widths[k])
        flip = spec.flip and uniform_ref(key, 40) < 0.5
        assert got[k, 4] == flip
        top, left, h, w = want
        assert 0 <= top and top + h <= heights[k] and 0 <= left and left + w <= widths[k]


def _stats(p: np.ndarray, height: int, width: int) -> dict:
    """Per window: area share, log aspect (w / h), relative top and left position."""
    top, left, h, w = (p[:, k].astype(np.float64) for k in range(4))
    return {"scale": h * w / (height * width), "log_ratio": np.log(w / h),
            "top": np.where(height > h, top / np.maximum(height - h, 1), 0.5),
            "left": np.where(width > w, left / np.maximum(width - w, 1), 0.5),
            "whole": (h == height) | (w == width)}


@pytest.mark.parametrize("height,width", [(300, 400), (100, 500), (64, 64)])
def test_the_distribution_is_torchvisions(height, width):
    from torchvision.transforms import v2

    n = 20000
    ours = crop_params(epoch_key(0, 0), np.arange(n), np.full(n, height), np.full(n, width),
                       CropSpec())
    torch.manual_seed(0)
    img = torch.zeros(3, height, width)
    theirs = np.array([v2.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3])
                       for _ in range(n)])
    a, b = _stats(ours, height, width), _stats(theirs, height, width)
    for name in ("scale", "log_ratio", "top", "left", "whole"):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        se = math.sqrt(x.var() / n + y.var() / n) + 1e-12
        assert abs(x.mean() - y.mean()) < 5 * se, (name, x.mean(), y.mean(), se)
    flips = ours[:, 4].mean()
    assert abs(flips - 0.5) < 5 * math.sqrt(0.25 / n)
    # the crops span the area range torchvision's do (a 100 x 500 image allows at most 26.8 %:
    # h <= 100 and w <= 4/3 h)
    assert abs(a["scale"].min() - b["scale"].min()) < 0.01
    assert abs(a["scale"].max() - b["scale"].max()) < 0.01


# ----------------------------------------------------------------------------- the backends

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 24
BACKENDS = ("ffcv", "torchvision", "dali")


def gradient(i: int) -> np.ndarray:
    """A 30-79 px image whose red channel is its x coordinate and green its y (0-255 across
    the image), blue a constant of ``i``: any resampling filter of a window gives nearly the
    same pixels, and another window or a flip very different ones."""
    h, w = 30 + (i * 11) % 50, 30 + (i * 17) % 50
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.round(255 * x / (w - 1)), np.round(255 * y / (h - 1)),
                     np.full((h, w), (i * 37) % 256)], -1).astype(np.uint8)


def write_gradients(path, n: int, base: int, mode: str) -> str:
    from ffcv.fields import IntField, RGBImageField

    from loaders.beton import BetonWriter

    fields = {"image": RGBImageField(write_mode=mode, jpeg_quality=95), "label": IntField(),
              "sample_id": IntField()}
    with BetonWriter(str(path), n, fields, num_workers=1, page_size=1 << 21,
                     durable=False) as w:
        for i in range(n):
            w.append(i, {"image": gradient(base + i), "label": i % 3, "sample_id": base + i})
    return str(path)


@pytest.fixture(scope="module")
def gradient_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("augment")
    return {mode: [write_gradients(d / f"a_{mode}.beton", 20, 0, mode),
                   write_gradients(d / f"b_{mode}.beton", 14, 100, mode)]
            for mode in ("raw", "jpg")}


def train_images(backend: str, paths, seed: int, epochs=(0, 1)) -> list[torch.Tensor]:
    from loaders.config import LoaderConfig
    from loaders.mixing import make_loader

    cfg = LoaderConfig(backend=backend, batch_size=8, image_size=SIZE, workers=1, seed=seed,
                       dtype="uint8", dali_py_workers=0, timeout=120)
    loader = make_loader(paths, cfg)
    out = []
    try:
        for epoch in epochs:
            loader.set_epoch(epoch)
            out.append(torch.cat([b.images.clone() for b in loader]).float())
    finally:
        loader.close()
    return out


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode,max_tol", [("raw", 3), ("jpg", 8)])
def test_every_backend_cuts_the_same_window_and_flip(gradient_files, mode, max_tol):
    """Same seed, epoch and row -> the same window and flip in FFCV, torchvision and DALI (two
    files: the second file's rows continue the first's). Their resampling filters differ
    (OpenCV area, PIL bilinear, DALI triangular), so the pixels agree within a few levels on
    these gradients (measured: max 2 raw, 5 JPEG; mean 0.15 / 1.1); a window of another epoch
    differs by >= 20 levels on average in every image."""
    got = {b: train_images(b, gradient_files[mode], seed=5) for b in BACKENDS}
    ref = got["ffcv"]
    for backend in ("torchvision", "dali"):
        for epoch in (0, 1):
            diff = (got[backend][epoch] - ref[epoch]).abs()
            assert diff.mean() < 2 and diff.max() <= max_tol, (backend, epoch, diff.mean(),
                                                                diff.max())
            other = (got[backend][epoch] - ref[1 - epoch]).abs().mean((1, 2, 3))
            assert other.min() > 10, (backend, epoch, other.min())


@pytest.mark.timeout(600)
def test_ffcv_crops_are_the_reference_windows_of_the_whole_row_space(gradient_files):
    """Exact pixels: every FFCV train image is OpenCV's area resize of the reference window
    (plain Python, loader_refs) of its row, mirrored when its flip bit says so."""
    from loaders.beton import BetonReader
    from loaders.config import LoaderConfig
    from loaders.mixing import make_loader
    from tests.loaders.loader_refs import keyed_crop, keyed_params_ref

    paths = gradient_files["raw"]
    imgs = []
    for p in paths:
        with BetonReader(p) as r:
            imgs += [r.read(i)["image"] for i in range(len(r))]
    loader = make_loader(paths, LoaderConfig(batch_size=8, image_size=SIZE, workers=1, seed=9,
                                             dtype="uint8"))
    flips = 0
    for epoch in (0, 3):
        loader.set_epoch(epoch)
        plan = loader.epoch_plan(epoch)
        for b, batch in enumerate(loader):
            for row, img in zip(plan.batch(b).tolist(), batch.images):
                params = keyed_params_ref(9, epoch, row, *imgs[row].shape[:2])
                flips += params[4]
                want = keyed_crop(imgs[row], params, SIZE)
                assert np.array_equal(img.permute(1, 2, 0).numpy(), want), (epoch, row)
    loader.close()
    assert flips > 0


def _child_digest(backend: str, seed: int, workers: int, paths, hashseed: str) -> str:
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONHASHSEED": hashseed, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "tests.loaders.augment_child", backend,
                          str(seed), str(workers), *paths], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=500)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend,workers", [("ffcv", (1, 2)), ("torchvision", (0, 2)),
                                             ("dali", (0, 2))])
def test_same_bytes_in_any_process_and_worker_count(gradient_files, backend, workers):
    """Two processes with different PYTHONHASHSEED and worker counts give the same bytes as
    this process; another seed gives others."""
    from tests.loaders.augment_child import digest

    paths = gradient_files["jpg"]
    here = digest(backend, 3, workers[0], paths)
    assert _child_digest(backend, 3, workers[0], paths, "0") == here
    assert _child_digest(backend, 3, workers[1], paths, "2") == here
    assert digest(backend, 4, workers[0], paths) != here
