"""Image-conditioned generation (seed 004 §2.4) and the CLIP filter (§4.5), with tiny models."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from engine.generate.config import GenerateConfig
from engine.generate.runner import GenerateError, generate
from tests.engine.generate.helpers import make_plan, read_all


def cfg(**kw):
    return GenerateConfig(**{**dict(model="tiny", batch_size=4, progress=False, durable=False,
                                    writer_workers=1), **kw})


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    for k in range(2):
        img = (rng.random((48, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"img{k}.png")
    return str(d)


def _plan_with(init, strength, per_class=2):
    from dataclasses import replace

    from engine.plan import Plan

    p = make_plan(per_class=per_class, steps=4, size=32, classes=[(0, "n01440764", "tench")])
    rows = [replace(r, init_image=init(r), strength=strength) for r in p.rows]
    return Plan(dict(p.header), rows)


def test_img2img_rows_depend_on_their_seed_and_strength(real_folder, tmp_path):
    half = _plan_with(lambda r: "img0.png", 0.5)
    a = read_all(generate(half, str(tmp_path / "s50.beton"), cfg(real=real_folder))["out"])
    assert not np.array_equal(a[0][1], a[1][1])      # same image and prompt, per-row noise
    full = _plan_with(lambda r: "img0.png", 1.0)
    b = read_all(generate(full, str(tmp_path / "s100.beton"), cfg(real=real_folder))["out"])
    assert not np.array_equal(a[0][1], b[0][1])      # the strength reaches the sampler


def test_variation_from_real_images(real_folder, tmp_path):
    plan = _plan_with(lambda r: f"img{r.sample_id % 2}.png", None)
    with pytest.raises(ValueError, match="--real"):
        generate(plan, str(tmp_path / "x.beton"), cfg(model="tiny-variation"))
    with pytest.raises(ValueError, match=r"image variation .* rows, which --model tiny \(a "
                                         r"StableDiffusionPipeline\) cannot generate.*"
                                         r"lambdalabs/sd-image-variations-diffusers"):
        generate(plan, str(tmp_path / "y.beton"), cfg(real=real_folder))
    out = generate(plan, str(tmp_path / "v.beton"), cfg(model="tiny-variation",
                                                       real=real_folder))["out"]
    assert sorted(read_all(out)) == [0, 1]
    assert not os.path.exists(tmp_path / "y.beton") and not os.path.exists(tmp_path / "y.run")


TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                            "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                          "layers": 1}}
CLIP_CLASSES = [(4, "n01494475", "hammerhead"), (7, "n01514668", "cock")]
"""ImageNet classes whose CLIP template names differ from their first lemma."""


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    path = tmp_path_factory.mktemp("clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(path))
    return "tiny-clip"


def _reference_scores(model_name, images, texts):
    """Cosine similarities computed with open_clip directly (its eval transform: resize +
    center crop), with the same seeded random weights as engine.clip."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name)
    model.eval()
    tok = open_clip.get_tokenizer(model_name)
    with torch.no_grad():
        f = model.encode_image(torch.stack([preprocess(Image.fromarray(im)) for im in images]))
        t = model.encode_text(tok(texts))
    f, t = f / f.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
    return (f * t).sum(-1).tolist()


def test_clip_filter_scores_against_clip_class_names_and_records_drops(tiny_clip, tmp_path,
                                                                       monkeypatch):
    from engine.generate.clip_filter import ClipFilter

    seen = {}                                   # sample_id -> the uint8 image the filter saw
    keep = ClipFilter.keep

    def spy(self, rows, images):
        seen.update({r.sample_id: images[k].numpy().copy() for k, r in enumerate(rows)})
        return keep(self, rows, images)

    monkeypatch.setattr(ClipFilter, "keep", spy)
    from dataclasses import replace

    from engine.plan import Plan

    wide = make_plan(per_class=3, steps=2, classes=CLIP_CLASSES)
    plan = Plan(wide.header, [replace(r, height=32, width=64) for r in wide.rows])  # crop matters
    base = dict(clip_filter=True, clip_model=tiny_clip, clip_random_weights=True,
                store_size=None)
    summary = generate(plan, str(tmp_path / "keep.beton"), cfg(clip_threshold=-1.0, **base))
    assert summary["guards"]["dropped_clip"] == 0 and summary["written"] == 6
    with pytest.raises(GenerateError, match="6 CLIP-dropped"):
        generate(plan, str(tmp_path / "drop.beton"), cfg(clip_threshold=1.01, **base))
    dropped = json.load(open(tmp_path / "drop.run" / "dropped.json"))["clip_dropped"]
    assert sorted(d["sample_id"] for d in dropped) == list(range(6))
    texts = {d["label"]: d["class_text"] for d in dropped}
    assert texts == {4: "a photo of a hammerhead shark", 7: "a photo of a rooster"}  # §4.5
    # the recorded scores are CLIP's own (resize + center crop) of the generated images
    ids = sorted(seen)
    assert ids == list(range(6)) and seen[0].shape == (32, 64, 3)
    ref = _reference_scores(tiny_clip, [seen[i] for i in ids],
                            [texts[plan.rows[i].label] for i in ids])
    for d in dropped:
        assert abs(d["clip_score"] - ref[d["sample_id"]]) < 1e-3, (d, ref)
    # a threshold between the scores keeps exactly the images at or above it
    scores = sorted(d["clip_score"] for d in dropped)
    thr = (scores[2] + scores[3]) / 2
    s = generate(plan, str(tmp_path / "half.beton"), cfg(clip_threshold=thr, **base))
    assert s["guards"]["dropped_clip"] == 3 and len(read_all(s["out"])) == 3
    half = json.load(open(tmp_path / "half.run" / "dropped.json"))["clip_dropped"]
    assert all(d["clip_score"] < thr for d in half)


def test_clip_filter_needs_real_weights(tmp_path, capsys):
    from engine.cli import main
    from engine.plan import write_plan

    with pytest.raises(ValueError, match="--clip-pretrained"):
        cfg(clip_filter=True)
    plan_path = str(tmp_path / "plan.jsonl")
    write_plan(make_plan(per_class=1), plan_path)
    assert main(["generate", plan_path, "--out", str(tmp_path / "x.beton"), "--model", "tiny",
                 "--clip-filter"]) == 2
    err = capsys.readouterr().err
    assert "needs CLIP weights: pass --clip-pretrained" in err and len(err.splitlines()) <= 2
    assert sorted(os.listdir(tmp_path)) == ["plan.jsonl"]


def test_clip_names_of_custom_classes(tmp_path):
    from engine.generate.clip_filter import clip_class_names
    from engine.plan import Plan, PlanConfig, build_plan

    classes = tmp_path / "classes.txt"
    classes.write_text("solar panel | a panel of photovoltaic cells\nhammerhead\n")
    plan = build_plan(PlanConfig(classes=str(classes), recipes={"c": 1.0}, images_per_class=1,
                                 steps=2, height=32, width=32))
    assert clip_class_names(plan, plan.rows) == {0: "solar panel", 1: "hammerhead shark"}
    # the plan header names its classes: the class file is not needed again
    gone = {**plan.header, "config": {"classes": str(tmp_path / "gone.txt")}}
    assert clip_class_names(Plan(gone, plan.rows), plan.rows)[0] == "solar panel"
    named = Plan({**gone, "class_names": {"0": "photovoltaic panel"}}, plan.rows)
    assert clip_class_names(named, named.rows)[0] == "photovoltaic panel"
    # an older plan without class_names whose class file is gone cannot name them
    orphan = Plan({k: v for k, v in gone.items() if k != "class_names"}, plan.rows)
    with pytest.raises(ValueError, match="does not name its custom class"):
        clip_class_names(orphan, orphan.rows)


def _tiny_safety_checker(weight: float):
    """A random-weight safety checker; ``weight`` -10 flags every image, +10 none."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    tiny = dict(hidden_size=32, intermediate_size=37, num_attention_heads=2, num_hidden_layers=1)
    torch.manual_seed(0)
    sc = StableDiffusionSafetyChecker(CLIPConfig(
        text_config=tiny, vision_config=dict(tiny, image_size=32, patch_size=8), projection_dim=32))
    with torch.no_grad():
        sc.concept_embeds_weights.fill_(weight)
        sc.special_care_embeds_weights.fill_(weight)
    fe = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return sc, fe


@pytest.mark.parametrize("weight,flagged", [(10.0, 0), (-10.0, 6)])
def test_safety_checker_flags_are_resampled(tmp_path, weight, flagged):
    from engine.generate.models import load_model

    pipe = load_model("tiny")
    pipe.safety_checker, pipe.feature_extractor = _tiny_safety_checker(weight)
    plan = make_plan(per_class=2, steps=2, size=32)
    out = str(tmp_path / "s.beton")
    if flagged:
        with pytest.raises(GenerateError, match="6 rows failed after 0 re-samples"):
            generate(plan, out, cfg(max_resample=0), model=pipe)
        g = json.load(open(tmp_path / "s.run" / "summary.json"))["guards"]
        assert g["nsfw_flagged"] == 6 and g["failed"] == 6
    else:
        s = generate(plan, out, cfg(), model=pipe)
        assert s["guards"]["nsfw_flagged"] == 0 and s["written"] == 6


def test_real_images_from_a_beton(real_folder, tmp_path):
    from ffcv.fields import IntField, RGBImageField

    from loaders.beton import BetonWriter

    real = str(tmp_path / "real.beton")
    rng = np.random.default_rng(1)
    with BetonWriter(real, num_samples=2, fields={"image": RGBImageField(write_mode="raw"),
                                                 "label": IntField()}, num_workers=0) as w:
        for i in range(2):
            w.append(i, {"image": (rng.random((32, 32, 3)) * 255).astype(np.uint8), "label": 0})
    plan = _plan_with(lambda r: str(r.sample_id % 2), 0.5)
    with pytest.raises(ValueError, match="sample index"):
        generate(_plan_with(lambda r: "img0.png", 0.5), str(tmp_path / "bad.beton"), cfg(real=real))
    imgs = read_all(generate(plan, str(tmp_path / "b.beton"), cfg(real=real))["out"])
    assert not np.array_equal(imgs[0][1], imgs[1][1])       # two different source images
