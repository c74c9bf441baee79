"""BetonWriter contract: bad input, atomic finish, holes and shrink, resume, disk full."""
import errno
import os

import numpy as np
import pytest
from ffcv.fields import BytesField, IntField, NDArrayField, RGBImageField

import loaders.beton.pages as pages_mod
from loaders.beton import (BetonFormatError, BetonReader, BetonWriteError, BetonWriter,
                           SampleError)
from tests.loaders.beton_data import PAGE, make_image


def fields():
    return {"image": RGBImageField(write_mode="jpg", max_resolution=32, jpeg_quality=90),
            "label": IntField(), "sample_id": IntField(), "prompt": BytesField()}


def values(i):
    return {"image": make_image(i), "label": i % 5, "sample_id": 100 + i,
            "prompt": f"a photo of {i}".encode()}


def reference(tmp_path, n):
    """A file written in one go, in order: what every interrupted variant must equal."""
    p = tmp_path / "reference.beton"
    with BetonWriter(p, n, fields(), num_workers=0, page_size=PAGE) as w:
        for i in range(n):
            w.append(i, values(i))
    return p


def assert_same_content(a, b):
    with BetonReader(a) as ra, BetonReader(b) as rb:
        assert len(ra) == len(rb)
        for i in range(len(ra)):
            x, y = ra.read(i), rb.read(i)
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]),
                                              err_msg=f"{k}@{i}")


def test_bad_input_is_named(tmp_path):
    w = BetonWriter(tmp_path / "x.beton", 4, fields(), num_workers=1, page_size=PAGE)
    with pytest.raises(IndexError, match="sample_id 4 out of range"):
        w.append(4, values(0))
    with pytest.raises(IndexError, match="out of range"):
        w.append(-1, values(0))
    w.append(1, values(1))
    with pytest.raises(ValueError, match="sample_id 1 was already written"):
        w.append(1, values(1))
    bad = dict(values(2), image=make_image(2).astype(np.float32))
    with pytest.raises(SampleError, match=r"sample 2, field 'image'.*uint8"):
        w.append(2, bad)
    with pytest.raises(SampleError, match=r"sample 2, field 'image'.*shape \(40, 48\)"):
        w.append(2, dict(values(2), image=make_image(2)[..., 0]))
    with pytest.raises(SampleError, match=r"sample 3: missing fields \['prompt'\]"):
        w.append(3, {k: v for k, v in values(3).items() if k != "prompt"})
    w.append(2, values(2))  # rejected samples can be appended again, corrected
    with pytest.raises(ValueError, match=r"2 of 4 samples were never appended \(first: \[0, 3\]"):
        w.close()
    assert not os.path.exists(tmp_path / "x.beton")  # no file with holes
    w.append(0, values(0))
    w.append(3, values(3))
    w.close()
    assert BetonReader(tmp_path / "x.beton").read(2)["sample_id"] == 102


def test_array_shape_and_oversized_sample(tmp_path):
    f = {"a": NDArrayField(np.dtype("int16"), (2, 3)), "image": RGBImageField(write_mode="raw")}
    w = BetonWriter(tmp_path / "a.beton", 3, f, num_workers=2, page_size=PAGE)
    with pytest.raises(SampleError,
                       match=r"sample 0, field 'a'.*int16 \(2, 3\), got int16 \(3, 2\)"):
        w.append(0, {"a": np.zeros((3, 2), np.int16), "image": make_image(0)})
    huge = np.zeros((1024, 1024, 3), np.uint8)  # 3 MiB raw > 2 MiB page
    w.append(0, {"a": np.ones((2, 3), np.int16), "image": huge})
    with pytest.raises(SampleError, match=r"sample 0: its data \(3145740 bytes\) exceeds the page"):
        w.flush()
    assert w.done_ids == set()
    for i in range(3):  # the writer is still usable; the failed id can be written again
        w.append(i, {"a": np.full((2, 3), i, np.int16), "image": make_image(i)})
    w.close()
    with BetonReader(tmp_path / "a.beton") as r:
        np.testing.assert_array_equal(r.read(2)["a"], np.full((2, 3), 2, np.int16))


def test_atomic_finish_and_existing_outputs(tmp_path):
    p = tmp_path / "out.beton"
    w = BetonWriter(p, 3, fields(), num_workers=2, page_size=PAGE)
    for i in (2, 0, 1):
        w.append(i, values(i))
    w.flush()
    assert not p.exists() and BetonWriter.partial_exists(p)
    with pytest.raises(BetonFormatError, match="unfinished partial"):
        BetonReader(str(p) + ".partial")
    w.close()
    assert p.exists() and not BetonWriter.partial_exists(p)
    assert not os.path.exists(str(p) + ".journal")
    assert_same_content(p, reference(tmp_path, 3))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        BetonWriter(p, 3, fields())
    with pytest.raises(FileNotFoundError, match="already finished"):
        BetonWriter.resume(p)
    BetonWriter(p, 3, fields(), overwrite=True, page_size=PAGE).abort()
    assert BetonWriter.partial_exists(p)
    os.remove(p)
    with pytest.raises(FileExistsError, match=r"resumable partial.*BetonWriter.resume"):
        BetonWriter(p, 3, fields(), page_size=PAGE)


def test_context_manager_aborts_and_resume_continues(tmp_path):
    p, n = tmp_path / "ctx.beton", 9
    with pytest.raises(RuntimeError, match="producer died"):
        with BetonWriter(p, n, fields(), num_workers=2, page_size=PAGE) as w:
            for i in range(0, n, 2):
                w.append(i, values(i))
            raise RuntimeError("producer died")
    assert not p.exists() and BetonWriter.partial_exists(p)
    w = BetonWriter.resume(p, num_workers=2)
    assert w.done_ids == {0, 2, 4, 6, 8}  # abort() committed everything appended
    with pytest.raises(ValueError, match="already written"):
        w.append(4, values(4))
    for i in range(1, n, 2):
        w.append(i, values(i))
    w.close()
    assert_same_content(p, reference(tmp_path, n))


def test_shrink_writes_appended_samples_densely(tmp_path):
    p = tmp_path / "shrunk.beton"
    keep = [7, 1, 4]
    w = BetonWriter(p, 10, fields(), num_workers=2, page_size=PAGE)
    for i in keep:
        w.append(i, values(i))
    w.close(shrink=True)
    with BetonReader(p) as r:
        assert len(r) == 3
        assert [r.read(j)["sample_id"] for j in range(3)] == [101, 104, 107]
        with BetonReader(reference(tmp_path, 8)) as ref:
            np.testing.assert_array_equal(r.read(2)["image"], ref.read(7)["image"])
        r.verify(decode=True)


def test_disk_full_leaves_resumable_partial(tmp_path, monkeypatch):
    p, n = tmp_path / "full.beton", 40
    big = {"image": RGBImageField(write_mode="raw"), "label": IntField()}
    calls = {"n": 0}
    real = pages_mod._pwrite

    def pwrite(fd, data, offset):
        calls["n"] += 1
        if calls["n"] > 6:  # header, then a few page writes succeed
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, offset)

    monkeypatch.setattr(pages_mod, "_pwrite", pwrite)
    img = lambda i: np.full((300, 400, 3), i, np.uint8)  # 360 KB: 5 per 2 MiB page  # noqa: E731
    w = BetonWriter(p, n, big, num_workers=2, page_size=PAGE)
    with pytest.raises(BetonWriteError, match="No space left"):
        for i in range(n):
            w.append(i, {"image": img(i), "label": i})
            if i % 3 == 2:
                w.flush()
        w.close()
    with pytest.raises(BetonWriteError):
        w.close()
    w.abort()
    assert not p.exists() and BetonWriter.partial_exists(p)
    monkeypatch.setattr(pages_mod, "_pwrite", real)
    w = BetonWriter.resume(p, num_workers=2)
    done = w.done_ids
    assert 0 < len(done) < n
    for i in sorted(set(range(n)) - done):
        w.append(i, {"image": img(i), "label": i})
    w.close()
    with BetonReader(p) as r:
        for i in range(n):
            s = r.read(i)
            assert s["label"] == i and (s["image"] == i).all() and s["image"].shape == (300, 400, 3)


def test_resume_a_version_1_journal(tmp_path):
    """Journals of the previous format carry no data checksums: resume recomputes them."""
    import struct
    import zlib

    from loaders.beton import journal as jmod

    p, n = tmp_path / "v1.beton", 8
    w = BetonWriter(p, n, fields(), num_workers=1, page_size=PAGE)
    for i in (5, 1, 6):
        w.append(i, values(i))
    w.abort()
    jpath = str(p) + ".journal"
    itemsize = w._file.layout.itemsize
    header, commits, _ = jmod.read_journal(jpath, itemsize)
    header["version"] = 1
    blob = jmod.encode_header(header)
    for data_end, sids, recs, _, allocs in commits:  # the v1 record: no checksum column
        payload = b"".join([struct.pack("<QII", data_end, len(sids), len(allocs)),
                            sids.tobytes(), recs.tobytes(), allocs.tobytes()])
        blob += struct.pack("<III", jmod.RECORD_MAGIC, len(payload), zlib.crc32(payload))
        blob += payload
    with open(jpath, "wb") as f:
        f.write(blob)
    w = BetonWriter.resume(p, num_workers=1)
    assert w.done_ids == {1, 5, 6}
    for i in sorted(set(range(n)) - w.done_ids):
        w.append(i, values(i))
    w.close()
    with BetonReader(p) as r:
        assert r.verify(decode=True)["checksums"]  # the recomputed ones match the data
    assert_same_content(p, reference(tmp_path, n))
