"""Checksums catch corruption that reads back as different content: a fuzz of bit flips and
zeroed ranges over a generated-like and a packed file, with zero silent acceptances; merge
verifies and carries checksums; FFCV's files (no trailer) still verify."""
import os

import numpy as np
import PIL.Image
import pytest

from loaders.beton import (BetonFormatError, BetonReader, BetonWriter, ClassEntry, FileInfo,
                           merge_betons)
from loaders.beton.pack import PackConfig, pack
from loaders.beton.schema import generated_fields
from tests.loaders.beton_data import PAGE, ffcv_write, make_image

N = 12
MUTANTS = 320
"""Mutants per file (two files: 640 in all)."""
pytestmark = pytest.mark.timeout(600)


def generated_values(i):
    return {"image": make_image(i, 24, 32), "label": [3, 5, 900][i % 3], "sample_id": 40 + i,
            "recipe": i % 2, "prompt": f"a photo of thing {i}, in a field".encode()}


def gen_info(plan="p" * 64):
    return FileInfo("generated", plan, {3: ClassEntry("solar panel", None),
                                        5: ClassEntry("wind turbine", None),
                                        900: ClassEntry("water tower", "n04562935")},
                    ["c", "c_hc"])


def write_generated(path, ids=range(N), plan="p" * 64, info=None):
    with BetonWriter(path, len(ids), generated_fields(32), num_workers=2, page_size=PAGE,
                     info=info or gen_info(plan)) as w:
        for k, i in enumerate(ids):
            w.append(k, generated_values(i))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity")
    write_generated(d / "gen.beton")
    src = d / "real"
    for k, wnid in enumerate(("n01440764", "n02123045")):
        (src / wnid).mkdir(parents=True)
        for j in range(N // 2):
            PIL.Image.fromarray(make_image(7 * k + j, 28, 36)).save(
                src / wnid / f"{j}.{'jpg' if j % 2 else 'png'}", quality=90)
    pack(PackConfig(str(src), str(d / "real.beton"), max_resolution=32))
    return d


def content(path):
    """Everything a user gets from the file, or 'error' if our reader refuses it."""
    try:
        with BetonReader(path) as r:
            r.verify(decode=True)
            rows = [r.read(i) for i in range(len(r))]
            info = r.info.to_json() if r.info else None
            names = list(r.fields)
    except BetonFormatError:
        return "error"
    return names, info, [{k: np.asarray(v).tobytes() if not isinstance(v, (int, float, dict))
                          else v for k, v in row.items()} for row in rows]


def used_ranges(path):
    """Byte ranges something reads: header/descriptors/metadata, data blobs, trailer, table."""
    with BetonReader(path) as r:
        ranges = [(0, r._meta_end)]
        ranges += [(int(p), int(p) + int(n)) for p, n in zip(r._ptrs, r._sizes) if n]
        ranges.append((r.alloc_table_ptr - r._trailer_bytes, r.file_size))
    return ranges


@pytest.mark.parametrize("name", ["gen.beton", "real.beton"])
def test_fuzz_no_silent_acceptance(files, tmp_path, name):
    original = (files / name).read_bytes()
    want = content(files / name)
    assert want != "error" and len(want[2]) == N
    work = tmp_path / name
    work.write_bytes(original)
    rng = np.random.default_rng(len(name))
    ranges = used_ranges(work)
    sizes = np.array([b - a for a, b in ranges], float)
    outcomes = {"error": 0, "same": 0, "silent": []}
    with open(work, "r+b") as f:
        for m in range(MUTANTS):
            if m % 5 == 4:  # anywhere in the file (mostly unused page tails: harmless)
                start = int(rng.integers(0, len(original)))
            else:  # where the reader looks
                a, b = ranges[rng.choice(len(ranges), p=sizes / sizes.sum())]
                start = int(rng.integers(a, b))
            if m % 3 == 2:  # a zeroed range
                end = min(len(original), start + int(rng.integers(1, 64)))
                mutated = bytes(end - start)
            else:  # one flipped bit
                end = start + 1
                mutated = bytes([original[start] ^ (1 << int(rng.integers(0, 8)))])
            if mutated == original[start:end]:
                continue
            f.seek(start)
            f.write(mutated)
            f.flush()
            got = content(work)
            if got == "error":
                outcomes["error"] += 1
            elif got == want:
                outcomes["same"] += 1
            else:
                outcomes["silent"].append((start, end))
            f.seek(start)
            f.write(original[start:end])
            f.flush()
    assert outcomes["silent"] == [], outcomes
    assert outcomes["error"] > 0.6 * MUTANTS  # most mutants hit bytes that are read


def test_targeted_corruptions_are_named(files, tmp_path):
    path = tmp_path / "g.beton"
    data = bytearray((files / "gen.beton").read_bytes())
    with BetonReader(files / "gen.beton") as r:
        rec = r._meta_end - (N - 4) * r.metadata_type.itemsize  # record of sample 4
        label_off = rec + r.metadata_type.fields["f1"][1]
        table = r.alloc_table_ptr
    cases = {"label": (label_off, "sample 4: metadata record is corrupt"),
             "table": (table + 9, "allocation table is corrupt"),
             "name": (24 + 2, "header or field descriptors are corrupt"),
             "trailer": (table - 40, "integrity trailer")}
    for what, (off, msg) in cases.items():
        blob = bytearray(data)
        blob[off] ^= 0x04
        path.write_bytes(bytes(blob))
        with pytest.raises(BetonFormatError, match=msg):
            with BetonReader(path) as r:
                r.verify()
    # the trailer cut off: the table is not where FFCV would put it -> refused, not "no checks"
    with BetonReader(files / "gen.beton") as r:
        start = r.alloc_table_ptr - r._trailer_bytes
    path.write_bytes(bytes(data[:start]) + bytes(r._trailer_bytes) + bytes(data[table:]))
    with pytest.raises(BetonFormatError, match="integrity trailer missing or damaged"):
        BetonReader(path)


def test_check_on_read(files, tmp_path):
    path = tmp_path / "g.beton"
    data = bytearray((files / "gen.beton").read_bytes())
    with BetonReader(files / "gen.beton") as r:
        ptr = int(r.metadata[5]["f0"]["data_ptr"])
    data[ptr + 200] ^= 0x10  # inside sample 5's JPEG data
    path.write_bytes(bytes(data))
    with BetonReader(path) as r:
        r.encoded(5, "image")  # unchecked reads return what is stored
    with BetonReader(path, check=True) as r:
        r.read(4)
        with pytest.raises(BetonFormatError, match="sample 5: data is corrupt"):
            r.read(5)
        with pytest.raises(BetonFormatError, match="sample 5: data is corrupt"):
            r.encoded(5, "image")


def test_merge_verifies_and_carries_checksums(files, tmp_path):
    a, b = tmp_path / "a.beton", tmp_path / "b.beton"
    write_generated(a, range(0, 5))
    write_generated(b, range(5, 9))
    out = tmp_path / "m.beton"
    merge_betons([b, a], out)
    with BetonReader(out) as r:
        assert r.verify(decode=True)["checksums"]
        assert r.info.to_json() == gen_info().to_json()
        assert [r.read(i)["sample_id"] for i in range(9)] == list(range(40, 49))  # by id
        with BetonReader(a) as ra:
            assert r.encoded(0, "image") == ra.encoded(0, "image")
            assert (r.trailer.data_crc[:5] == ra.trailer.data_crc).all()  # carried as is
    data = bytearray(a.read_bytes())
    with BetonReader(a) as ra:
        data[int(ra.metadata[2]["f0"]["data_ptr"]) + 50] ^= 1
    a.write_bytes(bytes(data))
    with pytest.raises(BetonFormatError, match="sample 2: data is corrupt"):
        merge_betons([a, b], tmp_path / "bad.beton")


def test_ffcv_files_have_no_trailer_and_verify(tmp_path):
    from ffcv.fields import BytesField, IntField, RGBImageField

    fields = {"image": RGBImageField(write_mode="jpg"), "label": IntField(),
              "blob": BytesField()}
    path = tmp_path / "ffcv.beton"
    ffcv_write(path, 5, fields, values=lambda i: {
        "image": make_image(i), "label": i, "blob": np.full(3, i, np.uint8)}, workers=1)
    with BetonReader(path) as r:
        assert r.info is None and not r.has_checksums
        assert r.verify(decode=True) == {"num_samples": 5, "image_modes": {"jpg": 5, "raw": 0},
                                         "decoded": True, "checksums": False}
    assert os.path.getsize(path) % PAGE == 10 * 24  # FFCV's layout: pages, then the table
