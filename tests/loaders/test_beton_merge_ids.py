"""Merging generated shards: ids kept by default (each image still points at its plan row),
duplicates and mixed plans refused, the output ordered by id so shards merge into the single
run's file; an interrupted merge resumes, a different merge into its partial is refused."""
import numpy as np
import pytest

import loaders.beton.writer as writer_mod
from engine.cli import main
from loaders.beton import BetonReader, BetonWriter, MergeError, merge_betons
from tests.loaders.test_beton_integrity import gen_info, generated_values, write_generated

pytestmark = pytest.mark.timeout(300)
ROWS = list(range(12))
SHARDS = [ROWS[0::3], ROWS[1::3], ROWS[2::3]]  # interleaved, as plan.shard(i, 3) deals rows


def write_shard(path, rows, plan="p" * 64):
    """A shard file: sample k holds plan row rows[k] (sample_id = 40 + row)."""
    write_generated(path, rows, plan)


@pytest.fixture()
def shards(tmp_path):
    paths = [tmp_path / f"clone.shard{i}of3.beton" for i in range(3)]
    for p, rows in zip(paths, SHARDS):
        write_shard(p, rows)
    return paths


def test_generated_shards_merge_into_the_single_run(tmp_path, shards, capsys):
    single = tmp_path / "single.beton"
    write_shard(single, ROWS)
    out = tmp_path / "merged.beton"
    assert main(["merge", *map(str, shards[::-1]), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert out.read_bytes() == single.read_bytes()  # ids kept and ordered: the same file
    with BetonReader(out) as r:
        for i in range(len(r)):  # every id still points at its own plan row
            v = r.read(i)
            assert v["sample_id"] == 40 + i
            assert v["label"] == generated_values(i)["label"]
            assert bytes(v["prompt"]) == generated_values(i)["prompt"]


def test_duplicate_ids_and_mixed_plans_are_refused(tmp_path, shards, capsys):
    out = tmp_path / "m.beton"
    assert main(["merge", str(shards[0]), str(shards[1]), str(shards[0]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "occur more than once" in err and "shard0of3" in err
    other = tmp_path / "other_plan.beton"
    write_shard(other, [100, 101], plan="q" * 64)
    with pytest.raises(MergeError, match="different plans"):
        merge_betons([shards[0], other], out)
    with pytest.raises(MergeError, match="different plans"):  # renumbering does not help
        merge_betons([shards[0], other], out, sample_ids="renumber")
    real = tmp_path / "real.beton"
    info = gen_info()
    info.kind, info.plan_hash = "real", None
    write_generated(real, [200], info=info)
    with pytest.raises(MergeError, match="cannot merge real file"):
        merge_betons([shards[0], real], out)
    assert not out.exists() and not BetonWriter.partial_exists(out)
    # renumbering on request (ids 0..n-1 in input order)
    merge_betons([shards[1], shards[0]], out, sample_ids="renumber")
    with BetonReader(out) as r:
        assert [r.read(i)["sample_id"] for i in range(8)] == list(range(8))
        assert r.read(0)["label"] == generated_values(1)["label"]


def test_interrupted_merge_resumes(tmp_path, shards, monkeypatch):
    out = tmp_path / "m.beton"
    real, calls = writer_mod.BetonWriter._append_encoded, {"n": 0}

    def dying(self, *args):
        calls["n"] += 1
        if calls["n"] == 7:
            self.flush()
            raise KeyboardInterrupt
        real(self, *args)

    monkeypatch.setattr(writer_mod.BetonWriter, "_append_encoded", dying)
    with pytest.raises(KeyboardInterrupt):
        merge_betons(shards, out)
    monkeypatch.setattr(writer_mod.BetonWriter, "_append_encoded", real)
    assert BetonWriter.partial_exists(out)
    with pytest.raises(MergeError, match="other inputs or settings.*--overwrite"):
        merge_betons(shards[:2], out)
    merge_betons(shards, out)  # the same merge: resumes
    single = tmp_path / "single.beton"
    write_shard(single, ROWS)
    assert out.read_bytes() == single.read_bytes()
    assert np.all([not p.name.endswith((".partial", ".journal", ".lock"))
                   for p in tmp_path.iterdir()])
