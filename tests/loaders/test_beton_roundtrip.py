"""What BetonWriter writes reads through the real ffcv Loader exactly like FFCV's own file."""
import numpy as np
import pytest
from ffcv.fields.rgb_image import encode_jpeg

from loaders.beton import BetonReader, BetonWriter
from tests.loaders.beton_data import (PAGE, all_fields, ffcv_write, load_all, sample_values,
                                      stored_bytes)

N = 20
VARIABLE = ("blob", "meta")  # BytesDecoder pads to the longest sample with uninitialised bytes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("roundtrip")
    theirs, ours = d / "ffcv.beton", d / "ours.beton"
    ffcv_write(theirs, N, all_fields())
    order = np.random.default_rng(0).permutation(N)  # any append order
    with BetonWriter(ours, N, all_fields(), num_workers=2, page_size=PAGE) as w:
        for i in order:
            w.append(int(i), sample_values(int(i)))
            if i % 6 == 0:
                w.flush()  # partial-page commits must not disturb the layout
    return theirs, ours


def _assert_batches_equal(a, b, fields):
    assert len(a) == len(b) and a
    for ba, bb in zip(a, b):
        for name in fields:
            x, y = ba[name], bb[name]
            assert x.shape == y.shape, name
            if name in VARIABLE:
                continue
            if name == "prop":  # FFCV draws jpg/raw at random per sample: compared below
                continue
            np.testing.assert_array_equal(x, y, err_msg=name)


def _assert_variable_fields(batches, order):
    i = 0
    for b in batches:
        for row_blob, row_meta in zip(b["blob"], b["meta"]):
            v = sample_values(int(order[i]))
            pairs = ((row_blob, stored_bytes(v["blob"])), (row_meta, stored_bytes(v["meta"])))
            for row, want in pairs:
                np.testing.assert_array_equal(row[:len(want)], want)
            i += 1
    assert i == N


def _decode_like_ffcv(img, quality=90):
    """Pixels FFCV's loader yields for a JPEG-written image."""
    from ffcv.libffcv import imdecode

    data = encode_jpeg(img, quality)
    out = np.empty_like(img)
    assert imdecode(data, out, img.shape[0], img.shape[1], img.shape[0], img.shape[1],
                    0, 0, 1, 1, False, False) == 0
    return out


@pytest.mark.parametrize("order,os_cache", [("sequential", False), ("random", True)])
def test_loader_reads_ours_like_ffcv(files, order, os_cache):
    theirs, ours = files
    fields = all_fields()
    a = load_all(theirs, fields, order=order, seed=7, os_cache=os_cache)
    b = load_all(ours, fields, order=order, seed=7, os_cache=os_cache)
    _assert_batches_equal(a, b, fields)
    seen = np.concatenate([x["label"].reshape(-1) for x in b])
    want = np.array([sample_values(i)["label"] for i in range(N)])
    if order == "sequential":
        np.testing.assert_array_equal(seen, want)
        _assert_variable_fields(a, np.arange(N))
        _assert_variable_fields(b, np.arange(N))
    else:
        assert sorted(seen.tolist()) == sorted(want.tolist())
        assert not np.array_equal(seen, want)  # the random order really is random
    # our file's raw pixels, arrays and scalars are the input values, not just FFCV-equal
    for batch in b:
        for row in range(len(batch["label"])):
            i = int(np.flatnonzero(want == batch["label"][row].item())[0])
            v = sample_values(i)
            np.testing.assert_array_equal(batch["raw"][row], v["raw"])
            np.testing.assert_array_equal(batch["big"][row], v["big"])
            np.testing.assert_array_equal(batch["arr"][row], v["arr"])
            assert batch["score"][row].item() == v["score"]
            jpg = _decode_like_ffcv(v["jpg"])
            np.testing.assert_array_equal(batch["jpg"][row], jpg)
            np.testing.assert_array_equal(batch["smart"][row], jpg)
            assert (batch["prop"][row] == v["prop"]).all() or (batch["prop"][row] == jpg).all()


def test_reader_decodes_both_files_identically(files):
    theirs, ours = files
    with BetonReader(theirs) as rt, BetonReader(ours) as ro:
        assert len(rt) == len(ro) == N
        assert [type(f) for f in rt.fields.values()] == [type(f) for f in all_fields().values()]
        assert (rt.descriptors.tobytes() == ro.descriptors.tobytes())
        for i in range(N):
            a, b, v = rt.read(i), ro.read(i), sample_values(i)
            for name in ("jpg", "raw", "smart", "resized", "label", "score", "arr", "big"):
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} of {i}")
            assert b["meta"] == v["meta"] and a["meta"] == v["meta"]
            np.testing.assert_array_equal(b["blob"], v["blob"])
            assert b["resized"].shape == (26, 32, 3)  # 40x48 -> longest side 32 (FFCV truncates)
            assert b["jpg"].shape == (40, 48, 3)
        assert ro.verify(decode=True)["num_samples"] == N


def test_encoded_bytes_and_mode_mix(files):
    _, ours = files
    with BetonReader(ours) as r:
        modes = {r.encoded(i, "prop")[1] for i in range(N)}
        assert modes == {"jpg", "raw"}  # proportion mixes both (P(all one mode) = 2**-19)
        data, mode = r.encoded(3, "jpg")
        enc = r.encoded(3, "jpg")
        assert mode == "jpg" and data[:2] == b"\xff\xd8" and (enc.height, enc.width) == (40, 48)
        np.testing.assert_array_equal(np.frombuffer(data, np.uint8),
                                      encode_jpeg(sample_values(3)["jpg"], 90))
        data, mode = r.encoded(3, "raw")
        assert mode == "raw" and data == sample_values(3)["raw"].tobytes()
        assert r.encoded(2, "blob")[0] == sample_values(2)["blob"].tobytes()
        with pytest.raises(KeyError, match="no field 'nope'"):
            r.encoded(0, "nope")
        with pytest.raises(IndexError):
            r.read(N)
