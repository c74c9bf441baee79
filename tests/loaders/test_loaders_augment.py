"""loaders.augment: the counter-based hash against SplitMix64's published outputs and a plain
Python reference, the crop windows against the reference written from torchvision's
``RandomResizedCrop.get_params``, and the windows' distribution against torchvision's own draws
(fixed seeds, tolerances of 5 standard errors)."""
import math

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
    # the crops span the asked area range
    assert a["scale"].min() < 0.1 and a["scale"].max() > 0.95
