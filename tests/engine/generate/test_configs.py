"""Every shipped paper setting resolves into a PlanConfig and a GenerateConfig."""
import glob
import os

import pytest

from engine.config import load_config, load_yaml
from engine.generate.config import GenerateConfig
from engine.plan import PlanConfig

CONFIGS = sorted(p for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                  "engine", "configs", "*.yaml"))
                 if "generate" in load_yaml(p))      # generation settings (train_*: training)


def test_configs_exist():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"seed000_sd_imagenet.yaml", "seed002_fakeit_imagenet100_g2.yaml",
            "seed003_diversify_imagenet1k_6x.yaml", "seed004_imagenet100_class_labels.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_resolves(path):
    data = load_yaml(path)
    assert set(data) <= {"plan", "generate", "train", "eval"}, f"{path}: sections only"
    plan = load_config(PlanConfig, path, section="plan")
    assert {k: getattr(plan, k) for k in data["plan"]} == data["plan"]  # every key, as written
    gen = load_config(GenerateConfig, path, section="generate", overrides={"batch_size": 3})
    assert gen.batch_size == 3  # the override wins over the file's value
    assert {k: getattr(gen, k) for k in data["generate"] if k != "batch_size"} == \
        {k: v for k, v in data["generate"].items() if k != "batch_size"}


def test_image_conditioned_configs():
    """Seed 004 §2.4's two real-image strategies: the image-variation model at guidance 3, and
    img2img at strength 1.0 with the 80 CLIP templates."""
    by = {os.path.basename(p): p for p in CONFIGS}
    var = load_config(PlanConfig, by["seed004_imagenet100_real_images.yaml"], section="plan")
    gen = load_config(GenerateConfig, by["seed004_imagenet100_real_images.yaml"],
                      section="generate")
    assert var.recipes == {"image_variation": 1.0} and var.guidance == 3.0
    assert gen.model == "lambdalabs/sd-image-variations-diffusers"
    i2i = load_config(PlanConfig, by["seed004_imagenet100_real_images_and_labels.yaml"],
                      section="plan")
    assert i2i.recipes == {"img2img_templates": 1.0} and (i2i.strength, i2i.guidance) == (1.0, 7.5)
    for cfg in (var, i2i):
        assert cfg.from_images is None          # the user's images: --from-images, required


def test_paper_settings():
    by = {os.path.basename(p): load_yaml(p) for p in CONFIGS}
    s0 = by["seed000_sd_imagenet.yaml"]["plan"]
    assert (s0["sampler"], s0["steps"], s0["guidance"]) == ("pndm", 50, 7.5)
    s2 = by["seed002_fakeit_imagenet100_g2.yaml"]["plan"]
    assert (s2["width"], s2["height"], s2["guidance"]) == (512, 384, 2.0)
    s3 = by["seed003_diversify_imagenet1k_6x.yaml"]
    assert s3["plan"]["height"] == 1024 and s3["generate"]["store_size"] == 256
    assert by["seed004_imagenet100_class_labels.yaml"]["generate"]["clip_threshold"] == 0.3
