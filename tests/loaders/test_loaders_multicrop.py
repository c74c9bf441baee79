"""The base view that DINO multi-crop (seed 002 §5, implementation details: 1 global + 8
local crops) is cut from on the device: ``LoaderConfig(dtype="uint8", crop_scale=(1, 1),
image_size=BASE)`` delivers each whole image (its aspect ratio clamped to ``crop_ratio``, as
RandomResizedCrop's fallback does) resized to BASE x BASE as uint8 pixels, decoded once per
image; the trainer cuts the global and local crops from it (``engine.train.augment.MultiCrop``).
Pinned here for FFCV and torchvision: within resampling and rounding
tolerance of the whole image, and closer to it than to the centre square."""
import cv2
import numpy as np
import pytest
import torch

from loaders.beton import BetonReader
from loaders.config import LoaderConfig
from loaders.mixing import make_loader
from tests.loaders.loader_data import write_beton

BASE = 64  # larger than the stored images (40-75 px): the view is upsampled, not cropped


def whole_image(img: np.ndarray, size: int, ratio=(3 / 4, 4 / 3)) -> np.ndarray:
    """The whole image, its aspect clamped to ``ratio`` around the centre (RandomResizedCrop's
    fallback when no crop of area 1 fits), resized with OpenCV's area filter."""
    h, w = img.shape[:2]
    if w / h < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif w / h > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    i, j = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[i:i + ch, j:j + cw], (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["ffcv", "torchvision"])
def test_the_base_view_is_the_whole_image_as_uint8(tmp_path, backend):
    path = write_beton(tmp_path / "base.beton", 16, num_classes=2)
    with BetonReader(path) as r:
        images = [r.read(i)["image"] for i in range(len(r))]
    cfg = LoaderConfig(backend=backend, batch_size=8, image_size=BASE, workers=1, dtype="uint8",
                       crop_scale=(1.0, 1.0), flip=False)
    loader = make_loader(path, cfg)
    seen = set()
    for batch in loader:
        assert batch.images.dtype == torch.uint8 and batch.images.shape[1:] == (3, BASE, BASE)
        for k, sid in enumerate(batch.sample_id.tolist()):
            got = batch.images[k].permute(1, 2, 0).numpy().astype(np.float64)
            whole = np.abs(got - whole_image(images[sid], BASE)).mean()
            # a random crop of area 1 may be accepted 1 px short of the image (rounding)
            assert whole <= 4, (sid, whole)
            square = np.abs(got - whole_image(images[sid], BASE, ratio=(1, 1))).mean()
            assert whole < square, (sid, whole, square)
            seen.add(sid)
    loader.close()
    assert seen == set(range(16))
