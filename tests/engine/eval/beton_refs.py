"""Independent references for .beton evaluation: stored images decoded without the loaders,
the eval center crop written out with numpy/OpenCV."""
from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image

from loaders.beton import BetonReader

MEAN = np.array((0.485, 0.456, 0.406)) * 255
STD = np.array((0.229, 0.224, 0.225)) * 255


def decoded(path, items, decoder="pil"):
    """Stored images as uint8 HWC: decoded by PIL from the stored bytes (independent of FFCV),
    or by ``BetonReader.read`` (FFCV's own libjpeg-turbo call)."""
    out = []
    with BetonReader(path) as r:
        for i in items:
            if decoder == "pil":
                data, _ = r.encoded(i, "image")
                out.append(np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB")))
            else:
                out.append(r.read(i)["image"])
    return out


def center_crop_reference(images, crop: int, resize: int) -> torch.Tensor:
    """(N, 3, crop, crop) normalised: square of side int(crop/resize * short side) at the
    center, area-resized to crop x crop."""
    xs = []
    for a in images:
        h, w = a.shape[:2]
        c = int(crop / resize * min(h, w))
        y, x = (h - c) // 2, (w - c) // 2
        a = cv2.resize(a[y:y + c, x:x + c], (crop, crop), interpolation=cv2.INTER_AREA)
        xs.append(((a - MEAN) / STD).astype(np.float32).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(xs))
