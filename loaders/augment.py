"""Keyed random augmentation: every random crop and flip is a pure function of
``(seed, epoch, row)``, the same function in every backend.

    key = epoch_key(seed, epoch)                           # Python, once per epoch
    params = crop_params(key, rows, heights, widths, spec)  # (n, 5): top, left, h, w, flip

Why: FFCV 1.0.2 draws its crops and flips from numba's unseeded per-thread generators,
torchvision from torch's global or worker generator, DALI from a seeded generator whose
sequence depends on how many batches it ran. None of them gives the same crops twice, nor the
crops an uninterrupted run would have drawn after a resume. Here nothing carries state: a
sample's random numbers are a counter-based hash of its key, so two loaders with the same seed
agree pixel for pixel, and a loader resumed mid-epoch draws exactly the remaining batches' crops.

The hash (SplitMix64, Steele et al. 2014; its finaliser is a bijection of 64-bit words):
``h(x) = mix(x + GOLDEN)``; ``epoch_key = h(h(h(seed) ^ stream) ^ epoch)``;
``sample_key = h(epoch_key ^ h(row))``; draw ``n`` of a sample is ``mix(sample_key + (n + 1) *
GOLDEN)`` (SplitMix64's own sequence from state ``sample_key``), its top 53 bits a uniform
float in [0, 1). ``row`` is the sample's row in the loader's row space (the real source's files,
then the synthetic source's, concatenated; :mod:`loaders.plan`), so it names the file and the
sample in it. A row drawn twice in one epoch (a synthetic set smaller than an epoch's draw of
synthetic rows) gets the same crop both times.

The crop is torchvision's ``RandomResizedCrop.get_params`` (the distribution FFCV's
``get_random_crop`` copies): up to :data:`CROP_ATTEMPTS` tries of an area share uniform in
``scale`` and a log-uniform aspect ratio in ``ratio``, sides rounded half to even, the first
that fits placed uniformly; else the centre crop of the whole image with its aspect clamped to
``ratio``. Draws ``4a .. 4a+3`` serve attempt ``a`` (area, log ratio, top, left); draw
:data:`FLIP_DRAW` the flip (p = 0.5). The FFCV decoder calls the same compiled
:func:`crop_window` inside its decode loop (:mod:`loaders.ffcv_decoder`); the DALI feed and the
torchvision workers call :func:`crop_params` on the Python side: the three backends cut the
same window from a sample (their resampling filters differ).
"""
from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

__all__ = ["CropSpec", "STREAMS", "CROP_ATTEMPTS", "FLIP_DRAW", "epoch_key", "mix64",
           "sample_key", "uniform", "crop_window", "flip_bit", "crop_params", "crop_windows",
           "sample_keys", "uniforms"]

M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
# numba types Python ints >= 2**63 as uint64 but smaller ones as int64, and uint64 op int64
# gives float64: every constant of the compiled code is an explicit np.uint64
_G, _K1, _K2 = np.uint64(_GOLDEN), np.uint64(_C1), np.uint64(_C2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE = np.uint64(1)
_TO_UNIT = 2.0 ** -53

STREAMS = {"crop": 1, "multicrop": 2}
"""Independent random streams of one seed: the loader's crop/flip and the trainer's multi-crop."""
CROP_ATTEMPTS = 10
"""Tries of RandomResizedCrop before the centre fallback (torchvision and FFCV: 10)."""
FLIP_DRAW = 4 * CROP_ATTEMPTS
"""The draw index of the flip bit (after the crop's 4 draws per attempt)."""


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """RandomResizedCrop and flip options (``LoaderConfig.crop_scale/crop_ratio/flip``)."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    @classmethod
    def of(cls, config) -> "CropSpec":
        return cls(tuple(config.crop_scale), tuple(config.crop_ratio), bool(config.flip))

    def args(self) -> tuple:
        """The float arguments of :func:`crop_window` after the key and the image size."""
        return (float(self.scale[0]), float(self.scale[1]), math.log(self.ratio[0]),
                math.log(self.ratio[1]), float(self.ratio[0]), float(self.ratio[1]))


# ----------------------------------------------------------------------------- Python side


def _mix_py(z: int) -> int:
    z = ((z ^ (z >> 30)) * _C1) & M64
    z = ((z ^ (z >> 27)) * _C2) & M64
    return z ^ (z >> 31)


def _h_py(x: int) -> int:
    return _mix_py((x + _GOLDEN) & M64)


def epoch_key(seed: int, epoch: int, stream: str = "crop") -> int:
    """The 64-bit key of one epoch of one stream (module doc); ``seed`` and ``epoch`` any ints
    (taken modulo 2**64)."""
    k = _h_py(int(seed) & M64)
    k = _h_py(k ^ STREAMS[stream])
    return _h_py(k ^ (int(epoch) & M64))


# ----------------------------------------------------------------------------- compiled side


@numba.njit(nogil=True)
def mix64(z):
    """SplitMix64's finaliser of a uint64."""
    z = (z ^ (z >> _S30)) * _K1
    z = (z ^ (z >> _S27)) * _K2
    return z ^ (z >> _S31)


@numba.njit(nogil=True)
def sample_key(ekey, row):
    """The key of loader row ``row`` (uint64) in the epoch of ``ekey`` (uint64)."""
    return mix64((ekey ^ mix64(row + _G)) + _G)


@numba.njit(nogil=True)
def uniform(key, n):
    """Draw ``n`` (uint64) of the sample with key ``key``: a float64 in [0, 1)."""
    return np.float64(mix64(key + (n + _ONE) * _G) >> _S11) * _TO_UNIT


@numba.njit(nogil=True)
def crop_window(key, height, width, s_lo, s_hi, lr_lo, lr_hi, r_lo, r_hi):
    """RandomResizedCrop's window ``(top, left, h, w)`` of a ``height`` x ``width`` image for
    the sample with key ``key`` (module doc; ``lr_*`` are the logs of the ratio bounds)."""
    area = np.float64(height) * np.float64(width)
    for a in range(CROP_ATTEMPTS):
        n = np.uint64(4 * a)
        target = area * (s_lo + (s_hi - s_lo) * uniform(key, n))
        aspect = math.exp(lr_lo + (lr_hi - lr_lo) * uniform(key, n + _ONE))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(uniform(key, n + np.uint64(2)) * (height - h + 1)), height - h)
            left = min(int(uniform(key, n + np.uint64(3)) * (width - w + 1)), width - w)
            return top, left, h, w
    in_ratio = np.float64(width) / np.float64(height)
    if in_ratio < r_lo:
        w = int(width)
        h = int(round(w / r_lo))
    elif in_ratio > r_hi:
        h = int(height)
        w = int(round(h * r_hi))
    else:
        w = int(width)
        h = int(height)
    return (int(height) - h) // 2, (int(width) - w) // 2, h, w


@numba.njit(nogil=True)
def flip_bit(key):
    """The sample's horizontal flip (p = 0.5)."""
    return uniform(key, np.uint64(FLIP_DRAW)) < 0.5


@numba.njit(nogil=True)
def _crop_windows(keys, heights, widths, s_lo, s_hi, lr_lo, lr_hi, r_lo, r_hi, flip):
    out = np.empty((len(keys), 5), np.int64)
    for k in range(len(keys)):
        top, left, h, w = crop_window(keys[k], heights[k], widths[k], s_lo, s_hi, lr_lo, lr_hi,
                                      r_lo, r_hi)
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = top, left, h, w
        out[k, 4] = 1 if (flip and flip_bit(keys[k])) else 0
    return out


@numba.njit(nogil=True)
def _sample_keys(ekeys, ids):
    out = np.empty(len(ids), np.uint64)
    for k in range(len(ids)):
        out[k] = sample_key(ekeys[k], ids[k])
    return out


@numba.njit(nogil=True)
def _uniforms(keys, first, count):
    out = np.empty((len(keys), count), np.float64)
    for k in range(len(keys)):
        for n in range(count):
            out[k, n] = uniform(keys[k], first + np.uint64(n))
    return out


def _u64(values) -> np.ndarray:
    """uint64 array of ``values`` (ints taken modulo 2**64, so negative ids are fine)."""
    a = np.asarray(values)
    if a.dtype != np.uint64:
        a = a.astype(np.int64).view(np.uint64) if a.dtype.kind in "iub" else a.astype(np.uint64)
    return np.ascontiguousarray(a.reshape(-1))


def sample_keys(ekeys, ids) -> np.ndarray:
    """:func:`sample_key` of each of ``ids`` under ``ekeys`` (one key, or one per id)."""
    ids = _u64(ids)
    ekeys = np.ascontiguousarray(np.broadcast_to(_u64(ekeys), ids.shape))
    return _sample_keys(ekeys, ids)


def crop_windows(keys, heights, widths, spec: CropSpec) -> np.ndarray:
    """``(n, 5)`` int64 ``[top, left, height, width, flip]`` of the samples with keys ``keys``
    (images ``heights`` x ``widths``); flip is 0 unless ``spec.flip``."""
    heights = np.ascontiguousarray(heights, dtype=np.int64).reshape(-1)
    widths = np.ascontiguousarray(widths, dtype=np.int64).reshape(-1)
    return _crop_windows(_u64(keys), heights, widths, *spec.args(), bool(spec.flip))


def crop_params(ekey: int, rows, heights, widths, spec: CropSpec) -> np.ndarray:
    """:func:`crop_windows` of loader rows ``rows`` in the epoch of ``ekey``
    (:func:`epoch_key`): what every backend's train pipeline cuts."""
    return crop_windows(sample_keys(ekey, rows), heights, widths, spec)


def uniforms(keys, count: int, first: int = 0) -> np.ndarray:
    """``(n, count)`` float64: draws ``first .. first+count-1`` of each key (:func:`uniform`)."""
    return _uniforms(_u64(keys), np.uint64(first), int(count))
