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
