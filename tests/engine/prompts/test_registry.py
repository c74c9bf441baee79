"""Every recipe is registered on import, documented, and keeps the Recipe contract."""
import json
import subprocess
import sys

import pytest

from engine.prompts import Recipe, get_recipe, recipe_names

ALL = ["a_photo_of", "c", "c_dc", "c_hc", "c_hc_inside_b", "cd", "clip_templates", "complex",
       "disambiguated", "multiple", "multiple_different", "rendition", "s1_mix", "sd", "template"]


def test_importing_the_package_registers_every_recipe_cheaply():
    code = ("import json, sys, engine.prompts as p; print(json.dumps(sorted(p.recipe_names()))); "
            "print(json.dumps([m for m in ('torch', 'open_clip', 'PIL', 'timm') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, heavy = out.stdout.strip().splitlines()
    assert json.loads(names) == ALL
    assert json.loads(heavy) == []    # no model library at import


@pytest.fixture
def options(tmp_path, places365_file, crane_bird, papillon):
    meanings = tmp_path / "m.json"
    meanings.write_text(json.dumps({crane_bird.wnid: "a large long-legged bird",
                                    papillon.wnid: "a small dog"}))
    return {"c_hc_inside_b": {"backgrounds": places365_file},
            "s1_mix": {"backgrounds": places365_file},
            "template": {"template": "a {c} in the snow"},
            "disambiguated": {"meanings": str(meanings)}}


@pytest.mark.parametrize("name", ALL)
def test_recipe_contract(name, options, papillon, crane_bird):
    recipe = get_recipe(name, **options.get(name, {}))
    assert isinstance(recipe, Recipe)
    assert recipe.name == name and recipe.paper and recipe.pattern and type(recipe).__doc__
    assert "seed 00" in recipe.paper or name == "template"
    assert recipe.config()["name"] == name
    json.dumps(recipe.config())                               # goes into the plan header
    for cls in (papillon, crane_bird):
        recipe.check(cls)
        for n in (0, 1, 13):
            out = recipe.prompts(cls, n, seed=123)
            assert len(out) == n and all(isinstance(p, str) and p.strip() for p in out)
            assert out == recipe.prompts(cls, n, seed=123)
        assert any(lemma.lower() in " ".join(recipe.prompts(cls, 13, 7)).lower()
                   for lemma in cls.lemmas)


def test_unknown_recipe_suggests_close_names():
    with pytest.raises(ValueError, match="c_hc_inside_b"):
        get_recipe("c_hc_inside")


def test_recipe_names_are_sorted():
    assert recipe_names() == ALL


def test_build_recipe_from_a_shared_option_pool(places365_file, papillon):
    from engine.prompts import RecipeError, accepted_options, build_recipe

    pool = {"backgrounds": places365_file, "template": None, "llm_url": None}
    assert accepted_options("c_hc_inside_b") == {"backgrounds", "backgrounds_url"}
    assert accepted_options("c") == set()
    r = build_recipe("c_hc_inside_b", pool)
    assert r.config()["backgrounds"]["source"] == places365_file
    assert build_recipe("c", pool, strict=False).prompts(papillon, 1, 0) == ["papillon"]
    with pytest.raises(RecipeError, match="takes no option backgrounds"):
        build_recipe("c", pool)
    with pytest.raises(ValueError, match="unknown recipe"):
        accepted_options("nope")
