"""S3 template recipes (seed 004 Table 8/4) and S0 complex prompts (seed 000 A.5)."""
import collections

import pytest

from engine.catalog import get_class_set
from engine.prompts import RecipeError, get_recipe
from engine.prompts.complex import PER_NAME, complex_prompts

from .conftest import by_name

# A few of the 80 templates exactly as printed in seed 004, Table 8.
TABLE8_QUOTES = ["a bad photo of a {class label}.", "a photo of many {class label}.",
                 "itap of my {class label}.", "a {class label} in a video game.",
                 "the embroidered {class label}.", "a tattoo of the {class label}."]


def test_clip_templates_are_the_80_of_table8(papillon):
    out = get_recipe("clip_templates").prompts(papillon, 160, seed=4)
    counts = collections.Counter(out)
    assert len(counts) == 80 and set(counts.values()) == {2}
    assert all("Papillon" in p for p in out)               # CLIP's ImageNet name for class 157
    for quote in TABLE8_QUOTES:
        assert quote.replace("{class label}", "Papillon") in counts
    assert out[80:] == out[:80]
    assert get_recipe("clip_templates").prompts(papillon, 80, seed=5) != out[:80]  # seeded order


def test_wordnet_names_option(papillon, freeform):
    out = get_recipe("clip_templates", names="wordnet").prompts(papillon, 80, seed=0)
    assert "a bad photo of a papillon." in out
    assert "a bad photo of a caracal." in get_recipe("clip_templates").prompts(freeform, 80, 0)
    with pytest.raises(RecipeError, match="names"):
        get_recipe("clip_templates", names="imagenet")


def test_single_templates_of_table4(papillon):
    # seed 004 Table 4 prints them without the CLIP list's final period
    assert get_recipe("a_photo_of").prompts(papillon, 2, 0) == ["a photo of a Papillon"] * 2
    assert get_recipe("rendition").prompts(papillon, 1, 0) == ["a rendition of a Papillon"]
    assert get_recipe("a_photo_of", names="wordnet").prompts(papillon, 1, 0) == [
        "a photo of a papillon"]


def test_user_template(papillon):
    recipe = get_recipe("template", template="a {c} on the moon, {{retro}}")
    assert recipe.prompts(papillon, 2, 0) == ["a papillon on the moon, {retro}"] * 2
    assert recipe.config()["template"] == "a {c} on the moon, {{retro}}"


def test_lemmas_field_gives_seed_001_table4_prompt():
    robin = by_name("robin")
    # seed 001 Table 4: "a photo of c", c being every lemma of the synset (seed 002 §4.1)
    assert get_recipe("template", template="a photo of {lemmas}").prompts(robin, 1, 0) == [
        "a photo of robin, American robin, Turdus migratorius"]
    assert get_recipe("template", template="{c} ({lemmas})").prompts(robin, 1, 0) == [
        "robin (robin, American robin, Turdus migratorius)"]


@pytest.mark.parametrize("bad", ["a photo of a dog", "a {x} of {c}", "a {class} photo", "a {c",
                                 "a {lemma} photo"])
def test_user_template_without_c_is_a_recipe_error(bad):
    with pytest.raises(RecipeError, match="template"):
        get_recipe("template", template=bad)


def test_template_recipe_needs_a_template():
    with pytest.raises(RecipeError, match="--template"):
        get_recipe("template")


def test_complex_prompts_cover_every_category_name(papillon):
    cougar = by_name("cougar")                             # 7 names: cougar, puma, ..., Felis concolor
    assert len(cougar.lemmas) == 7
    recipe = get_recipe("complex")
    out = recipe.prompts(cougar, 1300, seed=1)
    assert len(out) == 1300 == len(set(out))               # 7 * 200 = 1400 >= 1300 distinct
    for lemma in cougar.lemmas:
        assert any(lemma in p for p in out), lemma
    one = recipe.prompts(papillon, 1300, seed=1)
    assert len(set(one)) == PER_NAME == 200                # a single name: 200 distinct, cycled
    assert one[200:400] == one[:200]
    assert recipe.prompts(cougar, 1300, seed=1) == out
    assert recipe.prompts(cougar, 1300, seed=2) != out


def test_complex_prompts_per_class_range_is_200_to_1300_on_imagenet100():
    # A.5: "this script can generate [...] from 200 to 1300 different prompts per class"
    recipe = get_recipe("complex")
    distinct = [len(set(recipe.prompts(c, 1300, seed=c.index))) for c in get_class_set("imagenet100")]
    assert min(distinct) == 200 and max(distinct) <= 1300 and len(set(distinct)) > 2


def test_complex_prompts_are_modifier_combinations_of_the_name():
    prompts = complex_prompts("African elephant")
    assert len(prompts) == len(set(prompts)) == 200
    assert "a photo of an African elephant, highly detailed, 8k" in prompts
    assert all(p.count("African elephant") == 1 for p in prompts)
