"""Plans of image-conditioned rows (seed 004 §2.4, App. C; issue #10 item 4): one row per real
image from an ImageFolder tree or a packed .beton; and the plan header's ``class_names``
(outside the rows' hash)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.plan import PlanConfig, build_plan, content_hash, read_plan, write_plan
from engine.plan.rows import row_seed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = {"n01440764": ["a.png", "b.png", "sub/c.png"],       # tench (label 0)
         "n01443537": ["x.png", "y.JPEG"],                    # goldfish (label 1)
         "n01484850": ["z.png"]}                              # great white shark: not planned


def fake_image_folder(root, files=FILES, size=(24, 20)):
    rng = np.random.default_rng(0)
    for cls, names in files.items():
        for name in names:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            im = Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))
            im.save(path, format="JPEG" if name.endswith("JPEG") else "PNG")
    (root / "n01440764" / ".hidden.png").write_bytes(b"")      # skipped by the lister
    (root / "n01440764" / "notes.txt").write_text("not an image")
    return str(root)


@pytest.fixture
def real_folder(tmp_path):
    return fake_image_folder(tmp_path / "train")


def cfg(source, recipes, **kw):
    base = dict(classes="tench,goldfish", recipes=recipes, from_images=source, steps=2,
                height=32, width=32)
    return PlanConfig(**{**base, **kw})


def test_image_variation_one_row_per_real_image_of_the_class_set(real_folder):
    plan = build_plan(cfg(real_folder, {"image_variation": 1.0}, guidance=3.0))
    assert [(r.label, r.wnid, r.init_image) for r in plan.rows] == [
        (0, "n01440764", "n01440764/a.png"), (0, "n01440764", "n01440764/b.png"),
        (0, "n01440764", "n01440764/sub/c.png"), (1, "n01443537", "n01443537/x.png"),
        (1, "n01443537", "n01443537/y.JPEG")]
    for r in plan.rows:
        assert (r.recipe, r.prompt, r.strength, r.guidance) == ("image_variation", "", None, 3.0)
        assert r.seed == row_seed(0, r.sample_id)
    real = plan.header["real_images"]
    assert real == {"source": os.path.abspath(real_folder), "kind": "folder", "images": 6,
                    "rows": 5}
    assert any("1 images of 1 classes" in n and "n01484850" in n for n in plan.header["notes"])
    assert plan.header["recipes"] == ["image_variation"]
    assert plan.header["class_names"] == {"0": "tench", "1": "goldfish"}


def test_img2img_templates_use_the_clip_templates_of_the_class(real_folder):
    from engine.prompts.templates import clip_templates

    plan = build_plan(cfg(real_folder, {"img2img_templates": 1.0}))
    assert all(r.strength == 1.0 and r.guidance == 7.5 for r in plan.rows)   # §2.4, App. C
    # the prompts are the clip_templates recipe's for the class, drawn as a text plan draws them
    text = build_plan(PlanConfig(classes="tench,goldfish", recipes={"clip_templates": 1.0},
                                 images_per_class=3, steps=2, height=32, width=32))
    assert [r.prompt for r in plan.rows if r.label == 0] == \
        [r.prompt for r in text.rows if r.label == 0]
    assert [r.prompt for r in plan.rows if r.label == 1] == \
        [r.prompt for r in text.rows if r.label == 1][:2]
    names = {0: "tench", 1: "goldfish"}
    assert all(r.prompt in {t.format(c=names[r.label]) for t in clip_templates()}
               for r in plan.rows)
    assert len({r.prompt for r in plan.rows if r.label == 0}) == 3
    half = build_plan(cfg(real_folder, {"img2img_templates": 1.0}, strength=0.6))
    assert {r.strength for r in half.rows} == {0.6}


def test_several_recipes_split_each_class(real_folder):
    plan = build_plan(cfg(real_folder, {"image_variation": 1.0, "img2img_templates": 1.0}))
    assert sorted(r.init_image for r in plan.rows) == sorted(
        f"{c}/{n}" for c, ns in FILES.items() if c != "n01484850" for n in ns)
    by = plan.counts("recipe")
    assert sorted(by.values()) == [2, 3] and set(by) == {"image_variation", "img2img_templates"}
    for r in plan.rows:
        assert (r.strength is None) == (r.recipe == "image_variation")


def test_rows_from_a_packed_beton(real_folder, tmp_path):
    from loaders.beton.pack import PackConfig, pack

    beton = str(tmp_path / "real.beton")
    pack(PackConfig(source=real_folder, out=beton, num_workers=1))
    from_folder = build_plan(cfg(real_folder, {"image_variation": 1.0}))
    from_beton = build_plan(cfg(beton, {"image_variation": 1.0}))
    # pack stores the lister's order: sample i of the .beton is the folder's i-th image
    assert [r.init_image for r in from_beton.rows] == ["0", "1", "2", "3", "4"]
    assert [(r.label, r.wnid) for r in from_beton.rows] == \
        [(r.label, r.wnid) for r in from_folder.rows]
    assert from_beton.header["real_images"]["kind"] == "beton"
    assert from_beton.header["real_images"]["images"] == 6


def test_image_plans_are_identical_in_any_process(real_folder, tmp_path):
    outs = []
    for seed in ("0", "2"):
        out = str(tmp_path / f"plan{seed}.jsonl")
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        res = subprocess.run([sys.executable, "-m", "engine.cli", "plan", "--from-images",
                              real_folder, "--classes", "tench,goldfish", "--recipe",
                              "img2img_templates", "--recipe", "image_variation=2", "--steps",
                              "2", "--out", out], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        outs.append(open(out, "rb").read())
    assert outs[0] == outs[1]
    assert "real images: " in res.stdout and "5 rows" in res.stdout


def _plan_cli(args, capsys):
    from engine.cli import main

    code = main(["plan", *args])
    return code, capsys.readouterr().err


def test_bad_inputs_are_one_line(tmp_path, real_folder, capsys):
    out = str(tmp_path / "p.jsonl")
    empty = tmp_path / "empty"
    (empty / "n01440764").mkdir(parents=True)
    code, err = _plan_cli(["--from-images", str(empty), "--recipe", "image_variation",
                           "--out", out], capsys)
    assert code == 2 and "no images in its 1 class folders" in err     # the lister's error
    code, err = _plan_cli(["--recipe", "image_variation", "--out", out], capsys)
    assert code == 2 and "--from-images DIR_OR_BETON" in err
    code, err = _plan_cli(["--from-images", real_folder, "--out", out], capsys)
    assert code == 2 and "image_variation and/or img2img_templates (got c_hc)" in err
    code, err = _plan_cli(["--from-images", real_folder, "--classes", "hammerhead",
                           "--recipe", "image_variation", "--out", out], capsys)
    assert code == 2 and "none of the 6 images" in err and "--classes" in err
    code, err = _plan_cli(["--from-images", real_folder, "--recipe", "img2img_templates",
                           "--strength", "0", "--out", out], capsys)
    assert code == 2 and "strength must be in (0, 1]" in err
    code, err = _plan_cli(["--from-images", str(tmp_path / "nope"), "--recipe",
                           "image_variation", "--out", out], capsys)
    assert code == 2 and "no such folder" in err
    assert not os.path.exists(out)


def test_class_names_are_in_the_header_outside_the_rows_hash(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("solar panel | a panel of photovoltaic cells\nhammerhead\nwind turbine\n")
    plan = build_plan(PlanConfig(classes=str(classes), recipes={"c": 1.0}, images_per_class=2,
                                 steps=2, height=32, width=32))
    assert plan.header["class_names"] == {"0": "solar panel", "1": "hammerhead",
                                          "2": "wind turbine"}
    path = str(tmp_path / "plan.jsonl")
    write_plan(plan, path)
    lines = open(path, encoding="utf-8").read().splitlines()
    assert all("class_names" not in ln for ln in lines[1:])           # rows: unchanged bytes
    assert json.loads(lines[0])["header"]["hash"] == content_hash(plan.rows)
    back = read_plan(path)
    assert back.header["class_names"] == plan.header["class_names"]
    assert back.shard(1, 2).header["class_names"] == plan.header["class_names"]
    # the hash is the rows' alone: a header without the names describes the same rows
    no_names = {k: v for k, v in plan.header.items() if k != "class_names"}
    assert content_hash(back.rows) == no_names["hash"]


def test_the_header_names_imagenet_classes_by_their_first_lemma():
    from engine.catalog import class_names, imagenet_index

    plan = build_plan(PlanConfig(classes="tench,great white shark", recipes={"c": 1.0},
                                 images_per_class=1, steps=2, height=32, width=32))
    index = imagenet_index()
    assert plan.header["class_names"] == {str(index[w]): class_names()[index[w]]
                                          for w in ("n01440764", "n01484850")}

