"""Real images for image-conditioned generation (seed 004 §2.4), from a folder or a .beton.

A row's ``init_image`` is a path relative to the folder (or absolute), or, for a .beton source,
the sample index as a string.  Images come back as uint8 (H, W, 3).
"""
from __future__ import annotations

from engine.errors import ConfigError

import os


class RealImages:
    def __init__(self, source: str | None):
        if source is None:
            raise ConfigError("the plan has image-conditioned rows (init_image): pass --real "
                             "FOLDER_OR_BETON with the real images")
        if not os.path.exists(source):
            raise ConfigError(f"--real {source}: no such folder or .beton")
        self.source = source
        self._reader = None
        if os.path.isfile(source):
            from loaders.beton.reader import BetonReader

            self._reader = BetonReader(source)

    def __call__(self, key: str):
        import numpy as np

        if self._reader is not None:
            try:
                i = int(key)
            except ValueError:
                raise ConfigError(f"init_image {key!r}: with a .beton source it must be a sample "
                                 "index") from None
            return np.asarray(self._reader.read(i)["image"])
        from PIL import Image

        path = key if os.path.isabs(key) else os.path.join(self.source, key)
        if not os.path.exists(path):
            raise ConfigError(f"init_image {key!r} not found under {self.source}")
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))


def load_init_images(image_loader, rows, h: int, w: int, device="cpu"):
    """The rows' init images as float (B, 3, h, w) in [-1, 1] (bilinear, antialiased resize)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    if image_loader is None:
        raise ConfigError("rows with init_image need an image source (--real)")
    out = []
    for r in rows:
        im = torch.from_numpy(np.array(image_loader(r.init_image), dtype=np.uint8))  # (H, W, 3)
        x = im.permute(2, 0, 1)[None].float() / 127.5 - 1.0                        # (1, 3, H, W)
        out.append(F.interpolate(x, size=(h, w), mode="bilinear", antialias=True,
                                 align_corners=False))
    return torch.cat(out).to(device)                                                # (B, 3, h, w)
