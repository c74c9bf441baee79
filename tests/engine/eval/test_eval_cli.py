"""``synthclone eval`` end to end on tiny fakes, against an independent reference: images are
placed so that the model (random weights) is right on a known share of them."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.eval.checkpoint import build_model
from engine.catalog import imagenet_wnids
from engine.eval.labels import subset_labels
from engine.eval.robustness import logit, sigmoid_percent
from tests.engine.eval import fakes
from tests.engine.eval.beton_refs import center_crop_reference, decoded

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference_logits(model, paths, size=32, border=0):
    """Logits by plain torchvision functional ops (independent of engine.eval's pipeline)."""
    import torchvision.transforms.functional as TF

    xs = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if border:
            im = im.crop((border, border, im.width - border, im.height - border))
        im = TF.center_crop(TF.resize(im, size), size)
        xs.append(TF.normalize(TF.to_tensor(im), MEAN, STD))
    with torch.no_grad():
        return model(torch.stack(xs)).numpy()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A checkpoint and sets where the model is right on exactly half of each set's images."""
    tmp = tmp_path_factory.mktemp("world")
    ckpt = fakes.tiny_checkpoint(str(tmp / "model.pt"), seed=3)
    model, _ = build_model("test_resnet", 1000)
    model.load_state_dict(torch.load(ckpt))
    model.eval()
    pool = [fakes.image(str(tmp / "pool" / f"{i}.png"), 1000 + i, (48, 40)) for i in range(8)]
    wnids = imagenet_wnids()

    def place(root, label_of, ext=".JPEG"):
        """Copy pool images into root/<wnid>: even ones into the predicted class, odd ones
        into another class. Returns the expected top-1."""
        for i, p in enumerate(pool):
            right, wrong = label_of(i)
            label = right if i % 2 == 0 else wrong
            dst = os.path.join(root, wnids[label], f"{i}{ext}")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            Image.open(p).convert("RGB").save(dst, quality=100) if ext == ".JPEG" else \
                shutil.copy(p, dst)
        return 50.0

    val = str(tmp / "val")
    # JPEG re-encoding changes pixels: predict on the saved copies, then move them
    full = reference_logits(model, pool)
    place(val, lambda i: (int(full[i].argmax()), int(full[i].argmin())), ext=".png")
    r_labels = np.asarray(subset_labels("imagenet-r"))
    rl = reference_logits(model, pool)[:, r_labels]
    r = str(tmp / "imagenet-r")
    place(r, lambda i: (int(r_labels[rl[i].argmax()]), int(r_labels[rl[i].argmin()])), ".png")
    # a labelled .beton of the same images, labels = prediction for even, other for odd
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in pool]
    gen = fakes.beton(str(tmp / "gen.beton"), [0] * 8, images=arrays)
    # .beton sets go through the loaders' eval pipeline: FFCV's decoder, center crop 32/32
    with torch.no_grad():
        bl = model(center_crop_reference(decoded(gen, range(8), "ffcv"), 32, 32)).numpy()
    labels = [int(bl[i].argmax()) if i % 2 == 0 else int(bl[i].argmin()) for i in range(8)]
    os.remove(gen)
    gen = fakes.beton(str(tmp / "gen.beton"), labels, images=arrays)
    # ObjectNet: two classes; class A maps to {pred of image 0, 1 other}, images 0,2 in A
    ob = reference_logits(model, pool, border=2)
    mapping = {"aaa": ("Class A", sorted({int(ob[0].argmax()), int(ob[2].argmax())} | {5})),
               "bbb": ("Class B", [7])}
    on = fakes.objectnet(str(tmp / "on"), mapping, unmapped=("zzz",), per_class=0)
    imgs = os.path.join(on, "objectnet-1.0", "images")
    for i, folder in ((0, "aaa"), (2, "aaa"), (1, "bbb")):
        os.makedirs(os.path.join(imgs, folder), exist_ok=True)
        shutil.copy(pool[i], os.path.join(imgs, folder, f"{i}.png"))
    os.makedirs(os.path.join(imgs, "zzz"), exist_ok=True)
    shutil.copy(pool[3], os.path.join(imgs, "zzz", "3.png"))
    cols = sorted(set(mapping["aaa"][1]) | {7})
    pooled = lambda i: ob[i][cols].argmax()  # noqa: E731
    on_expected = 100 * np.mean([cols[pooled(0)] in mapping["aaa"][1],
                                 cols[pooled(2)] in mapping["aaa"][1], cols[pooled(1)] == 7])
    csv = tmp / "baselines.csv"
    csv.write_text("shift,id_top1,ood_top1,model\nimagenet-r,40,10,a\nimagenet-r,60,20,b\n"
                   "imagenet-r,80,45,c\n")
    for corruption in ("fog", "snow"):  # ImageNet-C: the val images at severity 5
        shutil.copytree(val, str(tmp / "c" / corruption / "5"))
    return {"tmp": tmp, "ckpt": ckpt, "val": val, "r": r, "gen": gen, "on": on,
            "on_expected": on_expected, "csv": str(csv), "c": str(tmp / "c")}


def _eval(world, out, *extra):
    argv = ["eval", world["ckpt"], "--arch", "test_resnet", "--sets",
            f"imagenet-val={world['val']},imagenet-r={world['r']},objectnet={world['on']},"
            f"gen-val={world['gen']},imagenet-c={world['c']}", "--baselines", world["csv"],
            "--resize", "32",
            "--crop", "32", "--workers", "0", "--no-progress", "-o", out, *extra]
    assert main(argv) == 0
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


@pytest.mark.timeout(600)
def test_eval_matches_the_reference_and_the_cache(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path / "cache"))
    # training counts: val's class folders get 1000, 500, 100, 1000, ... images (sorted order)
    folders = sorted(os.listdir(world["val"]))
    counts = {w: (1000, 500, 100)[i % 3] for i, w in enumerate(folders)}
    (tmp_path / "counts.txt").write_text("".join(f"{w} {n}\n" for w, n in counts.items()))
    expected = {}
    for split, lo, hi in (("many", 801, 10**9), ("medium", 300, 800), ("few", 0, 299)):
        hits = [int(f.split(".")[0]) % 2 == 0 for w in folders if lo <= counts[w] <= hi
                for f in os.listdir(os.path.join(world["val"], w))]
        expected[split] = (100.0 * sum(hits) / len(hits), len(hits)) if hits else None
    res = _eval(world, str(tmp_path / "out"), "--diagnostics", "--label", "tiny",
                "--train-counts", str(tmp_path / "counts.txt"))
    sets = res["sets"]
    assert sets["imagenet-val"]["top1"] == 50.0 and not sets["imagenet-val"]["restricted"]
    assert sets["imagenet-r"]["top1"] == 50.0 and sets["imagenet-r"]["restricted"]
    assert sets["imagenet-r"]["classes_evaluated"] == 200
    assert sets["gen-val"]["top1"] == 50.0 and sets["gen-val"]["kind"] == "beton"
    assert sets["gen-val"]["pipeline"]["backend"] == "ffcv"  # the loaders' eval pipeline
    assert "pipeline" not in sets["imagenet-val"]
    assert sets["objectnet"]["top1"] == pytest.approx(world["on_expected"])
    assert sets["objectnet"]["num_evaluated"] == 3
    assert sets["objectnet"]["classes_evaluated"] == 2
    c = sets["imagenet-c"]
    assert sorted(c["corruptions"]) == ["fog", "snow"] and c["severity"] == 5
    assert c["top1"] == 50.0 and c["corruptions"]["fog"]["top1"] == 50.0
    shots = sets["imagenet-val"]["shots"]
    for split, want in expected.items():
        if want is None:
            assert shots[split]["num_images"] == 0
        else:
            assert (shots[split]["top1"], shots[split]["num_images"]) == pytest.approx(want)
    width = build_model("test_resnet")[0].fc.in_features
    parts = [v for k, v in sets.items() if k != "imagenet-c"] + list(c["corruptions"].values())
    for s in parts:
        d = s["diagnostics"]
        assert 0 <= d["sparsity_pct"] <= 100 and d["coding_length"] > 0 and d["dim"] == width
    r = res["robustness"]["shifts"]["imagenet-r"]
    assert r["ag"] == pytest.approx(0.0)
    slope, intercept = np.polyfit(logit([40, 60, 80]), logit([10, 20, 45]), 1)
    assert r["fit"]["slope"] == pytest.approx(slope)
    assert r["er"] == pytest.approx(50.0 - sigmoid_percent(slope * logit(50.0) + intercept))
    assert "er" not in res["robustness"]["shifts"]["objectnet"]
    assert res["robustness"]["shifts"]["imagenet-c"]["ag"] == pytest.approx(0.0)
    assert res["checkpoint"]["arch"] == "test_resnet" and res["run"]["label"] == "tiny"
    assert res["sets"]["imagenet-val"]["hash"]["method"] == "listing-sha256"
    per_class = json.load(open(tmp_path / "out" / "per_class.json"))
    assert sum(v["num_images"] for v in per_class["imagenet-val"].values()) == 8
    assert os.path.isfile(tmp_path / "out" / "config.yaml")
    capsys.readouterr()
    again = _eval(world, str(tmp_path / "out"), "--diagnostics", "--label", "tiny",
                  "--train-counts", str(tmp_path / "counts.txt"), "--overwrite")
    assert "cached" in capsys.readouterr().err
    assert again == res


@pytest.mark.timeout(600)
def test_eval_is_deterministic_across_processes(world, tmp_path):
    outs = []
    for seed in ("0", "2"):
        out = str(tmp_path / f"out{seed}")
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT,
               "SYNTHCLONE_CACHE": str(tmp_path / f"cache{seed}")}
        subprocess.run([sys.executable, "-m", "engine.cli", "eval", world["ckpt"], "--arch",
                        "test_resnet", "--sets", f"imagenet-val={world['val']},gen-val="
                        f"{world['gen']}", "--resize", "32", "--crop", "32", "--workers", "1",
                        "--no-progress", "--no-feature-cache", "-o", out], check=True, env=env,
                       cwd=ROOT, capture_output=True, timeout=300)
        outs.append(open(os.path.join(out, "results.json"), "rb").read())
    assert outs[0] == outs[1]


def test_eval_user_errors(world, tmp_path, capsys):
    def err(*argv):
        assert main(["eval", *argv]) == 2
        return capsys.readouterr().err

    ck = world["ckpt"]
    assert "unknown test set 'imagenet-x'" in err(ck, "--arch", "test_resnet", "--sets",
                                                  f"imagenet-x={world['val']}", "-o",
                                                  str(tmp_path / "a"))
    assert "nothing to evaluate" in err(ck, "--arch", "test_resnet", "-o", str(tmp_path / "b"))
    assert "no such folder" in err(ck, "--arch", "test_resnet", "--sets",
                                   f"imagenet-r={tmp_path / 'nope'}", "-o", str(tmp_path / "c"))
    compact = fakes.tiny_checkpoint(str(tmp_path / "c100.pt"), num_classes=100)
    msg = err(compact, "--arch", "test_resnet", "--sets", f"imagenet-val={world['val']}",
              "-o", str(tmp_path / "d"), "--workers", "0", "--no-progress")
    assert "100 outputs, but the test sets (imagenet-val)" in msg and "--classes" in msg
    os.makedirs(tmp_path / "full")
    (tmp_path / "full" / "x").write_text("x")
    assert "pass --overwrite" in err(ck, "--arch", "test_resnet", "--sets",
                                f"imagenet-val={world['val']}", "-o", str(tmp_path / "full"))
    assert "expected NAME=PATH" in err(ck, "--arch", "test_resnet", "--sets", "imagenet-val",
                                       "-o", str(tmp_path / "e"))
    assert "dali" in err(ck, "--arch", "test_resnet", "--sets", f"gen-val={world['gen']}",
                         "--backend", "pil", "-o", str(tmp_path / "f"))
    assert "--crop <= --resize" in err(ck, "--arch", "test_resnet", "--sets",
                                       f"gen-val={world['gen']}", "--crop", "64", "--resize",
                                       "32", "--no-progress", "-o", str(tmp_path / "g"))
    assert not os.path.exists(tmp_path / "g")


def test_eval_reads_its_config_section(world, tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(yaml.safe_dump({"eval": {
        "sets": [f"imagenet-val={world['val']}"], "arch": "test_resnet", "resize": 32,
        "crop": 32, "workers": 0, "progress": False, "transfer": {"k": 5}}}))
    out = tmp_path / "out"
    assert main(["eval", world["ckpt"], "--config", str(cfg), "--crop", "32", "-o",
                 str(out)]) == 0
    res = json.load(open(out / "results.json"))
    assert list(res["sets"]) == ["imagenet-val"] and res["sets"]["imagenet-val"]["top1"] == 50.0
    written = yaml.safe_load(open(out / "config.yaml"))
    assert written["eval"]["transfer"]["k"] == 5 and written["eval"]["resize"] == 32
    assert written["git_commit"] is None or len(written["git_commit"]) >= 40
    cfg.write_text(yaml.safe_dump({"eval": {"reszie": 32}}))
    assert main(["eval", world["ckpt"], "--config", str(cfg), "-o", str(tmp_path / "x")]) == 2
    assert "unknown EvalConfig option(s) reszie" in capsys.readouterr().err


def test_a_failed_eval_leaves_no_folder_and_replaces_nothing(world, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", world["ckpt"], "--arch", "test_resnet", "--sets",
            f"imagenet-r={tmp_path / 'missing'}", "-o", str(out)]
    assert main(argv) == 2 and not out.exists()
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(argv + ["--overwrite"]) == 2
    assert (out / "results.json").read_text() == "{}"
