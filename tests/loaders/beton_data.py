"""Deterministic samples, field sets and FFCV helpers shared by the .beton tests."""
from __future__ import annotations

import numpy as np
from ffcv.fields import (BytesField, FloatField, IntField, JSONField, NDArrayField,
                         RGBImageField)

PAGE = 1 << 21  # FFCV's smallest page: small files, several pages with the big array field
BIG_SHAPE = (256, 1024)  # 256 KiB per sample: 20 samples span 3 pages


def make_image(i: int, h: int = 40, w: int = 48) -> np.ndarray:
    """A smooth, sample-specific RGB pattern with some texture (JPEG-friendly, not constant)."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(1000 + i)
    img = np.stack([(x * 5 + 7 * i) % 256, (y * 6 + 3 * i) % 256, ((x + y) * 3 + i) % 256], -1)
    img = img + rng.integers(0, 24, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def all_fields() -> dict:
    """Every FFCV field type and image write mode (constant image size for the simple decoder)."""
    return {
        "jpg": RGBImageField(write_mode="jpg", jpeg_quality=90),
        "raw": RGBImageField(write_mode="raw"),
        "smart": RGBImageField(write_mode="smart", smart_threshold=100),
        "prop": RGBImageField(write_mode="proportion", compress_probability=0.5),
        "resized": RGBImageField(write_mode="jpg", max_resolution=32, jpeg_quality=75),
        "label": IntField(),
        "score": FloatField(),
        "blob": BytesField(),
        "meta": JSONField(),
        "arr": NDArrayField(np.dtype("float32"), (3, 5)),
        "big": NDArrayField(np.dtype("uint8"), BIG_SHAPE),
    }


def sample_values(i: int) -> dict:
    img = make_image(i)
    rng = np.random.default_rng(i)
    return {"jpg": img, "raw": img, "smart": img, "prop": img, "resized": img,
            "label": (i * 37) % 1000 - 3, "score": i / 7.0 - 1.5,
            "blob": np.frombuffer(f"prompt number {i} ".encode() * (1 + i % 3), np.uint8),
            "meta": {"i": i, "name": f"s{i}", "tags": list(range(i % 4))},
            "arr": rng.standard_normal((3, 5)).astype(np.float32),
            "big": rng.integers(0, 256, BIG_SHAPE, dtype=np.uint8)}


class IndexedSamples:
    """An indexable dataset for FFCV's DatasetWriter (tuples in field order)."""

    def __init__(self, n, fields, values=sample_values):
        self.n, self.names, self.values = n, list(fields), values

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        v = self.values(int(i))  # FFCV passes numpy ints
        return tuple(v[k] for k in self.names)


def ffcv_write(path, n, fields, values=sample_values, workers=2):
    from ffcv.writer import DatasetWriter

    DatasetWriter(str(path), fields, page_size=PAGE, num_workers=workers).from_indexed_dataset(
        IndexedSamples(n, fields, values))


def pipelines_for(fields: dict) -> dict:
    from ffcv.fields.bytes import BytesDecoder
    from ffcv.fields.decoders import FloatDecoder, IntDecoder, SimpleRGBImageDecoder
    from ffcv.fields.ndarray import NDArrayDecoder

    out = {}
    for name, f in fields.items():
        if isinstance(f, RGBImageField):
            out[name] = [SimpleRGBImageDecoder()]
        elif isinstance(f, IntField):
            out[name] = [IntDecoder()]
        elif isinstance(f, FloatField):
            out[name] = [FloatDecoder()]
        elif isinstance(f, BytesField):
            out[name] = [BytesDecoder()]
        else:
            out[name] = [NDArrayDecoder()]
    return out


def load_all(path, fields, order="sequential", seed=0, os_cache=False, batch_size=6):
    """Every batch the real ``ffcv.loader.Loader`` yields: list of {name: np.ndarray}."""
    from ffcv.loader import Loader, OrderOption

    loader = Loader(str(path), batch_size=batch_size, num_workers=1, os_cache=os_cache,
                    order=OrderOption.RANDOM if order == "random" else OrderOption.SEQUENTIAL,
                    seed=seed, drop_last=False, pipelines=pipelines_for(fields))
    names = list(fields)
    return [{n: np.array(x) for n, x in zip(names, batch)} for batch in loader]


def stored_bytes(value) -> np.ndarray:
    """What a Bytes/JSON field stores for a value (FFCV's JSON adds a NUL separator)."""
    import json

    if isinstance(value, dict):
        return np.frombuffer((json.dumps(value) + "\0").encode(), np.uint8)
    return np.asarray(value, dtype=np.uint8)
