"""Generation plan: determinism, seeds, shards, file format, bad input (with a stand-in recipe)."""
import json

import pytest

from engine.plan import PlanConfig, PlanFileError, build_plan, read_plan, row_seed, write_plan
from engine.prompts import Recipe, base


class CountingRecipe(Recipe):
    """Prompts '<c> #k' for k drawn from the seed, so seeds and counts are visible."""

    name, paper, pattern = "count", "test", "c #k"

    def __init__(self, offset: int = 0):
        self.offset = offset

    def prompts(self, cls, n, seed):
        return [f"{cls.name} #{(seed + k + self.offset) % 1000}" for k in range(n)]


@pytest.fixture(autouse=True)
def stand_in_recipes(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "count", CountingRecipe)
    monkeypatch.setitem(base._REGISTRY, "count2", CountingRecipe)


def cfg(**kw):
    d = dict(classes="tench,goldfish,papillon", recipes={"count": 1.0}, images_per_class=5,
             steps=10, height=64, width=64)
    d.update(kw)
    return PlanConfig(**d)


def test_rows_labels_and_seeds():
    plan = build_plan(cfg(seed=3))
    assert len(plan) == 15 and [r.sample_id for r in plan] == list(range(15))
    assert plan.counts("wnid") == {"n01440764": 5, "n01443537": 5, "n02086910": 5}
    assert {r.label for r in plan} == {0, 1, 157}  # ImageNet-1K indices
    assert all(r.seed == row_seed(3, r.sample_id) for r in plan)
    assert len({r.seed for r in plan}) == 15
    assert plan.header["num_rows"] == 15 and plan.header["recipes"] == ["count"]


def test_seed_depends_only_on_master_seed_and_sample_id():
    a, b = build_plan(cfg(seed=1)), build_plan(cfg(seed=1, guidance=2.0, images_per_class=6))
    assert a.rows[0].seed == b.rows[0].seed
    assert build_plan(cfg(seed=2)).rows[0].seed != a.rows[0].seed


def test_same_config_gives_byte_identical_files(tmp_path):
    p1, p2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_plan(build_plan(cfg()), str(p1))
    write_plan(build_plan(cfg()), str(p2))
    assert p1.read_bytes() == p2.read_bytes()
    write_plan(build_plan(cfg(seed=9)), str(p2), overwrite=True)
    assert p1.read_bytes() != p2.read_bytes()


def test_round_trip_and_hash_check(tmp_path):
    plan = build_plan(cfg(negative_prompt="blurry"))
    path = tmp_path / "plan.jsonl"
    write_plan(plan, str(path))
    back = read_plan(str(path))
    assert back.rows == plan.rows and back.header == plan.header
    assert back.rows[0].negative_prompt == "blurry"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("#", "%")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PlanFileError, match="hash"):
        read_plan(str(path))
    path.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(PlanFileError, match="truncated"):
        read_plan(str(path))


def test_refuses_to_overwrite_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "plan.jsonl"
    write_plan(build_plan(cfg()), str(path))
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_plan(build_plan(cfg()), str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.jsonl"]


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_shards_partition_and_balance(n):
    plan = build_plan(cfg(images_per_class=10))
    shards = [plan.shard(i, n) for i in range(n)]
    ids = [r.sample_id for s in shards for r in s]
    assert sorted(ids) == list(range(len(plan)))  # disjoint and covering
    for s in shards:
        per_class = s.counts("label")
        assert max(per_class.values()) - min(per_class.values()) <= 1
        assert s.header["shard"][1] == n
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    by_id = {r.sample_id: r for r in plan}
    assert all(by_id[r.sample_id] == r for s in shards for r in s)  # rows unchanged


def test_shard_file_round_trip(tmp_path):
    shard = build_plan(cfg()).shard(1, 3)
    write_plan(shard, str(tmp_path / "s.jsonl"))
    assert read_plan(str(tmp_path / "s.jsonl")).rows == shard.rows


def test_weights_split_each_class():
    plan = build_plan(cfg(recipes={"count": 3, "count2": 1}, images_per_class=8))
    assert plan.counts("recipe") == {"count": 18, "count2": 6}


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="sampler"):
        cfg(sampler="euler_magic")
    with pytest.raises(ValueError, match="multiple of 8"):
        cfg(height=100)
    with pytest.raises(ValueError, match="weight"):
        cfg(recipes={"count": 0})
    with pytest.raises(ValueError, match="unknown recipe"):
        build_plan(cfg(recipes={"nope": 1}))


def test_cli_writes_plan_and_summary(tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "p.jsonl"
    args = ["plan", "--classes", "tench,goldfish", "--recipe", "count", "--images-per-class", "4",
            "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "8 rows" in text and "examples for count" in text
    assert json.loads(out.read_text().splitlines()[0])["header"]["num_rows"] == 8
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert main(["plan", "--classes", "tench,goldfsh", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "goldfsh" in err and "goldfish" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_plan_config_from_yaml(tmp_path, capsys):
    from engine.cli import main

    y = tmp_path / "c.yaml"
    y.write_text("plan:\n  classes: tench\n  recipes: {count: 1}\n  images_per_class: 3\n"
                 "  steps: 7\n  guidance: 2.0\ngenerate:\n  batch_size: 4\n")
    out = tmp_path / "p.jsonl"
    # file -> --set -> flags: steps from the flag, guidance from --set, the rest from the file
    assert main(["plan", "--config", str(y), "--set", "steps=8", "--set", "guidance=3",
                 "--steps", "9", "--out", str(out)]) == 0
    plan = read_plan(str(out))
    assert len(plan) == 3 and {(r.steps, r.guidance) for r in plan} == {(9, 3.0)}
    assert plan.header["config"]["images_per_class"] == 3
    capsys.readouterr()
    y.write_text("plan:\n  classes: tench\n  images_per_clas: 3\n")
    assert main(["plan", "--config", str(y), "--out", str(tmp_path / "q.jsonl")]) == 2
    assert "images_per_clas" in capsys.readouterr().err
    y.write_text("classes: tench\nimages_per_class: 3\n")  # one shape: sections only
    assert main(["plan", "--config", str(y), "--out", str(tmp_path / "q.jsonl")]) == 2
    assert "no 'plan:' section" in capsys.readouterr().err
    assert not (tmp_path / "q.jsonl").exists()


def test_unknown_catalog_entry_in_config():
    from engine.catalog import ClassLookupError

    with pytest.raises(ClassLookupError):
        build_plan(cfg(classes="n09999999"))
