"""Dataset diagnostics: CLIP diversity and score, IS, FID, the generated-image detector, and
``synthclone eval-data`` end to end (tiny random networks saved in the formats users bring)."""
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.eval import clip_stats, detector, inception
from engine.eval.images import ImageDataset, UInt8Transform
from engine.catalog import imagenet_wnids
from tests.engine.eval import fakes

TINY_CLIP = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                             "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                          "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    d = tmp_path_factory.mktemp("clip")
    (d / "synthclone-eval-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(d / "synthclone-eval-tiny-clip.json"))
    torch.manual_seed(0)
    model = open_clip.create_model("synthclone-eval-tiny-clip")
    torch.save(model.state_dict(), d / "tiny-clip.pt")
    return "synthclone-eval-tiny-clip", str(d / "tiny-clip.pt")


def test_clip_diversity_by_hand_and_identical_images(tiny_clip):
    from engine.clip import load_clip

    assert clip_stats.diversity(np.eye(3)) == pytest.approx(1.0)          # orthogonal
    e = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])                     # cos .6, 0, .8
    assert clip_stats.diversity(e) == pytest.approx(1 - (0.6 + 0.0 + 0.8) / 3)
    clip = load_clip(tiny_clip[0], tiny_clip[1])
    same = [Image.new("RGB", (40, 30), (120, 30, 200))] * 4
    assert clip_stats.diversity(clip.encode_images(same).numpy()) == pytest.approx(0.0, abs=1e-6)
    varied = [fakes.image(f"/tmp/_div{i}.png", i) for i in range(4)]
    emb = clip.encode_images([Image.open(p) for p in varied]).numpy()
    assert clip_stats.diversity(emb) > 1e-4


def test_clip_score_against_class_prompts_by_hand():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = np.array([3, 3, 7])
    text = {3: np.array([1.0, 0.0]), 7: np.array([0.8, 0.6])}
    summary, scores = clip_stats.clip_report(emb, labels, text, threshold=0.5)
    assert scores.tolist() == pytest.approx([1.0, 0.0, 0.96])
    assert summary["share_below_threshold"] == pytest.approx(1 / 3)
    w3 = imagenet_wnids()[3]
    assert summary["score_per_class"][w3] == pytest.approx(0.5)
    assert summary["diversity_per_class"] == {w3: pytest.approx(1.0)}  # class 7 has 1 image


def test_inception_score_of_uniform_and_of_confident_outputs():
    class Uniform(torch.nn.Module):  # an "Inception" whose class probabilities are uniform
        def forward(self, x):
            n = len(x)
            return torch.zeros(n, 2048), torch.zeros(n, 1008)

    data = ImageDataset([fakes.image(f"/tmp/_is{i}.png", i) for i in range(6)], UInt8Transform(32))
    _, logits = inception.inception_features(Uniform(), data, batch_size=4)
    assert inception.inception_score(logits, splits=2)["mean"] == pytest.approx(1.0)
    confident = np.zeros((8, 1008))
    confident[:4, 0] = confident[4:, 1] = 60.0     # one-hot over two classes, evenly used
    assert inception.inception_score(confident, splits=1)["mean"] == pytest.approx(2.0)


def test_fid_of_a_set_against_itself_and_a_shifted_copy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 8))
    assert inception.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    delta = np.array([1.0, 2.0, 0, 0, 0, 0, 0, 2.0])
    assert inception.fid(a, a + delta) == pytest.approx(float(delta @ delta), abs=1e-6)
    pc = inception.per_class_fid(a, np.repeat([0, 1, 2], 100), a + delta,
                                 np.repeat([0, 1, 5], 100))
    assert pc["classes"] == 2 and pc["mean"] == pytest.approx(9.0, abs=1e-6)


@pytest.mark.parametrize("n_a,n_b,d", [(40, 25, 64), (90, 120, 16), (30, 200, 24)])
def test_fast_fid_equals_torch_fidelity(n_a, n_b, d):
    rng = np.random.default_rng(n_a)
    a = rng.standard_normal((n_a, d)) @ rng.standard_normal((d, d)) * 0.3
    b = rng.standard_normal((n_b, d)) + 0.5
    assert inception.fid(a, b) == pytest.approx(inception.fid_reference(a, b), rel=1e-6,
                                                abs=1e-6)


def test_local_inception_file_runs_and_bad_files_are_errors(tmp_path):
    path = fakes.inception_weights(str(tmp_path / "inception.pth"))
    net = inception.load_inception(path)
    data = ImageDataset([fakes.image(str(tmp_path / f"{i}.png"), i) for i in range(2)],
                        UInt8Transform(64))
    pool, logits = inception.inception_features(net, data, batch_size=2)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    with pytest.raises(inception.InceptionError, match="not found"):
        inception.load_inception(str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(inception.InceptionError, match="not torch-fidelity's Inception"):
        inception.load_inception(str(tmp_path / "wrong.pth"))


def test_detector_separable_and_random_features():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 32)) + 3.0
    gen = rng.standard_normal((300, 32)) - 3.0

    class Cfg:
        iterations, batch_size, lr, hidden, arch = 200, 128, 1e-3, 64, "toy"

    out = detector.detector_report(real, gen, 250, Cfg, seed=0)
    assert out["linear"]["top1"] == 100.0 and out["mlp"]["top1"] == 100.0
    assert out["train_images"] == 500 and out["test_images"] == 100
    noise = detector.detector_report(rng.standard_normal((1000, 32)),
                                     rng.standard_normal((1000, 32)), 800, Cfg, seed=0)
    assert abs(noise["linear"]["top1"] - 50) < 12 and abs(noise["mlp"]["top1"] - 50) < 12
    r, g, n_train = detector.split_real_generated(50, 8000, 10000, 2000, 0)
    assert len(r) == len(g) == 50 and n_train == round(50 * 10 / 12)


@pytest.mark.timeout(600)
def test_eval_data_cli_end_to_end(tiny_clip, tmp_path, capsys):
    # identical images within class 1 of the generated file: its CLIP diversity must be 0
    same = np.asarray(Image.open(fakes.image(str(tmp_path / "s.png"), 99, (40, 32))))
    imgs = [np.asarray(Image.open(fakes.image(str(tmp_path / f"g{i}.png"), i, (40, 32))))
            for i in range(6)]
    gen = fakes.beton(str(tmp_path / "gen.beton"), [0, 0, 0, 1, 1, 1],
                      images=imgs[:3] + [same] * 3)
    ref = fakes.beton(str(tmp_path / "real.beton"), [0, 0, 0, 1, 1, 1], seed=50)
    inc = fakes.inception_weights(str(tmp_path / "inception.pth"))
    backbone = fakes.tiny_checkpoint(str(tmp_path / "r.pt"))
    out = str(tmp_path / "out")
    assert main(["eval-data", gen, "--reference", ref, "--clip-model", tiny_clip[0],
                 "--clip-pretrained", tiny_clip[1], "--inception", inc, "--is-splits", "2",
                 "--detector.weights", backbone, "--detector.arch", "test_resnet",
                 "--detector.train-images", "4", "--detector.test-images", "2",
                 "--detector.iterations", "5", "--detector.batch-size", "2",
                 "--workers", "0", "--no-progress", "-o", out]) == 0
    res = json.load(open(os.path.join(out, "results.json")))
    assert res["file"]["num_images"] == 6 and res["file"]["num_classes"] == 2
    w0, w1 = imagenet_wnids()[:2]
    assert res["clip"]["diversity_per_class"][w1] == pytest.approx(0.0, abs=1e-6)
    assert res["clip"]["diversity_per_class"][w0] > 0
    assert 0 <= res["clip"]["share_below_threshold"] <= 1
    assert res["inception"]["inception_score"]["mean"] >= 1.0 - 1e-9
    assert res["inception"]["fid"] >= 0 and res["inception"]["fid_per_class"]["classes"] == 2
    det = res["detector"]
    assert det["train_images"] == 4 and det["test_images"] == 2
    assert res["skipped"] == []
    with Image.open(os.path.join(out, "clip_scores.png")) as im:
        assert im.size == (800, 500)
    # nothing optional given: every part is skipped and says which flag to pass
    capsys.readouterr()
    assert main(["eval-data", gen, "--workers", "0", "-o", str(tmp_path / "bare")]) == 0
    skipped = json.load(open(tmp_path / "bare" / "results.json"))["skipped"]
    assert any("--clip-pretrained" in s for s in skipped) and any("--inception" in s
                                                                  for s in skipped)
    assert main(["eval-data", str(tmp_path / "nope.beton"), "-o", str(tmp_path / "x")]) == 2
    assert "no such .beton" in capsys.readouterr().err
    assert math.isfinite(res["inception"]["fid_per_class"]["mean"])
