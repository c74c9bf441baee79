"""Image-conditioned plans through ``synthclone plan`` and ``synthclone generate`` (seed 004 §2.4;
issue #10 item 4) with tiny models saved in the diffusers layouts users bring, and the plan's
class names stored with generated files (``inspect``/``export`` show custom class names)."""
import csv
import json
import os

import pytest

from engine.cli import main
from tests.engine.generate.helpers import read_all
from tests.engine.test_plan_images import fake_image_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from engine.generate.models import load_model

    root = tmp_path_factory.mktemp("models")
    for name in ("tiny", "tiny-variation"):
        load_model(name).save_pretrained(root / name)
    return {n: str(root / n) for n in ("tiny", "tiny-variation")}


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    return fake_image_folder(tmp_path_factory.mktemp("real") / "train", size=(40, 32))


GEN = ["--batch-size", "2", "--no-progress", "--no-durable", "--workers", "1", "--dtype", "fp32"]


def _plan(tmp_path, source, recipe, *extra):
    out = str(tmp_path / f"{recipe}.jsonl")
    assert main(["plan", "--from-images", source, "--classes", "tench,goldfish", "--recipe",
                 recipe, "--steps", "2", "--height", "32", "--width", "32", *extra,
                 "--out", out]) == 0
    return out


def _ffcv_labels(path):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    loader = Loader(path, batch_size=8, num_workers=1, order=OrderOption.SEQUENTIAL,
                    drop_last=False,
                    pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()],
                               "sample_id": [IntDecoder()], "recipe": [IntDecoder()],
                               "prompt": None})
    _, labels, sids, _ = next(iter(loader))
    return dict(zip(sids.ravel().tolist(), labels.ravel().tolist()))


@pytest.mark.timeout(600)
def test_image_variation_plan_generates_with_an_image_variation_folder(models, real_folder,
                                                                       tmp_path, capsys):
    plan = _plan(tmp_path, real_folder, "image_variation", "--guidance", "3")
    out = str(tmp_path / "var.beton")
    # no --real: the plan says where its images are
    assert main(["generate", plan, "--out", out, "--model", models["tiny-variation"],
                 *GEN]) == 0, capsys.readouterr().err
    assert _ffcv_labels(out) == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    stored = read_all(out)
    assert len({v[2] for v in stored.values()}) == 5                  # five different images
    state = json.load(open(tmp_path / "var.run" / "state.json"))
    assert state["settings"]["real"] == os.path.abspath(real_folder)
    # a model without an image encoder: one line, exit 2, nothing written
    capsys.readouterr()
    bad = str(tmp_path / "bad.beton")
    assert main(["generate", plan, "--out", bad, "--model", models["tiny"], *GEN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image variation (real image, CLIP image encoder) rows" in err[0]
    assert "StableDiffusionImageVariationPipeline" in err[0]
    assert not os.path.exists(bad) and not os.path.exists(tmp_path / "bad.run")


@pytest.mark.timeout(600)
def test_img2img_templates_plan_from_a_beton_generates(models, real_folder, tmp_path, capsys):
    from loaders.beton.pack import PackConfig, pack

    beton = str(tmp_path / "real.beton")
    pack(PackConfig(source=real_folder, out=beton, num_workers=1))
    plan = _plan(tmp_path, beton, "img2img_templates")
    out = str(tmp_path / "i2i.beton")
    assert main(["generate", plan, "--out", out, "--model", models["tiny"], *GEN]) == 0, \
        capsys.readouterr().err
    stored = read_all(out)
    assert sorted(stored) == [0, 1, 2, 3, 4]
    assert all(v[3].endswith(("tench.", "goldfish.")) for v in stored.values())  # the templates
    # the same plan with an image-variation model is refused before any work
    capsys.readouterr()
    assert main(["generate", plan, "--out", str(tmp_path / "x.beton"), "--model",
                 models["tiny-variation"], *GEN]) == 2
    assert "img2img (real image + prompt) rows" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_generated_files_store_the_plans_custom_class_names(models, tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("solar panel | a panel of photovoltaic cells\nhammerhead\n")
    plan = str(tmp_path / "plan.jsonl")
    assert main(["plan", "--classes", str(classes), "--recipe", "c", "--images-per-class", "2",
                 "--steps", "2", "--height", "32", "--width", "32", "--out", plan]) == 0
    out = str(tmp_path / "clone.beton")
    assert main(["generate", plan, "--out", out, "--model", "tiny", *GEN]) == 0
    capsys.readouterr()
    assert main(["inspect", out, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # a custom class by its name (before: its label); an ImageNet class with its wnid
    assert summary["class_names"] == {"0": "solar panel", "1": "n01494475 hammerhead"}
    assert summary["class_names_source"] == "file"
    exported = str(tmp_path / "exported")
    assert main(["export", out, "--out", exported]) == 0
    with open(os.path.join(exported, "samples.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["label"], r["class_name"]) for r in rows} == {("0", "solar panel"),
                                                             ("1", "hammerhead")}
