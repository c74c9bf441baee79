"""Plain references the backends are compared against: crops and normalisation written out
with numpy/OpenCV on the pixels ``BetonReader.read`` decodes (FFCV's own libjpeg-turbo call)."""
from __future__ import annotations

import cv2
import numpy as np

from loaders.config import IMAGENET_MEAN, IMAGENET_STD


def center_crop(img: np.ndarray, size: int, ratio: float) -> np.ndarray:
    """FFCV's eval decode: square of side int(ratio * short side) at ((h-c)//2, (w-c)//2),
    resized to size x size with INTER_AREA."""
    h, w = img.shape[:2]
    c = int(ratio * min(h, w))
    i, j = (h - c) // 2, (w - c) // 2
    return cv2.resize(img[i:i + c, j:j + c], (size, size), interpolation=cv2.INTER_AREA)


def normalize(img_hwc: np.ndarray) -> np.ndarray:
    """uint8 HWC -> float32 CHW normalised with the ImageNet mean/std."""
    x = (img_hwc.astype(np.float64) - np.array(IMAGENET_MEAN) * 255) / (
        np.array(IMAGENET_STD) * 255)
    return x.astype(np.float32).transpose(2, 0, 1)


def expected_rows(sources, rows):
    """(label, sample_id) of loader rows over ``sources`` (their concatenated row space)."""
    labels = np.concatenate([s.labels_all for s in sources])
    sids = np.concatenate([s.sample_ids_all for s in sources])
    return labels[rows], sids[rows]


# --- keyed augmentation (loaders.augment) written out in plain Python integers and floats ---
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix_mix(z: int) -> int:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014; Vigna's splitmix64.c)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def splitmix_next(state: int) -> tuple[int, int]:
    """One step of the SplitMix64 generator: (new state, output)."""
    state = (state + GOLDEN) & M64
    return state, splitmix_mix(state)


def h(x: int) -> int:
    return splitmix_next(x & M64)[1]


def epoch_key_ref(seed: int, epoch: int, stream: int = 1) -> int:
    return h(h(h(seed) ^ stream) ^ epoch)


def sample_key_ref(ekey: int, row: int) -> int:
    return h(ekey ^ h(row))


def uniform_ref(key: int, n: int) -> float:
    """Draw n of a key: output n+1 of SplitMix64 seeded with the key, top 53 bits / 2**53."""
    return (splitmix_mix((key + (n + 1) * GOLDEN) & M64) >> 11) / 2.0 ** 53


def crop_window_ref(key: int, height: int, width: int, scale, ratio):
    """torchvision's RandomResizedCrop.get_params with the key's draws (4 per attempt)."""
    import math

    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for a in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform_ref(key, 4 * a))
        aspect = math.exp(log_ratio[0]
                          + (log_ratio[1] - log_ratio[0]) * uniform_ref(key, 4 * a + 1))
        w = int(round(math.sqrt(target * aspect)))
        h_ = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h_ <= height:
            top = int(uniform_ref(key, 4 * a + 2) * (height - h_ + 1))
            left = int(uniform_ref(key, 4 * a + 3) * (width - w + 1))
            return top, left, h_, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h_ = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h_, w = height, int(round(height * max(ratio)))
    else:
        w, h_ = width, height
    return (height - h_) // 2, (width - w) // 2, h_, w


def keyed_crop(img: np.ndarray, params, size: int) -> np.ndarray:
    """FFCV's keyed train decode of ``img`` (HWC uint8) with ``params`` (top, left, h, w, flip):
    the window resized with INTER_AREA, then mirrored when flip."""
    top, left, hh, ww, flip = (int(v) for v in params)
    out = cv2.resize(img[top:top + hh, left:left + ww], (size, size), interpolation=cv2.INTER_AREA)
    return out[:, ::-1] if flip else out


def keyed_params_ref(seed: int, epoch: int, row: int, height: int, width: int,
                     scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
    """(top, left, h, w, flip) of loader row ``row`` in ``epoch`` of ``seed``, all in plain
    Python (what :func:`loaders.augment.crop_params` must give)."""
    key = sample_key_ref(epoch_key_ref(seed & M64, epoch), row)
    return (*crop_window_ref(key, height, width, scale, ratio),
            int(flip and uniform_ref(key, 40) < 0.5))
