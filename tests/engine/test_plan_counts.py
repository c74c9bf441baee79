"""Per-class counts (--counts-from: train folder, devkit meta.mat, 'wnid count' file), recipe
weights spread over classes, notes, and the plan's progress bar."""
import numpy as np
import pytest

from engine.catalog.counts import CountsError, read_counts
from engine.plan import PlanConfig, build_plan, read_plan, split_classes
from engine.prompts import Recipe, base

from .imagenet_fakes import fake_meta_mat, fake_train_folder

COUNTS = {"n01440764": 3, "n01443537": 1, "n02086910": 2}   # tench, goldfish, papillon


class CountingRecipe(Recipe):
    name, paper, pattern = "count", "test", "c #k"

    def prompts(self, cls, n, seed):
        return [f"{cls.name} #{k}" for k in range(n)]


@pytest.fixture(autouse=True)
def stand_in_recipes(monkeypatch):
    for name in ("count", "count2", "count3"):
        monkeypatch.setitem(base._REGISTRY, name, CountingRecipe)


def cfg(**kw):
    d = dict(classes="tench,goldfish,papillon", recipes={"count": 1.0}, images_per_class=5,
             steps=10, height=64, width=64)
    d.update(kw)
    return PlanConfig(**d)


def test_counts_from_a_train_folder(tmp_path):
    root = fake_train_folder(tmp_path / "train", COUNTS)
    (root / "n01440764" / "sub").mkdir()
    (root / "n01440764" / "sub" / "x.jpg").write_bytes(b"")       # nested: counted
    (root / "n01440764" / ".hidden.JPEG").write_bytes(b"")        # hidden: not
    (root / "n01440764" / "notes.txt").write_text("x")            # not an image
    plan = build_plan(cfg(counts_from=str(root)))
    assert plan.counts("wnid") == {"n01440764": 4, "n01443537": 1, "n02086910": 2}
    c = plan.header["counts"]
    assert c == {"source": str(root), "kind": "folder", "multiplier": 1.0, "total": 7,
                 "per_class": {"n01440764": 4, "n01443537": 1, "n02086910": 2}}


def test_counts_from_the_devkit_meta_mat_times_ten(tmp_path):
    meta = fake_meta_mat(tmp_path / "meta.mat", {**COUNTS, "n01484850": 9})
    assert read_counts(str(meta)).counts == {**COUNTS, "n01484850": 9}   # leaves only
    plan = build_plan(cfg(counts_from=str(meta), counts_multiplier=10))
    assert plan.counts("wnid") == {w: 10 * n for w, n in COUNTS.items()}
    assert plan.header["counts"]["kind"] == "meta.mat"
    assert plan.header["counts"]["per_class"] == COUNTS and plan.header["counts"]["total"] == 6


def test_counts_from_a_text_file(tmp_path):
    f = tmp_path / "counts.txt"
    f.write_text("# real counts\nn01440764 3\nn01443537 2\nn02086910 1\n")
    plan = build_plan(cfg(counts_from=str(f), counts_multiplier=2))
    assert plan.counts("wnid") == {"n01440764": 6, "n01443537": 4, "n02086910": 2}


def test_counts_errors(tmp_path):
    f = tmp_path / "counts.txt"
    f.write_text("n01440764 3\n")
    with pytest.raises(CountsError, match="no count for 2 of the 3 classes"):
        build_plan(cfg(counts_from=str(f)))
    f.write_text("n01440764 three\n")
    with pytest.raises(CountsError, match="expected 'wnid count'"):
        build_plan(cfg(counts_from=str(f)))
    with pytest.raises(CountsError, match="not found"):
        build_plan(cfg(counts_from=str(tmp_path / "nope")))
    bad = tmp_path / "other.mat"
    import scipy.io

    scipy.io.savemat(str(bad), {"x": np.zeros(3)})
    with pytest.raises(CountsError, match="not the ILSVRC-2012 devkit"):
        read_counts(str(bad))
    imagenet = tmp_path / "imagenet"
    fake_train_folder(imagenet / "train", COUNTS)
    with pytest.raises(CountsError, match="did you mean .*train"):
        build_plan(cfg(counts_from=str(imagenet)))


def test_required_counts_name_the_flag(tmp_path, capsys):
    from engine.cli import main

    with pytest.raises(ValueError, match="--counts-from"):
        build_plan(cfg(require_counts=True))
    y = tmp_path / "c.yaml"
    y.write_text("plan:\n  classes: tench\n  recipes: {count: 1}\n  require_counts: true\n")
    out = tmp_path / "p.jsonl"
    assert main(["plan", "--config", str(y), "--out", str(out)]) == 2
    assert "--counts-from PATH" in capsys.readouterr().err and not out.exists()
    root = fake_train_folder(tmp_path / "train", {"n01440764": 2})
    assert main(["plan", "--config", str(y), "--counts-from", str(root), "--out", str(out)]) == 0
    assert len(read_plan(str(out))) == 2
    text = capsys.readouterr().out
    assert "real per-class counts from" in text and str(root) in text


# ------------------------------------------------------------------- recipe weights
def test_split_classes_by_hand():
    # c_hc=1, c_dc=2 at one image per class: the remainders travel, every recipe appears
    assert split_classes([1, 1, 1], {"c_dc": 2, "c_hc": 1}) == [
        {"c_dc": 1, "c_hc": 0}, {"c_dc": 0, "c_hc": 1}, {"c_dc": 1, "c_hc": 0}]
    assert split_classes([8, 8], {"a": 3, "b": 1}) == [{"a": 6, "b": 2}, {"a": 6, "b": 2}]
    assert split_classes([5], {"a": 1, "b": 1}) == [{"a": 3, "b": 2}]


@pytest.mark.parametrize("sizes, weights", [
    ([1] * 7, {"a": 1, "b": 2, "c": 4}), ([3, 1, 4, 1, 5, 9, 2, 6], {"a": 0.3, "b": 0.7}),
    ([2] * 50, {"a": 1, "b": 1, "c": 1}), ([13] * 10, {"a": 5, "b": 1, "c": 1})])
def test_split_classes_keeps_sizes_and_shares(sizes, weights):
    splits = split_classes(sizes, weights)
    assert [sum(s.values()) for s in splits] == sizes            # each class exactly its size
    total, wsum = sum(sizes), sum(weights.values())
    for k, w in weights.items():
        got = sum(s[k] for s in splits)
        assert abs(got - total * w / wsum) < 1, (k, got)          # each recipe its share
        assert all(s[k] >= 0 for s in splits)


def test_every_recipe_appears_with_one_image_per_class():
    plan = build_plan(cfg(recipes={"count": 1, "count2": 2}, images_per_class=1))
    assert plan.counts("recipe") == {"count2": 2, "count": 1}
    assert "notes" not in plan.header


def test_a_recipe_that_gets_nothing_is_noted(tmp_path, capsys):
    plan = build_plan(cfg(classes="tench", recipes={"count": 1, "count2": 1, "count3": 1},
                          images_per_class=2))
    assert len(plan) == 2
    (note,) = plan.header["notes"]
    assert "count3" in note and "no images" in note


def test_backgrounds_with_a_recipe_that_has_none_is_a_note(tmp_path, capsys, places365_file):
    from engine.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["plan", "--classes", "tench", "--recipe", "c_hc", "--images-per-class", "1",
                 "--backgrounds", places365_file, "--out", str(out)]) == 0
    assert "note: backgrounds is not used" in capsys.readouterr().err
    assert "backgrounds is not used" in read_plan(str(out)).header["notes"][0]
    assert main(["plan", "--classes", "tench", "--recipe", "c_hc", "--template", "a {c}",
                 "--out", str(tmp_path / "q.jsonl")]) == 2     # other options stay errors


@pytest.mark.timeout(60)
def test_progress_bar_shows_classes_not_a_rate(capsys, monkeypatch):
    import time

    class Slow(CountingRecipe):
        def prompts(self, cls, n, seed):
            time.sleep(0.6)
            return super().prompts(cls, n, seed)

    monkeypatch.setitem(base._REGISTRY, "slow", Slow)
    build_plan(cfg(recipes={"slow": 1}, images_per_class=1), progress=True)
    err = capsys.readouterr().err
    assert "3/3 classes" in err and "/s" not in err
