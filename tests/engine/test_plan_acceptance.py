"""Issue #2 acceptance: the papers' recipes through the real plan CLI."""
import json

import pytest

from engine.cli import main
from engine.plan import read_plan


def _scenes(places_file):
    from engine.prompts.places365 import load_backgrounds

    return load_backgrounds(places_file)[0]


def test_imagenet100_background_recipe(tmp_path, places365_file, capsys):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = ["plan", "--classes", "imagenet100", "--recipe", "c_hc_inside_b", "--backgrounds",
            places365_file, "--images-per-class", "13"]
    assert main(args + ["--out", str(out1)]) == 0
    assert main(args + ["--out", str(out2)]) == 0
    assert out1.read_bytes() == out2.read_bytes()  # two runs are byte-identical
    plan = read_plan(str(out1))
    assert len(plan) == 1300 and set(plan.counts("wnid").values()) == {13}
    papillon = [r for r in plan if r.wnid == "n02086910"]
    assert len(papillon) == 13
    assert all(r.prompt.startswith("papillon, toy spaniel inside ") for r in papillon)
    scenes = set(_scenes(places365_file))
    assert len(scenes) == 365
    used = {r.prompt.rsplit(" inside ", 1)[1] for r in plan}
    assert used <= scenes and len(used) > 300  # scenes come from Places365 and get cycled
    shards = [plan.shard(i, 4) for i in range(4)]
    ids = sorted(r.sample_id for s in shards for r in s)
    assert ids == list(range(1300))
    out = capsys.readouterr().out
    assert "c_hc_inside_b" in out and "1300 rows" in out


def test_unreachable_llm_leaves_no_plan(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "p.jsonl"
    rc = main(["plan", "--classes", "tench", "--recipe", "cd", "--images-per-class", "2",
               "--llm-url", f"http://127.0.0.1:{port}/v1", "--llm-model", "m", "--llm-retries", "1",
               "--out", str(out)])
    assert rc == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_recipe_needing_hypernyms_names_the_custom_class(tmp_path, capsys):
    f = tmp_path / "classes.txt"
    f.write_text("zorblax | a made-up animal\n")
    rc = main(["plan", "--classes", str(f), "--recipe", "c_hc", "--images-per-class", "2",
               "--out", str(tmp_path / "p.jsonl")])
    assert rc == 2 and "zorblax" in capsys.readouterr().err
    assert main(["plan", "--classes", str(f), "--recipe", "c_dc", "--images-per-class", "2",
                 "--out", str(tmp_path / "p.jsonl")]) == 0
    row = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[1])
    assert row["prompt"] == "zorblax, a made-up animal" and row["label"] == 0


def test_option_no_recipe_takes_is_an_error(tmp_path, capsys):
    rc = main(["plan", "--classes", "tench", "--recipe", "c_hc", "--template", "x {c}",
               "--out", str(tmp_path / "p.jsonl")])
    assert rc == 2 and "template" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["c", "c_dc", "multiple", "multiple_different", "complex",
                                    "cd", "sd", "clip_templates", "a_photo_of", "rendition"])
def test_every_recipe_plans(tmp_path, recipe):
    out = tmp_path / "p.jsonl"
    assert main(["plan", "--classes", "tench,papillon", "--recipe", recipe,
                 "--images-per-class", "4", "--out", str(out)]) == 0
    plan = read_plan(str(out))
    assert len(plan) == 8 and all(r.prompt for r in plan)
