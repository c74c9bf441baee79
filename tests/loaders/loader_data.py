"""Tiny labelled .beton files and image folders for the loader tests (written by the real
writer, read by the real backends)."""
from __future__ import annotations

import io
import os

import numpy as np
from ffcv.fields import BytesField, IntField, RGBImageField
from PIL import Image

PAGE = 1 << 21


def image(i: int, h: int | None = None, w: int | None = None) -> np.ndarray:
    """A smooth RGB image unique to ``i``, of a sample-specific size (40-75 px), landscape for
    even ``i`` and portrait for odd ``i``, never nearly square (sides differ by >= 8 px, so a
    random crop of area 1 and aspect 1 always falls back to the centred square)."""
    short = 40 + (i * 7) % 23
    long = short + 8 + (i * 5) % 13
    h = h or (short if i % 2 == 0 else long)
    w = w or (long if i % 2 == 0 else short)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4 + 9 * i) % 256, (y * 5 + 5 * i) % 256,
                    ((x + y) * 2 + 3 * i) % 256], -1)
    return img.astype(np.uint8)


def write_beton(path, n: int, num_classes: int = 4, label_base: int = 0, synthetic=False,
                write_mode: str = "jpg", sample_id_base: int = 0, labels=None) -> str:
    """``n`` samples, label ``label_base + i % num_classes`` (or ``labels[i]``), sample_id
    ``sample_id_base + i``; ``synthetic`` adds the generated-file fields recipe and prompt."""
    from loaders.beton import BetonWriter

    fields = {"image": RGBImageField(write_mode=write_mode, jpeg_quality=95),
              "label": IntField(), "sample_id": IntField()}
    if synthetic:
        fields.update(recipe=IntField(), prompt=BytesField())
    with BetonWriter(str(path), n, fields, num_workers=1, page_size=PAGE, durable=False) as w:
        for i in range(n):
            lab = int(labels[i]) if labels is not None else label_base + i % num_classes
            v = {"image": image(i + sample_id_base), "label": lab,
                 "sample_id": sample_id_base + i}
            if synthetic:
                v.update(recipe=i % 3, prompt=np.frombuffer(f"a photo of {lab}".encode(),
                                                            np.uint8))
            w.append(i, v)
    return str(path)


def wreck_jpeg(path: str, row: int) -> str:
    """Overwrite 64 bytes of row ``row``'s JPEG after its SOI marker (the headers): the file's
    checksums no longer hold and no decoder can read the image."""
    from loaders.beton import BetonReader

    with BetonReader(path) as r:
        k = list(r.fields).index("image")
        ptr = int(r.metadata[row][f"f{k}"]["data_ptr"])
    with open(path, "r+b") as f:
        f.seek(ptr + 2)
        f.write(b"\x00" * 64)
    return path


def write_folder(root, n: int, classes=("n01440764", "n01443537")) -> str:
    """An ImageFolder tree ``root/<wnid>/<i>.jpg`` with the same images as ``write_beton``."""
    for i in range(n):
        d = os.path.join(root, classes[i % len(classes)])
        os.makedirs(d, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(image(i)).save(buf, format="JPEG", quality=95)
        with open(os.path.join(d, f"{i:04d}.jpg"), "wb") as f:
            f.write(buf.getvalue())
    return str(root)
