"""FFCV's own test cases, written as ours: our writer (through the DatasetWriter adapter) makes
files that FFCV's Reader and Loader read as they read FFCV's: custom fields, non-uint8 bytes,
shuffled indices, many small chunks on several workers, int/float-only files, empty values;
and a file of ours minus its trailer is byte for byte the file FFCV writes."""
from uuid import UUID

import numpy as np
import pytest
from ffcv.fields import BytesField, FloatField, IntField, RGBImageField
from ffcv.fields.basics import IntDecoder
from ffcv.fields.bytes import BytesDecoder
from ffcv.fields.ndarray import NDArrayDecoder, NDArrayField
from ffcv.loader import Loader, OrderOption
from ffcv.reader import Reader
from ffcv.writer import DatasetWriter

from loaders.beton import BetonFormatError, BetonReader, BetonWriter
from loaders.beton import format as fmt
from tests.loaders.beton_data import PAGE, make_image
from tests.loaders.ffcv_writer_adapter import BetonDatasetWriter

pytestmark = pytest.mark.timeout(300)


class StringField(NDArrayField):
    """A custom field (FFCV type id 255): fixed-length ASCII strings (as FFCV's own test)."""

    def __init__(self, max_len: int, pad_char="\0"):
        self.max_len, self.pad_char = max_len, pad_char
        super().__init__(np.dtype("uint8"), (max_len,))

    def encode(self, destination, field, malloc):
        padded = (field + self.pad_char * self.max_len)[:self.max_len]
        return super().encode(destination, np.frombuffer(padded.encode("ascii"), "uint8"),
                              malloc)


class Rows:
    """An indexable dataset of tuples."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[int(i)]


def captions(n):
    rng = np.random.default_rng(0)
    return [str(UUID(int=int(rng.integers(0, 2**62))))[:int(rng.integers(0, 50))]
            for _ in range(n)]


def test_custom_field_through_loader_and_reader(tmp_path):
    caps = captions(100)
    path = tmp_path / "str.beton"
    BetonDatasetWriter(path, {"label": StringField(100)}, num_workers=2).from_indexed_dataset(
        Rows([(c,) for c in caps]))
    loader = Loader(str(path), batch_size=10, num_workers=2, order=OrderOption.RANDOM,
                    pipelines={"label": [NDArrayDecoder()]}, custom_fields={"label": StringField})
    got = [x.tobytes().decode("ascii").replace("\0", "") for (b,) in loader for x in b]
    assert sorted(got) == sorted(caps)
    with pytest.raises(ValueError):  # FFCV refuses a custom field it has no class for
        Loader(str(path), batch_size=10, num_workers=1, pipelines={"label": [NDArrayDecoder()]})
    with pytest.raises(BetonFormatError, match=r"'label' is a custom field.*custom_fields"):
        BetonReader(path)
    with BetonReader(path, custom_fields={"label": StringField}) as r:
        assert r.verify()["checksums"]
        got = [r.read(i)["label"].tobytes().decode().replace("\0", "") for i in range(len(r))]
        assert got == caps  # in order
    assert Reader(str(path), custom_handlers={"label": StringField}).field_descriptors[0][
        "type_id"] == fmt.CUSTOM_TYPE_ID


def test_custom_field_resume_needs_the_field_objects(tmp_path):
    path = tmp_path / "c.beton"
    w = BetonWriter(path, 3, {"s": StringField(8), "y": IntField()}, num_workers=1,
                    page_size=PAGE)
    w.append(1, {"s": "one", "y": 1})
    w.abort()
    with pytest.raises(BetonFormatError, match="custom field.*fields="):
        BetonWriter.resume(path)
    with pytest.raises(BetonFormatError, match="differ"):
        BetonWriter.resume(path, fields={"s": StringField(9), "y": IntField()})
    w = BetonWriter.resume(path, fields={"s": StringField(8), "y": IntField()})
    assert w.done_ids == {1}
    w.append(0, {"s": "zero", "y": 0})
    w.append(2, {"s": "two", "y": 2})
    w.close()
    with BetonReader(path, custom_fields={"s": StringField}) as r:
        assert [bytes(r.read(i)["s"]).rstrip(b"\0") for i in range(3)] == [b"zero", b"one",
                                                                           b"two"]


def test_non_uint8_bytes_are_cast_like_ffcv(tmp_path):
    rows = [(i, np.arange(i % 5) * 1.5 + i) for i in range(40)]  # float64 1-D arrays
    rows[3] = (3, np.zeros(2))  # FFCV's test_small_chunks_multiple_workers
    fields = {"index": IntField(), "value": BytesField()}
    ours, theirs = tmp_path / "ours.beton", tmp_path / "ffcv.beton"
    BetonDatasetWriter(ours, fields, page_size=PAGE, num_workers=2).from_indexed_dataset(
        Rows(rows), chunksize=1)
    DatasetWriter(str(theirs), fields, page_size=PAGE, num_workers=1).from_indexed_dataset(
        Rows(rows))
    with BetonReader(ours) as a, BetonReader(theirs) as b:
        for i in range(len(rows)):
            want = rows[i][1].astype(np.uint8)  # what FFCV's ``buffer[:] = value`` stores
            np.testing.assert_array_equal(a.read(i)["value"], want)
            np.testing.assert_array_equal(b.read(i)["value"], want)
    with pytest.raises(Exception, match="1-D"):
        w = BetonWriter(tmp_path / "bad.beton", 1, fields, page_size=PAGE)
        try:
            w.append(0, {"index": 0, "value": np.zeros((2, 2))})
        finally:
            w.abort()


def _simple(length):
    return Rows([(i, np.sin(i)) for i in range(length)])


@pytest.mark.parametrize("workers,chunksize,shuffle", [(1, 100, False), (3, 1, False),
                                                       (2, 7, True)])
def test_int_float_files_like_ffcv(tmp_path, workers, chunksize, shuffle):
    """FFCV's test_writer cases: no allocations, metadata as FFCV writes it, sample k holds
    dataset[indices[k]] (shuffled too), and no page of padding (item 5)."""
    fields = {"index": IntField(), "value": FloatField()}
    path = tmp_path / "x.beton"
    BetonDatasetWriter(path, fields, num_workers=workers).from_indexed_dataset(
        _simple(600), chunksize=chunksize, shuffle_indices=shuffle)
    r = Reader(str(path))
    assert len(r.alloc_table) == 0 and len(r.metadata) == 600
    idx = r.metadata["f0"]
    assert set(idx.tolist()) == set(range(600))
    assert (not np.array_equal(idx, np.arange(600))) == shuffle
    np.testing.assert_array_equal(np.sin(idx), r.metadata["f1"])
    meta_end = fmt.HeaderType.itemsize + 2 * fmt.FieldDescType.itemsize + r.metadata.nbytes
    assert path.stat().st_size < meta_end + 8 * 600 + 1024  # metadata + trailer, no page
    assert BetonReader(path).verify()["checksums"]


def test_many_small_chunks_several_workers_through_loader(tmp_path):
    rng = np.random.default_rng(3)
    rows = [(i, rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8))
            for i in range(600)]
    path = tmp_path / "small.beton"
    BetonDatasetWriter(path, {"index": IntField(), "value": BytesField()},
                       num_workers=4).from_indexed_dataset(Rows(rows), chunksize=1)
    loader = Loader(str(path), batch_size=32, num_workers=2, order=OrderOption.RANDOM,
                    drop_last=False,
                    pipelines={"index": [IntDecoder()], "value": [BytesDecoder()]})
    seen = 0
    for index, value in loader:
        for i, v in zip(index.reshape(-1).tolist(), value):
            want = rows[i][1]
            np.testing.assert_array_equal(v[:len(want)], want)
            seen += 1
    assert seen == 600


@pytest.mark.parametrize("os_cache", [True, False])
def test_empty_values_at_start_middle_and_end_of_a_page(tmp_path, os_cache):
    sizes = [0, 1 << 20, 1 << 20, 0, 100, 0, 50, 0]  # 1 and 2 fill page 0 exactly
    rng = np.random.default_rng(1)
    values = [rng.integers(1, 256, n, dtype=np.uint8) for n in sizes]
    fields = {"n": IntField(), "blob": BytesField()}
    path = tmp_path / "empty.beton"
    with BetonWriter(path, len(sizes), fields, num_workers=1, page_size=PAGE) as w:
        for i, v in enumerate(values):
            w.append(i, {"n": len(v), "blob": v})
    with BetonReader(path) as r:
        ptr = r.metadata["f1"]["ptr"]
        assert int(ptr[0]) == r.data_start - PAGE  # FFCV's pointer for an empty first value
        data_ptrs = {int(p) for p, n in zip(ptr, sizes) if n}
        assert not data_ptrs & {int(p) for p, n in zip(ptr, sizes) if not n}  # none shared
        assert int(ptr[4]) == r.data_start + PAGE  # sample 4 starts page 1
        r.verify()
        for i, v in enumerate(values):
            np.testing.assert_array_equal(r.read(i)["blob"], v)
    loader = Loader(str(path), batch_size=3, num_workers=1, os_cache=os_cache, drop_last=False,
                    order=OrderOption.SEQUENTIAL,
                    pipelines={"n": [IntDecoder()], "blob": [BytesDecoder()]})
    k = 0
    for n, blob in loader:
        for m, row in zip(n.reshape(-1).tolist(), blob):
            assert m == sizes[k]
            np.testing.assert_array_equal(row[:m], values[k], err_msg=f"sample {k}")
            k += 1
    assert k == len(sizes)


def _strip_trailer(path) -> bytes:
    """Our file without its trailer, with the header's table pointer moved back."""
    with BetonReader(path) as r:
        table_ptr, size = r.alloc_table_ptr, r._trailer_bytes
    data = path.read_bytes()
    head = np.frombuffer(data[:24], fmt.HeaderType).copy()
    head["alloc_table_ptr"] = table_ptr - size
    return head.tobytes() + data[24:table_ptr - size] + data[table_ptr:]


@pytest.mark.parametrize("kind", ["ints", "images"])
def test_same_bytes_as_ffcv_minus_the_trailer(tmp_path, kind):
    if kind == "ints":
        fields, rows = {"index": IntField(), "value": FloatField()}, _simple(300).rows
    else:
        fields = {"jpg": RGBImageField(write_mode="jpg"), "raw": RGBImageField(write_mode="raw"),
                  "label": IntField(), "blob": BytesField()}
        rows = [(make_image(i), make_image(i, 20, 30), i % 7, np.full(1 + i % 9, i, np.uint8))
                for i in range(40)]
    ours, theirs = tmp_path / "ours.beton", tmp_path / "ffcv.beton"
    BetonDatasetWriter(ours, fields, page_size=PAGE, num_workers=2).from_indexed_dataset(
        Rows(rows))
    DatasetWriter(str(theirs), fields, page_size=PAGE, num_workers=1).from_indexed_dataset(
        Rows(rows))
    assert ours.read_bytes() != theirs.read_bytes()  # ours carries the trailer ...
    assert _strip_trailer(ours) == theirs.read_bytes()  # ... and nothing else differs
