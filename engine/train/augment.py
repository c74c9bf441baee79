"""On-device augmentations of the recipes, applied to the loader's batch in the loop.

* :class:`BatchRandAugment` — RandAugment (N ops of magnitude M, torchvision's op table and
  op implementations) per image, vectorised: images that drew the same op and sign are
  transformed together in one batched call.
* :class:`DomainMixup` — timm's ``Mixup`` (mixup / cutmix, smoothed soft targets) applied to
  the real rows and the synthetic rows *separately*, so no image mixes the two domains and the
  DualBN split and the λ-weighting stay exact.
* :class:`MultiCrop` — DINO multi-crop (seed 002 §5: 1 global + 8 local crops). The loader
  yields each image whole as uint8 pixels at a base view large enough that the smallest global
  crop is not upsampled (:func:`multicrop_base_view`, set up by ``engine.train.data``); we cut
  the global crop (224 px, 40-100% of the area) and the local crops (96 px, 5-40%) from it on
  the device, with DINO's flips, colour jitter, grayscale and blur. Crops of real images stay
  before crops of synthetic ones, so each crop batch keeps the real-first split.

Randomness: multi-crop's crops, flips and colour draws are a pure function of (seed, epoch,
sample) — counter-based draws of :mod:`loaders.augment` (stream ``multicrop``, the loaders'
crops being stream ``crop``) keyed by each row's source file and ``sample_id``
(:func:`multicrop_keys`) — so they do not depend on the rank, the batch a sample lands in or
any generator's state. RandAugment uses torch's global generator and timm's Mixup numpy's;
checkpoints save and restore both, so resumed runs draw the same augmentations.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(x: torch.Tensor):
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return mean, std


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised float (or uint8) images -> uint8 pixels."""
    if x.dtype == torch.uint8:
        return x
    mean, std = _stats(x)
    return (x.float() * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)


def normalize(x: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 (or [0, 1] float) pixels -> ImageNet-normalised float."""
    mean, std = _stats(x)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return ((x - mean) / std).to(dtype)


class BatchRandAugment:
    """RandAugment over a batch (see the module doc); returns normalised float images."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_bins: int = 31):
        from torchvision.transforms import v2

        self.ra = v2.RandAugment(num_ops=num_ops, magnitude=magnitude,
                                 num_magnitude_bins=num_bins)
        self.ops = list(self.ra._AUGMENTATION_SPACE.items())
        self.num_ops, self.magnitude, self.num_bins = num_ops, magnitude, num_bins

    def plan(self, batch: int, height: int, width: int) -> list[list[tuple[str, float]]]:
        """Per op layer, per image: ``(op name, signed magnitude)`` (torch's global RNG)."""
        layers = []
        for _ in range(self.num_ops):
            idx = torch.randint(len(self.ops), (batch,)).tolist()
            flips = (torch.rand(batch) <= 0.5).tolist()
            row = []
            for i, flip in zip(idx, flips):
                name, (mags_fn, signed) = self.ops[i]
                mags = mags_fn(self.num_bins, height, width)
                m = float(mags[self.magnitude]) if mags is not None else 0.0
                row.append((name, -m if (signed and flip) else m))
            layers.append(row)
        return layers

    def apply_op(self, x: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
        """One torchvision RandAugment op on uint8 images (N, 3, H, W)."""
        return self.ra._apply_image_or_video_transform(x, name, magnitude,
                                                       interpolation=self.ra.interpolation,
                                                       fill=self.ra._fill)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = to_uint8(images).contiguous()
        n, _, h, w = x.shape
        for row in self.plan(n, h, w):
            groups: dict[tuple[str, float], list[int]] = {}
            for i, key in enumerate(row):
                groups.setdefault(key, []).append(i)
            out = x.clone()
            for (name, mag), rows in sorted(groups.items()):
                idx = torch.tensor(rows, device=x.device)
                out[idx] = self.apply_op(x[idx], name, mag)
            x = out
        return normalize(x)


class DomainMixup:
    """timm ``Mixup`` within each domain: ``(images, labels, num_real) -> (images, soft targets)``.

    timm mixes a batch with its reverse, which needs an even row count; a domain with an odd
    count leaves its last row unmixed (with the same smoothed one-hot target).
    """

    def __init__(self, num_classes: int, mixup_alpha: float, cutmix_alpha: float,
                 prob: float, switch_prob: float, label_smoothing: float):
        from timm.data import Mixup

        self.num_classes, self.smoothing = num_classes, label_smoothing
        self.mix = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob,
                         switch_prob=switch_prob, mode="batch", label_smoothing=label_smoothing,
                         num_classes=num_classes)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, num_real: int):
        from timm.data.mixup import mixup_target

        images = images.clone()
        targets = mixup_target(labels, self.num_classes, lam=1.0, smoothing=self.smoothing)
        for lo, hi in ((0, num_real), (num_real, len(labels))):
            even = hi - (hi - lo) % 2
            if even - lo >= 2:
                x, t = self.mix(images[lo:even], labels[lo:even])
                images[lo:even], targets[lo:even] = x, t
        return images, targets


BASE_VIEW_STEP = 4
"""The base view's side is rounded up to a multiple of this (356 px for 224 px at 40 %)."""
PHOTO_DRAWS = 7
"""Draws per crop for the colour pipeline: jitter on, brightness, contrast, saturation,
grayscale on, blur sigma, blur on (after the crop's draws, see :func:`keyed_draws`)."""


def multicrop_base_view(global_size: int, global_scale, at_least: int = 0) -> int:
    """Side of the square base view the loader should deliver for multi-crop: the smallest
    global crop (area share ``global_scale[0]``, side ``sqrt(share) * base``) is then at least
    ``global_size`` px, not upsampled (224 px at 40 % -> 354.2 -> 356)."""
    need = math.ceil(global_size / math.sqrt(global_scale[0]) - 1e-9)
    step = BASE_VIEW_STEP
    return max(int(at_least), -(-need // step) * step)


def multicrop_keys(seed: int, epoch: int, source, sample_id) -> np.ndarray:
    """Per-row uint64 keys for multi-crop: ``(seed, epoch, source file, sample_id)`` through
    :mod:`loaders.augment`'s hash (stream ``multicrop``)."""
    from loaders.augment import epoch_key, sample_keys

    ekey = epoch_key(seed, epoch, stream="multicrop")
    return sample_keys(sample_keys(ekey, source), sample_id)


def batch_keys(batch, seed: int, epoch: int, position: int, rank: int = 0) -> np.ndarray:
    """:func:`multicrop_keys` of a loader batch's rows, named by its ``source`` and
    ``sample_id`` (:class:`loaders.batch.Batch`); a batch without them is named by the rows'
    positions in this rank's epoch (``position``: the first row's), an exact function of
    (seed, epoch, rank, world size) for a loader whose batches are."""
    sid, src = getattr(batch, "sample_id", None), getattr(batch, "source", None)
    if sid is not None and src is not None:
        return multicrop_keys(seed, epoch, np.asarray(src.cpu()), np.asarray(sid.cpu()))
    n = len(batch[1])
    return multicrop_keys(seed, epoch, np.full(n, -1 - rank), position + np.arange(n))


def keyed_draws(keys, first: int, crops: int, height: int, width: int, scale):
    """Crops ``first .. first+crops-1`` of rows with keys ``keys`` (B,), each from its own key
    (``sample_key(row key, crop index)``): RandomResizedCrop windows of a ``height`` x
    ``width`` view (area share ``scale``, aspect 3/4-4/3: torchvision's distribution), flips
    and the colour draws. Crop-major (every row's first crop, then the next, ...): ``(boxes
    (crops*B, 4) as x1 y1 x2 y2, flip (crops*B,) bool, photo (crops*B, PHOTO_DRAWS))``."""
    from loaders.augment import FLIP_DRAW, CropSpec, crop_windows, sample_keys, uniforms

    keys = np.asarray(keys, dtype=np.uint64)
    index = np.repeat(np.arange(first, first + crops), len(keys))
    crop_keys = sample_keys(np.tile(keys, crops), index)
    n = len(crop_keys)
    win = crop_windows(crop_keys, np.full(n, height), np.full(n, width),
                       CropSpec(scale=tuple(scale), flip=True))  # top, left, h, w, flip
    boxes = np.stack([win[:, 1], win[:, 0], win[:, 1] + win[:, 3], win[:, 0] + win[:, 2]], 1)
    photo = uniforms(crop_keys, PHOTO_DRAWS, first=FLIP_DRAW + 1)
    return (torch.from_numpy(boxes.astype(np.float32)), torch.from_numpy(win[:, 4] == 1),
            torch.from_numpy(photo.astype(np.float32)))


def resized_crops(x: torch.Tensor, rows: torch.Tensor, boxes: torch.Tensor,
                  size: int) -> torch.Tensor:
    """Crop ``boxes`` ``(K, 4)`` (pixel coordinates) of images ``x[rows]`` and resize each to
    ``size`` x ``size`` (bilinear, one batched ``roi_align``): ``(K, 3, size, size)``."""
    from torchvision.ops import roi_align

    rois = torch.cat([rows.to(x)[:, None], boxes.to(x)], 1)  # (K, 5)
    return roi_align(x, rois, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Blur rows where ``apply`` with their own ``sigma`` (separable, grouped conv)."""
    n, c, h, w = x.shape
    radius = 6
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma.to(x)[:, None] ** 2))  # (N, 2r+1)
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(c, 0)  # (N*C, 2r+1)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :],
                 groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None],
                 groups=n * c)
    y = y.reshape(n, c, h, w)
    return torch.where(apply.to(x.device).view(n, 1, 1, 1), y, x)


def dino_photometric(x: torch.Tensor, blur_p: float, u: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """DINO's colour pipeline on [0, 1] images: jitter (brightness 0.4, contrast 0.4,
    saturation 0.2; DINO's hue 0.1 is left out) with p 0.8, grayscale p 0.2, blur p ``blur_p``
    (sigma 0.1-2). ``u``: (N, PHOTO_DRAWS) uniforms in [0, 1) (from :func:`keyed_draws`);
    None draws them from torch's global generator."""
    n = x.shape[0]
    dev = x.device
    if u is None:
        u = torch.rand(n, PHOTO_DRAWS)
    u = u.to(dev).view(n, PHOTO_DRAWS, 1, 1, 1)
    gray_w = torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)
    jitter = u[:, 0] < 0.8
    b = 0.6 + 0.8 * u[:, 1]
    c = 0.6 + 0.8 * u[:, 2]
    s = 0.8 + 0.4 * u[:, 3]
    y = (x * b).clamp(0, 1)
    mean = (y * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    y = (c * y + (1 - c) * mean).clamp(0, 1)
    g = (y * gray_w).sum(1, keepdim=True)
    y = (s * y + (1 - s) * g).clamp(0, 1)
    x = torch.where(jitter, y, x)
    gray = u[:, 4] < 0.2
    x = torch.where(gray, (x * gray_w).sum(1, keepdim=True).expand_as(x), x)
    sigma = 0.1 + 1.9 * u[:, 5].reshape(n)
    return _gaussian_blur(x, sigma, u[:, 6].reshape(n) < blur_p)


class MultiCrop:
    """DINO multi-crop on the device (see the module doc)."""

    def __init__(self, local_crops: int, global_size: int = 224, local_size: int = 96,
                 global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        self.local_crops = local_crops
        self.global_size, self.local_size = global_size, local_size
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)

    def _crops(self, x01: torch.Tensor, keys, rows: torch.Tensor, first: int, crops: int,
               size: int, scale, blur_p: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``first .. first+crops-1`` of images ``rows`` (crop-major): ``(images, rows)``."""
        _, _, h, w = x01.shape
        boxes, flip, photo = keyed_draws(keys[rows.numpy()], first, crops, h, w, scale)
        rows = rows.repeat(crops)
        out = resized_crops(x01, rows, boxes, size)
        out = torch.where(flip.to(x01.device).view(-1, 1, 1, 1), out.flip(-1), out)
        return dino_photometric(out, blur_p, photo), rows

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, num_real: int, keys):
        """-> ``[(global (B,3,G,G), labels, num_real), (local (L*B,3,S,S), labels, L*num_real)]``;
        local crops of real images come first. ``keys``: (B,) uint64 per-row keys
        (:func:`multicrop_keys`): crop ``c`` of a row (0 global, 1..L local) is a function of
        the row's key and ``c`` alone."""
        x01 = to_uint8(images).float() / 255
        n = x01.shape[0]
        keys = np.asarray(keys, dtype=np.uint64)
        if keys.shape != (n,):
            raise ValueError(f"MultiCrop: {keys.shape} keys for {n} images")
        rows = torch.arange(n)
        glob, _ = self._crops(x01, keys, rows, 0, 1, self.global_size, self.global_scale, 1.0)
        views = [(normalize(glob), labels, num_real)]
        if self.local_crops:
            # real rows' crops, then synthetic rows' crops (real-first for DualBN)
            parts = [self._crops(x01, keys, r, 1, self.local_crops, self.local_size,
                                 self.local_scale, 0.5)
                     for r in (rows[:num_real], rows[num_real:]) if len(r)]
            local = torch.cat([p[0] for p in parts])
            order = torch.cat([p[1] for p in parts])
            views.append((normalize(local), labels[order.to(labels.device)],
                          num_real * self.local_crops))
        return views
