"""The paper configs of engine/configs (issue #10 item 2): each loads, builds a plan at a small
size, and carries the papers' model ids and settings; seed 002's need the real per-class counts
(--counts-from a train folder or the devkit's meta.mat) and say so without them."""
import glob
import json
import os

import pytest

from engine.catalog import get_class_set
from engine.config import load_config
from engine.generate.config import GenerateConfig
from engine.plan import PlanConfig, build_plan, read_plan

from .prompts.servers import FakeChatServer
from .imagenet_fakes import fake_meta_mat, fake_train_folder

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "engine", "configs")
PAPER_CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CONFIG_DIR, "seed*.yaml")))

# config -> (model, guidance, steps, sampler, (width, height), store_size, classes, recipes)
EXPECTED = {
    "seed000_sd_imagenet.yaml": ("CompVis/stable-diffusion-v1-1", 7.5, 50, "pndm", (512, 512),
                                 512, "imagenet1k", {"complex": 1.0}),
    "seed002_fakeit_imagenet100_g7.5.yaml": ("CompVis/stable-diffusion-v1-4", 7.5, 50, "pndm",
                                             (512, 384), 512, "imagenet100",
                                             {"c_hc_inside_b": 1.0}),
    "seed002_fakeit_imagenet100_g2.yaml": ("CompVis/stable-diffusion-v1-4", 2.0, 50, "pndm",
                                           (512, 384), 512, "imagenet100",
                                           {"c_hc_inside_b": 1.0}),
    "seed002_fakeit_imagenet100_10x.yaml": ("CompVis/stable-diffusion-v1-4", 7.5, 50, "pndm",
                                            (512, 384), 512, "imagenet100", {"s1_mix": 1.0}),
    "seed002_fakeit_imagenet1k_c_dc.yaml": ("CompVis/stable-diffusion-v1-4", 7.5, 50, "pndm",
                                            (512, 384), 512, "imagenet1k", {"c_dc": 1.0}),
    "seed002_fakeit_imagenet1k_c_hc_inside_b.yaml": ("CompVis/stable-diffusion-v1-4", 7.5, 50,
                                                     "pndm", (512, 384), 512, "imagenet1k",
                                                     {"c_hc_inside_b": 1.0}),
    "seed003_diversify_imagenet1k_6x.yaml": ("stabilityai/stable-diffusion-xl-base-1.0", 2.0, 50,
                                             "dpmpp", (1024, 1024), 256, "imagenet1k",
                                             {"cd": 1.0, "sd": 1.0}),
    "seed003_diversify_imagenet1k_2x.yaml": ("stabilityai/stable-diffusion-xl-base-1.0", 2.0, 50,
                                             "dpmpp", (1024, 1024), 256, "imagenet1k",
                                             {"cd": 1.0, "sd": 1.0}),
    "seed004_imagenet100_class_labels.yaml": ("runwayml/stable-diffusion-v1-5", 7.5, 50, "pndm",
                                              (512, 512), 512, "imagenet100",
                                              {"clip_templates": 1.0}),
    "seed004_imagenet100_real_images.yaml": ("lambdalabs/sd-image-variations-diffusers", 3.0,
                                             50, "pndm", (512, 512), 512, "imagenet100",
                                             {"image_variation": 1.0}),
    "seed004_imagenet100_real_images_and_labels.yaml": ("runwayml/stable-diffusion-v1-5", 7.5,
                                                        50, "pndm", (512, 512), 512,
                                                        "imagenet100",
                                                        {"img2img_templates": 1.0}),
}


def path_of(name):
    return os.path.join(CONFIG_DIR, name)


def test_every_paper_config_is_listed():
    assert PAPER_CONFIGS == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_carries_the_papers_settings(name):
    model, guidance, steps, sampler, (w, h), store, classes, recipes = EXPECTED[name]
    plan = load_config(PlanConfig, path_of(name), section="plan")
    gen = load_config(GenerateConfig, path_of(name), section="generate")
    assert gen.model == model and gen.store_size == store
    assert (plan.guidance, plan.steps, plan.sampler, plan.width, plan.height) == (
        guidance, steps, sampler, w, h)
    assert plan.classes == classes and plan.recipes == recipes
    assert plan.require_counts == name.startswith("seed002")


def test_seed002_counts_and_multiplier_settings():
    assert load_config(PlanConfig, path_of("seed002_fakeit_imagenet100_10x.yaml"),
                       section="plan").counts_multiplier == 10
    sizes = {n: load_config(PlanConfig, path_of(n), section="plan").images_per_class
             for n in ("seed003_diversify_imagenet1k_6x.yaml", "seed003_diversify_imagenet1k_2x.yaml")}
    assert sizes == {"seed003_diversify_imagenet1k_6x.yaml": 7200,  # 6x ImageNet (7.2M)
                     "seed003_diversify_imagenet1k_2x.yaml": 2400}  # 2x (2.4M)
    s3 = load_config(PlanConfig, path_of("seed003_diversify_imagenet1k_6x.yaml"), section="plan")
    assert s3.recipe_options["llm_model"] == "gpt-3.5-turbo"
    assert s3.recipe_options["meanings"].endswith(".json") and s3.recipe_options["per_class"] == 600


@pytest.fixture(scope="module")
def counts_sources(tmp_path_factory):
    """A fake ImageNet-100 train folder (1-3 images per class) and a fake devkit meta.mat of
    the 1000 classes (1-2 images each)."""
    root = tmp_path_factory.mktemp("counts")
    in100 = [c.wnid for c in get_class_set("imagenet100")]
    folder = fake_train_folder(root / "train", {w: 1 + i % 3 for i, w in enumerate(in100)})
    in1k = [c.wnid for c in get_class_set("imagenet1k")]
    meta = fake_meta_mat(root / "meta.mat", {w: 1 + i % 2 for i, w in enumerate(in1k)})
    two = fake_train_folder(root / "train2", {w: 2 for w in in100})
    return {"imagenet100_2": str(two),
            "imagenet100": (str(folder), {w: 1 + i % 3 for i, w in enumerate(in100)}),
            "imagenet1k": (str(meta), {w: 1 + i % 2 for i, w in enumerate(in1k)})}


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path / "cache"))


def _meanings_for(path, classes):
    path.write_text(json.dumps({c.wnid: f"the {c.name}" for c in get_class_set(classes)}))
    return str(path)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_builds_a_small_plan(name, tmp_path, counts_sources, places365_file,
                                    isolated_cache, capsys):
    from engine.cli import main

    cfg = load_config(PlanConfig, path_of(name), section="plan")
    out = tmp_path / "plan.jsonl"
    args = ["plan", "--config", path_of(name), "--out", str(out)]
    if {"c_hc_inside_b", "s1_mix"} & set(cfg.recipes):
        args += ["--backgrounds", places365_file]
    if cfg.require_counts:
        source, counts = counts_sources[cfg.classes]
        args += ["--counts-from", source]
    elif {"image_variation", "img2img_templates"} & set(cfg.recipes):   # one row per image
        args += ["--from-images", counts_sources["imagenet100_2"]]
    else:
        args += ["--images-per-class", "2"]
    classes = cfg.classes
    with FakeChatServer("markdown_mix") as server:
        if "cd" in cfg.recipes:
            classes = "imagenet100"  # one loopback LLM call per class: keep it to 100 classes
            args += ["--classes", classes, "--llm-url", server.url, "--meanings",
                     _meanings_for(tmp_path / "m.json", classes)]
        assert main(args) == 0, capsys.readouterr().err
    plan = read_plan(str(out))
    n_classes = len(get_class_set(classes))
    if cfg.require_counts:
        expected = {w: n * int(cfg.counts_multiplier) for w, n in counts.items()}
        assert plan.counts("wnid") == expected                 # real counts (x 10 for 10x)
        assert plan.header["counts"]["source"] == source
        assert plan.header["counts"]["per_class"] == counts
    else:
        assert len(plan) == 2 * n_classes
    assert set(plan.counts("recipe")) == set(cfg.recipes)
    r = plan.rows[0]
    assert (r.guidance, r.steps, r.sampler, r.width, r.height) == (
        cfg.guidance, cfg.steps, cfg.sampler, cfg.width, cfg.height)
    if "cd" in cfg.recipes:
        rc = plan.header["config"]["recipe_config"]["cd"]
        assert rc["backend"] == "llm" and rc["model"] == "gpt-3.5-turbo"
        assert "notes" not in plan.header                     # the paper's method: no warning


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.startswith("seed002")])
def test_seed002_configs_stop_without_counts(name, tmp_path, capsys, places365_file):
    from engine.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["plan", "--config", path_of(name), "--backgrounds", places365_file,
                 "--out", str(out)]) == 2
    assert "--counts-from" in capsys.readouterr().err and not out.exists()


def test_seed003_config_needs_its_meanings_file(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--config", path_of("seed003_diversify_imagenet1k_2x.yaml"),
                 "--images-per-class", "2", "--out", str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "meanings_imagenet1k.json" in err and "synthclone meanings" in err
