"""S2 recipes (seed 003 §3.1-3.2): cd, sd (offline backend), the 60 styles, disambiguated."""
import collections
import json

import pytest

from engine.prompts import RecipeError, get_recipe
from engine.prompts.data.styles import STYLES
from engine.prompts.diversify import style_word
from engine.prompts.offline import SPACE, OfflineBackend


def test_the_60_styles_of_appendix_d():
    assert len(STYLES) == len(set(STYLES)) == 60
    assert STYLES[0] == "Sketch" and STYLES[-1] == "Sand sculpture"
    for quoted in ("Comic-style depiction", "Pixel art representation", "Macramé design",
                   "Virtual reality model", "Stained glass design"):
        assert quoted in STYLES


def test_style_word():
    assert style_word("Oil painting") == "oil painting"
    assert style_word("CGI") == "CGI" and style_word("3D model") == "3D model"


def test_cd_offline_gives_600_distinct_photograph_prompts(papillon):
    recipe = get_recipe("cd")
    out = recipe.prompts(papillon, 650, seed=9)
    assert len(out) == 650 and len(set(out)) == 600          # 600 per class, then cycled
    assert out[600:] == out[:50]
    for p in out:
        assert p.startswith("a photograph of ") and "papillon" in p
        assert len(p.split(", ")) >= 4                       # fg, bg, lighting, camera angle
    assert recipe.prompts(papillon, 650, seed=9) == out
    assert recipe.prompts(papillon, 650, seed=10) != out
    assert recipe.config()["backend"] == "offline"


def test_cd_per_class_option_and_classes_differ(papillon, robin):
    recipe = get_recipe("cd", per_class=10)
    out = recipe.prompts(papillon, 25, seed=1)
    assert len(set(out)) == 10 and out[10:20] == out[:10]
    assert not set(p.replace("papillon", "X") for p in out) == set(
        p.replace("robin", "X") for p in recipe.prompts(robin, 25, seed=1))


def test_offline_backend_draws_distinct_combinations():
    d = OfflineBackend().descriptions("dog", 5000, seed=3)
    assert len(set(d)) == 5000 and SPACE == 57600


def test_sd_replaces_photograph_with_each_style(papillon):
    n = 120
    cd = get_recipe("cd").prompts(papillon, n, seed=2)
    sd = get_recipe("sd").prompts(papillon, n, seed=2)
    used = collections.Counter()
    for c, s in zip(cd, sd):
        description = c[len("a photograph of "):]
        assert s.endswith(" of " + description)
        style = s[: -len(" of " + description)].split(" ", 1)[1]   # drop the article
        used[style] += 1
    assert used == {style_word(st): 2 for st in STYLES}          # 60 styles, twice each
    assert "a photograph of" not in " ".join(sd)


def test_sd_pairs_do_not_repeat_when_descriptions_cycle(papillon):
    out = get_recipe("sd", per_class=7).prompts(papillon, 7 * 60, seed=0)
    assert len(set(out)) == 7 * 60


def test_llm_options_need_url_and_model():
    with pytest.raises(RecipeError, match="llm_url and llm_model"):
        get_recipe("cd", llm_url="http://127.0.0.1:1/v1")


@pytest.fixture
def meanings_file(tmp_path, crane_bird):
    path = tmp_path / "meanings.json"
    path.write_text(json.dumps({crane_bird.wnid: "a large long-legged bird"}))
    return str(path)


def test_disambiguated_appends_the_meaning(crane_bird, meanings_file, papillon):
    recipe = get_recipe("disambiguated", meanings=meanings_file)
    assert recipe.prompts(crane_bird, 2, 0) == ["crane, a large long-legged bird"] * 2
    with pytest.raises(RecipeError, match="papillon"):
        recipe.check(papillon)
    with pytest.raises(RecipeError, match="--meanings"):
        get_recipe("disambiguated")


def test_cd_with_meanings_puts_the_meaning_in_the_class_text(crane_bird, meanings_file):
    out = get_recipe("cd", meanings=meanings_file).prompts(crane_bird, 5, seed=0)
    assert all("crane (a large long-legged bird)" in p for p in out)


def test_meanings_file_shape_is_checked(tmp_path):
    from engine.prompts.ambiguity import AmbiguityError

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["crane", "bird"]))
    with pytest.raises(AmbiguityError, match="JSON object"):
        get_recipe("disambiguated", meanings=str(bad))
    with pytest.raises(FileNotFoundError, match="meanings file not found"):
        get_recipe("disambiguated", meanings=str(tmp_path / "none.json"))


def test_offline_descriptions_of_a_smaller_count_are_a_prefix():
    backend = OfflineBackend()
    assert backend.descriptions("dog", 30, seed=4)[:7] == backend.descriptions("dog", 7, seed=4)


def test_offline_sd_in_a_plan_reuses_the_cd_descriptions_of_each_class():
    """Seed 003 §3.2 forms the SD prompts from the CD ones: in one plan, every sd prompt of a
    class restyles one of that class's cd descriptions (here: the same ones, in order)."""
    from engine.plan import PlanConfig, build_plan

    plan = build_plan(PlanConfig(classes="tench,goldfish", recipes={"cd": 1, "sd": 1},
                                 images_per_class=24, steps=2, height=64, width=64, seed=3))
    for wnid in ("n01440764", "n01443537"):
        cd = [r.prompt[len("a photograph of "):] for r in plan if r.wnid == wnid and r.recipe == "cd"]
        sd = [r.prompt.split(" of ", 1)[1] for r in plan if r.wnid == wnid and r.recipe == "sd"]
        assert len(cd) == len(sd) == 12 and sd == cd
    assert build_plan(PlanConfig(classes="tench", recipes={"cd": 1}, images_per_class=5,
                                 seed=4)).rows[0].prompt != plan.rows[0].prompt


def test_offline_cd_on_imagenet_classes_is_flagged_as_not_the_papers_method(tmp_path, crane_bird,
                                                                           freeform):
    from engine.plan import PlanConfig, build_plan

    plan = build_plan(PlanConfig(classes="n02012849", recipes={"cd": 1}, images_per_class=2))
    notes = plan.header["notes"]
    assert len(notes) == 2 and all("not the paper's method" in n for n in notes)
    assert any("offline vocabulary" in n and "--llm-url" in n for n in notes)
    assert any("--meanings" in n for n in notes)
    assert plan.header["config"]["recipe_config"]["cd"]["backend"] == "offline"
    m = tmp_path / "m.json"
    m.write_text(json.dumps({crane_bird.wnid: "a bird"}))
    plan = build_plan(PlanConfig(classes="n02012849", recipes={"sd": 1}, images_per_class=2,
                                 recipe_options={"meanings": str(m)}))
    assert [n for n in plan.header["notes"] if "offline" in n] and not [
        n for n in plan.header["notes"] if "--meanings" in n]
    assert get_recipe("cd").notes([freeform]) == []          # custom classes: no paper to follow


def test_the_plan_cli_prints_the_warning(tmp_path, capsys):
    from engine.cli import main

    assert main(["plan", "--classes", "tench", "--recipe", "cd", "--images-per-class", "2",
                 "--out", str(tmp_path / "p.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "offline vocabulary" in err
