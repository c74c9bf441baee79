"""Label-ambiguity resolution (seed 003 §3.1): candidates, Eq. 1 selection over all real images
(or a seeded subset), CLIP scoring through engine.clip, the meanings file and CLI."""
import json

import numpy as np
import pytest

from engine.catalog import ClassInfo
from engine.prompts import get_recipe
from engine.prompts.ambiguity import (AmbiguityError, candidate_meanings, class_image_paths,
                                      load_meanings, read_meanings_file, resolve, resolve_classes,
                                      resolve_paths, write_meanings)

from .servers import FakeChatServer

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class KeywordScorer:
    """Known answer: an image's 'embedding' is its mean colour, a text's is one-hot on 'bird' ->
    red, anything else -> blue; similarity = dot product. Counts the images it saw."""

    def __init__(self):
        self.seen = 0

    def score(self, images, texts):
        self.seen += len(images)
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
    assert r.best == "b" and r.scores == pytest.approx((1 / 3, 0.6, 0.2)) and r.num_images == 3
    with pytest.raises(AmbiguityError, match="shape"):
        resolve([None] * 3, ["a", "b"], TableScorer(sims))


def _write_images(folder, colours, name="{i}.png"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", (8, 8), colour).save(folder / name.format(i=i))


RED, BLUE = (250, 10, 10), (10, 10, 250)


def test_all_real_images_are_scored_by_default(tmp_path, crane_bird):
    root = tmp_path / "train"
    folder = root / crane_bird.wnid
    # 3 bird-red images, 4 machine-blue ones in a nested folder and with an upper-case suffix:
    # a 50-image cap or a flat listing would see only part of them.
    _write_images(folder, [RED] * 3)
    _write_images(folder / "more", [BLUE] * 4, name="x{i}.PNG")
    (folder / ".hidden.png").write_bytes(b"not an image")   # skipped like ImageFolder does
    scorer = KeywordScorer()
    r = resolve_classes([crane_bird], str(root), scorer, k=10)[crane_bird.wnid]
    assert r.num_images == scorer.seen == 7
    assert "bird" not in r.best                              # 4 blue outvote 3 red
    # the mean over all 7 images, by hand: blue texts score 4/7 * 250/255 + 3/7 * 10/255
    blue_score = (4 * 250 + 3 * 10) / 7 / 255
    assert max(r.scores) == pytest.approx(blue_score)


def test_a_seeded_subset_is_the_same_in_every_call(tmp_path, crane_bird):
    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED] * 6)
    all_paths = class_image_paths(str(root), crane_bird)
    sub = class_image_paths(str(root), crane_bird, limit=3, seed=1)
    assert len(sub) == 3 and set(sub) <= set(all_paths) and sub == sorted(sub)
    assert class_image_paths(str(root), crane_bird, limit=3, seed=1) == sub
    others = {tuple(class_image_paths(str(root), crane_bird, limit=3, seed=s)) for s in range(8)}
    assert len(others) > 1                                    # the seed picks the subset
    assert class_image_paths(str(root), crane_bird, limit=10) == all_paths
    scorer = KeywordScorer()
    r = resolve_classes([crane_bird], str(root), scorer, images_per_class=3, seed=1)
    assert r[crane_bird.wnid].num_images == 3 == scorer.seen


def test_chunked_scoring_equals_scoring_all_at_once(tmp_path, crane_bird):
    from PIL import Image

    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED, BLUE, RED, (120, 30, 200), BLUE])
    paths = class_image_paths(str(root), crane_bird)
    cands = ["a bird", "a machine", "a bird of prey"]
    whole = resolve([Image.open(p).convert("RGB") for p in paths], cands, KeywordScorer())
    chunked = resolve_paths(paths, cands, KeywordScorer(), chunk=2)
    assert chunked.best == whole.best and chunked.scores == pytest.approx(whole.scores)


def test_resolve_classes_feeds_the_disambiguated_recipe(tmp_path, crane_bird):
    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED] * 3)          # real crane images are "birds"
    results = resolve_classes([crane_bird], str(root), KeywordScorer(), k=10)
    best = results[crane_bird.wnid].best
    assert "bird" in best and best == crane_bird.definition
    path = tmp_path / "meanings.json"
    write_meanings(str(path), {k: r.best for k, r in results.items()}, k=10,
                   candidate_source="wordnet")
    assert load_meanings(str(path)) == {crane_bird.wnid: best}
    assert read_meanings_file(str(path))["k"] == 10
    assert get_recipe("disambiguated", meanings=str(path)).prompts(crane_bird, 1, 0) == [
        f"crane, {best}"]


def test_resolve_classes_without_images(tmp_path, crane_bird):
    with pytest.raises(AmbiguityError, match=crane_bird.wnid):
        resolve_classes([crane_bird], str(tmp_path), KeywordScorer())


def test_meanings_files_flat_and_recorded(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"n02012849": "a bird"}))
    assert load_meanings(str(flat)) == {"n02012849": "a bird"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["crane", "bird"]))
    with pytest.raises(AmbiguityError, match="JSON object"):
        load_meanings(str(bad))
    bad.write_text(json.dumps({"synthclone_meanings": 1, "meanings": {"n1": ""}}))
    with pytest.raises(AmbiguityError, match="non-empty"):
        load_meanings(str(bad))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny open_clip architecture registered by name, and weights saved to a local file."""
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("clipcfg")
    (d / "synthclone-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(d)
    torch.manual_seed(0)
    model = open_clip.create_model("synthclone-tiny-clip")
    ckpt = d / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    return str(d), str(ckpt)


def test_scoring_goes_through_engine_clip(tiny_clip, tmp_path, crane_bird):
    """The CLIP model of engine.clip is the scorer; its scores are cosine similarities."""
    import torch

    from engine.clip import load_clip

    _, ckpt = tiny_clip
    clip = load_clip("synthclone-tiny-clip", ckpt)
    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED, BLUE])
    r = resolve_classes([crane_bird], str(root), clip, llm=None, k=2)[crane_bird.wnid]
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in class_image_paths(str(root), crane_bird)]
    with torch.no_grad():  # reference: cosine of the raw embeddings, by hand
        img = clip.model.encode_image(torch.stack([clip.preprocess(im) for im in images]))
        txt = clip.model.encode_text(clip.tokenizer(list(r.candidates)))
    ref = torch.nn.functional.cosine_similarity(img[:, None], txt[None], dim=-1).mean(0)
    np.testing.assert_allclose(r.scores, ref.numpy(), atol=1e-5)
    assert r.best == r.candidates[int(ref.argmax())]
    assert list(r.candidates) == candidate_meanings(crane_bird, k=2)


def _meanings_args(tiny_clip, root, out, *extra):
    cfg_dir, ckpt = tiny_clip
    return ["meanings", "--classes", "n02012849", "--images", str(root), "--out", str(out),
            "--clip-model", "synthclone-tiny-clip", "--clip-pretrained", ckpt,
            "--clip-config", cfg_dir, *extra]


def test_meanings_cli_records_k_source_and_images(tiny_clip, tmp_path, crane_bird, capsys):
    from engine.cli import main

    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED, BLUE, RED])
    out = tmp_path / "meanings.json"
    assert main(_meanings_args(tiny_clip, root, out, "--k", "3")) == 0
    data = read_meanings_file(str(out))
    assert data["k"] == 3 and data["candidate_source"] == "wordnet"
    assert data["images_per_class"] == "all" and data["clip"]["model"] == "synthclone-tiny-clip"
    detail = data["classes"][crane_bird.wnid]
    assert detail["num_images"] == 3 and detail["candidates"] == candidate_meanings(crane_bird, k=3)
    assert data["meanings"][crane_bird.wnid] in detail["candidates"]
    assert main(_meanings_args(tiny_clip, root, out)) == 2           # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(_meanings_args(tiny_clip, root, out, "--real-images-per-class", "2",
                               "--overwrite")) == 0
    data = read_meanings_file(str(out))
    assert data["images_per_class"] == 2 and data["classes"][crane_bird.wnid]["num_images"] == 2
    # the old spellings (--clip-checkpoint, --images-per-class) still work for one release
    old = [a.replace("--clip-pretrained", "--clip-checkpoint")
           for a in _meanings_args(tiny_clip, root, out, "--images-per-class", "1", "--overwrite")]
    assert main(old) == 0
    assert read_meanings_file(str(out))["classes"][crane_bird.wnid]["num_images"] == 1
    assert get_recipe("disambiguated", meanings=str(out)).prompts(crane_bird, 1, 0)[0].startswith(
        "crane, ")


def test_meanings_cli_without_weights_is_refused(tmp_path, capsys):
    from engine.cli import main

    assert main(["meanings", "--classes", "n02012849", "--images", str(tmp_path), "--out",
                 str(tmp_path / "m.json")]) == 2
    assert "--clip-pretrained" in capsys.readouterr().err


def test_meanings_cli_with_an_llm_answering_in_markdown(tiny_clip, tmp_path, crane_bird,
                                                        isolated_cache):
    from engine.cli import main

    root = tmp_path / "train"
    _write_images(root / crane_bird.wnid, [RED])
    out = tmp_path / "meanings.json"
    with FakeChatServer("meanings_markdown") as server:
        assert main(_meanings_args(tiny_clip, root, out, "--llm-url", server.url,
                                   "--llm-model", "m", "--k", "3")) == 0
    data = read_meanings_file(str(out))
    assert data["candidate_source"] == "llm:m"
    assert data["classes"][crane_bird.wnid]["candidates"] == [
        "a large long-legged bird", "a machine for lifting heavy objects",
        "to stretch the neck to see better"]


def test_recipes_cli_lists_every_recipe(capsys):
    from engine.plan.images import IMAGE_RECIPES
    from engine.prompts import recipe_names
    from engine.prompts.cli import recipes_main

    assert recipes_main([]) == 0
    text = capsys.readouterr().out
    for name in list(recipe_names()) + list(IMAGE_RECIPES):  # image recipes: --from-images
        assert f"\n{name} " in "\n" + text
    assert "c, h_c inside b" in text and "backgrounds" in text
