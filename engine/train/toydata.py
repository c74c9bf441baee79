"""A small labelled image set the product draws itself: the demo's stand-in for real photos.

No photographs can be downloaded where the demo runs, so the demo's "real" domain is this:
procedurally drawn fish — an ellipse body, a tail, a fin and an eye on a water-coloured
gradient with bubbles and noise. Each class has its own body colour, body shape and pattern
(stripes or spots); pose, size, position, facing, background and noise are random per image.
Images depend only on (class index, seed, image index). They are **not** photographs: a
classifier's accuracy on them says nothing about the method of the papers.

``write_image_folder(root, wnids, per_class, seed)`` writes an ImageNet-style folder
(``root/<wnid>/<wnid>_<i>.jpg``) that ``synthclone pack`` turns into a .beton.
"""
from __future__ import annotations

import colorsys
import os

import numpy as np
from PIL import Image, ImageDraw

_PATTERNS = ("plain", "stripes", "spots")


def class_style(k: int) -> dict:
    """The fixed look of class ``k``: body hue, shape and pattern."""
    return {"hue": (0.08 + 0.61803398875 * k) % 1.0,
            "aspect": (2.6, 1.6, 3.4, 2.0)[k % 4],
            "pattern": _PATTERNS[(k // 2 + k) % 3],
            "tail": ("fork", "fan")[k % 2]}


def draw_fish(k: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One image of class ``k`` (RGB, ``size`` x ``size``)."""
    s = 4 * size  # draw large, then downsample (anti-aliasing)
    style = class_style(k)
    # background: a random water gradient
    top = np.array(colorsys.hsv_to_rgb(rng.uniform(0.5, 0.62), rng.uniform(0.3, 0.7),
                                       rng.uniform(0.55, 0.95)))
    bottom = top * rng.uniform(0.35, 0.7)
    t = np.linspace(0, 1, s)[:, None, None]
    bg = ((1 - t) * top + t * bottom) * 255 * np.ones((s, s, 3))
    img = Image.fromarray(bg.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 7)):  # bubbles
        r = rng.uniform(0.01, 0.03) * s
        cx, cy = rng.uniform(0, s, 2)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(230, 240, 255), width=max(1, s // 128))
    # the fish
    length = rng.uniform(0.45, 0.8) * s
    height = length / style["aspect"] * rng.uniform(0.85, 1.15)
    cx, cy = rng.uniform(0.35, 0.65) * s, rng.uniform(0.3, 0.7) * s
    hue = (style["hue"] + rng.uniform(-0.03, 0.03)) % 1.0
    body = tuple(int(255 * v) for v in colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.95),
                                                           rng.uniform(0.6, 0.95)))
    dark = tuple(int(v * 0.45) for v in body)
    x0, x1 = cx - length / 2, cx + length / 2
    y0, y1 = cy - height / 2, cy + height / 2
    tail_x = x0 - 0.3 * length
    if style["tail"] == "fork":
        d.polygon([(x0 + 0.1 * length, cy), (tail_x, y0 - 0.1 * height), (x0, cy),
                   (tail_x, y1 + 0.1 * height)], fill=dark)
    else:
        d.polygon([(x0 + 0.1 * length, cy), (tail_x, y0), (tail_x, y1)], fill=dark)
    d.polygon([(cx - 0.1 * length, y0 + 0.1 * height), (cx + 0.05 * length, y0 - 0.35 * height),
               (cx + 0.2 * length, y0 + 0.1 * height)], fill=dark)  # dorsal fin
    d.ellipse([x0, y0, x1, y1], fill=body)
    if style["pattern"] == "stripes":
        for j in range(1, 5):
            x = x0 + j * length / 5.5
            d.line([(x, y0 + 0.08 * height), (x, y1 - 0.08 * height)], fill=dark,
                   width=max(2, int(0.05 * length)))
    elif style["pattern"] == "spots":
        for _ in range(8):
            u, v = rng.uniform(-0.35, 0.3), rng.uniform(-0.3, 0.3)
            r = 0.05 * height
            px, py = cx + u * length, cy + v * height
            d.ellipse([px - r, py - r, px + r, py + r], fill=dark)
    er = 0.06 * height
    ex, ey = x1 - 0.15 * length, cy - 0.15 * height
    d.ellipse([ex - er, ey - er, ex + er, ey + er], fill=(20, 20, 20))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(img).astype(np.float32) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_image_folder(root: str, wnids: list[str], per_class: int, seed: int,
                       size: int = 64) -> int:
    """Write ``per_class`` images of each class into ``root/<wnid>/``; returns the count.
    Class ``k`` is the ``k``-th wnid in the given order."""
    count = 0
    for k, wnid in enumerate(wnids):
        folder = os.path.join(root, wnid)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, k, i])
            draw_fish(k, rng, size).save(os.path.join(folder, f"{wnid}_{i:04d}.jpg"),
                                         quality=92)
            count += 1
    return count
