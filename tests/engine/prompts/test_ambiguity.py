"""Label-ambiguity resolution (seed 003 §3.1): candidates, Eq. 1 selection, the open_clip scorer."""
import json

import numpy as np
import pytest

from engine.catalog import ClassInfo
from engine.prompts import get_recipe
from engine.prompts.ambiguity import (AmbiguityError, OpenClipScorer, candidate_meanings,
                                      load_meanings, resolve, resolve_classes, write_meanings)

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class KeywordScorer:
    """Known answer: an image's 'embedding' is one-hot on its colour channel (red = bird), a
    text's is one-hot on 'bird' -> red, anything else -> blue; similarity = dot product."""

    def score(self, images, texts):
        img = np.stack([np.asarray(im, dtype=np.float64).mean(axis=(0, 1)) / 255 for im in images])
        txt = np.array([[1.0, 0, 0] if "bird" in t else [0, 0, 1.0] for t in texts])
        return img @ txt.T


class TableScorer:
    """Returns a fixed similarity matrix (to test the selection rule alone)."""

    def __init__(self, sims):
        self.sims = np.asarray(sims)

    def score(self, images, texts):
        return self.sims


def test_wordnet_candidates_for_crane_include_both_senses(crane_bird):
    cands = candidate_meanings(crane_bird, k=10)
    assert any("bird" in c for c in cands) and any("lift" in c for c in cands)
    assert crane_bird.definition in cands
    assert len(candidate_meanings(crane_bird, k=2)) == 2


def test_llm_candidates_and_empty_candidates(freeform):
    class FakeLLM:
        def meanings(self, name, k):
            return [f"{name} meaning {i}" for i in range(k)] + ["caracal meaning 0"]

    assert candidate_meanings(freeform, FakeLLM(), k=3) == [f"caracal meaning {i}" for i in range(3)]
    assert candidate_meanings(freeform) == [d for _, d in freeform.senses()]  # WordNet knows it
    unknown = ClassInfo(index=1, wnid=None, lemmas=("zorblatt",))
    with pytest.raises(AmbiguityError, match="zorblatt"):
        candidate_meanings(unknown)           # no WordNet sense, no definition
    described = ClassInfo(index=1, wnid=None, lemmas=("zorblatt",), definition="a made-up toy")
    assert candidate_meanings(described) == ["a made-up toy"]


def test_resolve_picks_the_highest_mean_similarity():
    # Eq. 1 sums over images: candidate 1 wins on the mean although candidate 0 wins on image 0.
    sims = [[0.9, 0.5, 0.1], [0.1, 0.6, 0.2], [0.0, 0.7, 0.3]]
    r = resolve([None] * 3, ["a", "b", "c"], TableScorer(sims))
    assert r.best == "b" and r.scores == pytest.approx((1 / 3, 0.6, 0.2))
    with pytest.raises(AmbiguityError, match="shape"):
        resolve([None] * 3, ["a", "b"], TableScorer(sims))


def _write_images(folder, colour, count=3):
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (8, 8), colour).save(folder / f"{i}.png")


def test_resolve_classes_end_to_end_feeds_the_disambiguated_recipe(tmp_path, crane_bird):
    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, (250, 10, 10))      # real crane images are "birds"
    results = resolve_classes([crane_bird], str(root), KeywordScorer(), k=10)
    best = results[crane_bird.wnid].best
    assert "bird" in best and best == crane_bird.definition
    path = tmp_path / "meanings.json"
    write_meanings(str(path), {k: r.best for k, r in results.items()})
    assert load_meanings(str(path)) == {crane_bird.wnid: best}
    assert get_recipe("disambiguated", meanings=str(path)).prompts(crane_bird, 1, 0) == [f"crane, {best}"]
    # the same pipeline with machine-coloured images picks a non-bird sense
    root2 = tmp_path / "train2"
    _write_images(root2 / crane_bird.wnid, (10, 10, 250))
    assert "bird" not in resolve_classes([crane_bird], str(root2), KeywordScorer(), k=10)[
        crane_bird.wnid].best


def test_resolve_classes_without_images(tmp_path, crane_bird):
    with pytest.raises(AmbiguityError, match=crane_bird.wnid):
        resolve_classes([crane_bird], str(tmp_path), KeywordScorer())


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("clipcfg")
    (d / "synthclone-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(d)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("synthclone-tiny-clip")
    ckpt = d / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    return model, preprocess, str(ckpt)


def test_open_clip_scorer_is_normalised_cosine_similarity(tiny_clip):
    import open_clip
    import torch
    from PIL import Image

    model, preprocess, _ = tiny_clip
    scorer = OpenClipScorer(model, preprocess, open_clip.get_tokenizer("synthclone-tiny-clip"))
    images = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    texts = ["a large long-legged bird", "a machine for lifting heavy objects"]
    sims = scorer.score(images, texts)
    assert sims.shape == (3, 2) and np.all(np.abs(sims) <= 1 + 1e-6)
    with torch.no_grad():  # reference: cosine of the raw embeddings
        img = model.encode_image(torch.stack([preprocess(im) for im in images]))
        txt = model.encode_text(open_clip.get_tokenizer("synthclone-tiny-clip")(texts))
    ref = torch.nn.functional.cosine_similarity(img[:, None], txt[None], dim=-1).numpy()
    np.testing.assert_allclose(sims, ref, atol=1e-5)
    batch = torch.stack([preprocess(im) for im in images])
    np.testing.assert_allclose(scorer.score(batch, texts), sims, atol=1e-5)  # tensors accepted


def test_open_clip_scorer_loads_a_local_checkpoint(tiny_clip):
    from PIL import Image

    model, preprocess, ckpt = tiny_clip
    import open_clip

    images = [Image.new("RGB", (32, 32), (200, 30, 30))]
    texts = ["one", "two", "three"]
    ref = OpenClipScorer(model, preprocess, open_clip.get_tokenizer("synthclone-tiny-clip")).score(images, texts)
    loaded = OpenClipScorer.load("synthclone-tiny-clip", checkpoint=ckpt)
    np.testing.assert_allclose(loaded.score(images, texts), ref, atol=1e-5)


def test_open_clip_scorer_errors(tiny_clip, tmp_path):
    with pytest.raises(AmbiguityError, match="not found"):
        OpenClipScorer.load("synthclone-tiny-clip", checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(AmbiguityError, match="checkpoint file"):
        OpenClipScorer.load("synthclone-tiny-clip", pretrained="laion2b_s34b_b79k")


def test_meanings_cli_writes_the_json_the_recipes_read(tiny_clip, tmp_path, crane_bird, capsys):
    from engine.cli import main

    _, _, ckpt = tiny_clip
    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, (250, 10, 10), count=2)
    out = tmp_path / "meanings.json"
    argv = ["meanings", "--classes", crane_bird.wnid, "--images", str(root), "--out", str(out),
            "--clip-model", "synthclone-tiny-clip", "--clip-pretrained", ckpt, "--k", "3",
            "--real-images-per-class", "2", "--device", "cpu"]
    assert main(argv) == 0
    meanings = load_meanings(str(out))
    assert list(meanings) == [crane_bird.wnid]
    assert meanings[crane_bird.wnid] in candidate_meanings(crane_bird, k=3)
    capsys.readouterr()
    assert main(argv) == 2                                 # refuses to overwrite, one line
    assert "--overwrite" in capsys.readouterr().err
    assert get_recipe("disambiguated", meanings=str(out)).prompts(crane_bird, 1, 0)[0].startswith("crane, ")
    # the old spellings (--clip-checkpoint, --images-per-class) still work for one release
    old = [a.replace("--clip-pretrained", "--clip-checkpoint").replace(
        "--real-images-per-class", "--images-per-class") for a in argv]
    assert main(old + ["--overwrite"]) == 0
    assert load_meanings(str(out)) == meanings


def test_recipes_cli_lists_every_recipe(capsys):
    from engine.prompts import recipe_names
    from engine.prompts.cli import recipes_main

    assert recipes_main([]) == 0
    text = capsys.readouterr().out
    for name in recipe_names():
        assert f"\n{name} " in "\n" + text
    assert "c, h_c inside b" in text and "backgrounds" in text


def test_a_pretrained_tag_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AmbiguityError, match="HF_HUB_OFFLINE=1.*checkpoint file"):
        OpenClipScorer.load("ViT-B-32", pretrained="openai")
