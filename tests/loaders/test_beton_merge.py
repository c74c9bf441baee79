"""Merging shards: FFCV's Loader reads every sample and label; bytes are copied verbatim."""
import numpy as np
import pytest
from ffcv.fields import FloatField, IntField, JSONField, RGBImageField

from loaders.beton import BetonReader, BetonWriter, MergeError, merge_betons
from tests.loaders.beton_data import PAGE, ffcv_write, load_all, make_image

SIZES = (5, 7, 4)


def fields():
    return {"image": RGBImageField(write_mode="jpg"), "label": IntField(),
            "sample_id": IntField(), "meta": JSONField()}


def shard_values(shard, j):
    g = 100 * shard + j  # a globally unique sample
    return {"image": make_image(g, 32, 32), "label": g % 11, "sample_id": j, "meta": {"g": g}}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("merge")
    paths = []
    for s, n in enumerate(SIZES):
        p = d / f"shard{s}.beton"
        if s == 1:  # one shard written by FFCV itself: merge takes either
            ffcv_write(p, n, fields(), values=lambda j, s=s: shard_values(s, j), workers=1)
        else:
            with BetonWriter(p, n, fields(), num_workers=1, page_size=PAGE) as w:
                for j in reversed(range(n)):
                    w.append(j, shard_values(s, j))
        paths.append(p)
    return paths


def test_merge_three_shards_reads_through_ffcv(tmp_path, shards):
    out = tmp_path / "merged.beton"
    assert merge_betons(shards, out) == sum(SIZES)
    expect = [shard_values(s, j) for s, n in enumerate(SIZES) for j in range(n)]
    batches = load_all(out, fields(), batch_size=4)
    labels = np.concatenate([b["label"].reshape(-1) for b in batches])
    ids = np.concatenate([b["sample_id"].reshape(-1) for b in batches])
    images = np.concatenate([b["image"] for b in batches])
    assert labels.tolist() == [v["label"] for v in expect]
    assert ids.tolist() == list(range(sum(SIZES)))  # renumbered 0..total-1
    with BetonReader(out) as r:
        k = 0
        for s, p in enumerate(shards):
            with BetonReader(p) as src:
                for j in range(len(src)):
                    assert r.encoded(k, "image") == src.encoded(j, "image")  # verbatim bytes
                    np.testing.assert_array_equal(images[k], src.read(j)["image"])
                    assert r.read(k)["meta"] == {"g": 100 * s + j}
                    k += 1
        assert r.descriptors.tobytes() == BetonReader(shards[0]).descriptors.tobytes()


def test_merge_keeps_ids_on_request_and_refuses_duplicates(tmp_path, shards):
    out = tmp_path / "kept.beton"
    with pytest.raises(MergeError, match=r"sample_id values occur more than once \(e.g. 0 in"):
        merge_betons(shards, out, sample_ids="keep")  # every shard counts from 0
    assert not out.exists() and not BetonWriter.partial_exists(out)
    with pytest.raises(MergeError, match="more than once"):
        merge_betons(shards, out, renumber_field=None)  # the older spelling of "keep"


def test_merge_mismatched_fields_names_the_field(tmp_path, shards):
    other = tmp_path / "other.beton"
    f = dict(fields(), label=FloatField())
    with BetonWriter(other, 1, f, num_workers=0, page_size=PAGE) as w:
        w.append(0, dict(shard_values(0, 0), label=1.0))
    with pytest.raises(MergeError, match="field 'label' is FloatField"):
        merge_betons([shards[0], other], tmp_path / "bad.beton")
    renamed = tmp_path / "renamed.beton"
    g = {("caption" if k == "meta" else k): v for k, v in fields().items()}
    with BetonWriter(renamed, 1, g, num_workers=0, page_size=PAGE) as w:
        v = shard_values(0, 0)
        w.append(0, {("caption" if k == "meta" else k): x for k, x in v.items()})
    with pytest.raises(MergeError, match="field #3 is 'caption' there but 'meta'"):
        merge_betons([shards[0], renamed], tmp_path / "bad.beton")
    assert not (tmp_path / "bad.beton").exists()
