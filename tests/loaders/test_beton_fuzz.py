"""Fuzz the reader with truncated and bit-flipped files: only clean BetonFormatErrors."""
import numpy as np
import pytest
from ffcv.fields import BytesField, IntField, JSONField, NDArrayField, RGBImageField

from loaders.beton import BetonFormatError, BetonReader, BetonWriter
from tests.loaders.beton_data import PAGE, make_image

N = 6


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("fuzz") / "good.beton"
    fields = {"image": RGBImageField(write_mode="jpg"), "raw": RGBImageField(write_mode="raw"),
              "label": IntField(), "prompt": BytesField(), "meta": JSONField(),
              "arr": NDArrayField(np.dtype("int32"), (4,))}
    with BetonWriter(p, N, fields, num_workers=0, page_size=PAGE) as w:
        for i in range(N):
            w.append(i, {"image": make_image(i, 24, 32), "raw": make_image(i, 8, 8), "label": i,
                         "prompt": b"p" * (i + 1), "meta": {"i": i},
                         "arr": np.arange(4, dtype=np.int32) + i})
    return p.read_bytes()


def read_everything(path):
    """Everything a user can do with a reader; returns normally or raises."""
    with BetonReader(path) as r:
        r.verify(decode=True)
        for i in range(len(r)):
            r.read(i)
            r.encoded(i, "image")


def outcome(tmp_path, blob, name):
    p = tmp_path / name
    p.write_bytes(blob)
    try:
        read_everything(p)
    except BetonFormatError as exc:
        assert str(p) in str(exc)  # the message names the file
        return "error"
    return "ok"


def test_intact_file_reads(tmp_path, good_file):
    assert outcome(tmp_path, good_file, "good.beton") == "ok"


def test_truncations_raise_cleanly(tmp_path, good_file):
    size = len(good_file)
    data_start = PAGE  # the metadata of 6 samples fits in the first page
    cuts = sorted({0, 1, 23, 24, 100, 24 + 1041, 24 + 6 * 1041 + 10, data_start - 1, data_start,
                   data_start + 500, size - 24 * N * 3 - 1, size - 24, size - 1}
                  | set(np.random.default_rng(0).integers(0, size, 40).tolist()))
    results = {n: outcome(tmp_path, good_file[:n], f"cut{n}.beton") for n in cuts if n < size}
    # the allocation table sits at EOF: any cut removes part of it
    assert set(results.values()) == {"error"}, results


def test_bit_flips_raise_cleanly_or_read(tmp_path, good_file):
    rng = np.random.default_rng(1)
    size = len(good_file)
    body = [o for o in range(24 + 6 * 1041 + 200)] + list(range(PAGE, PAGE + 3000)) + \
        list(range(size - 24 * 20, size))  # header/descriptors/metadata, data, allocation table
    offsets = rng.choice(body, 300, replace=False).tolist() + list(range(24))
    errors = 0
    for k, off in enumerate(offsets):
        blob = bytearray(good_file)
        blob[off] ^= 1 << int(rng.integers(0, 8))
        errors += outcome(tmp_path, bytes(blob), f"flip{k % 7}.beton") == "error"
    assert errors > 0.1 * len(offsets)  # flips that change structure are detected


def test_garbage_and_partial_files(tmp_path):
    rng = np.random.default_rng(2)
    for n in (10, 24, 5000):
        junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert outcome(tmp_path, junk, "junk") == "error"
    w = BetonWriter(tmp_path / "p.beton", 2, {"label": IntField()}, num_workers=0, page_size=PAGE)
    w.append(0, {"label": 1})
    w.abort()
    with pytest.raises(BetonFormatError, match="unfinished partial"):
        BetonReader(tmp_path / "p.beton.partial")
