"""S1 recipes (seed 002 §4): c, c_hc, c_dc, multiple, multiple_different, c_hc_inside_b, s1_mix."""
import collections
import os

import pytest

from engine.prompts import RecipeError, get_recipe
from engine.prompts.fakeit import S1_SIX
from engine.prompts.places365 import (BackgroundsUnavailable, load_backgrounds, parse_backgrounds,
                                      scene_text)

from .conftest import by_name
from .servers import FileServer, closed_port_url


def test_c_is_the_synset_lemmas_comma_joined(robin):
    # §4.1 and Fig. 15: the class-name prompt of n01558993 is "robin, American robin, Turdus migratorius"
    assert robin.wnid == "n01558993"
    assert get_recipe("c").prompts(robin, 3, seed=0) == ["robin, American robin, Turdus migratorius"] * 3


def test_hypernym_and_definition_prompts_match_the_paper(papillon):
    # §4.2: "Appending the hypernym (h_c = 'toy spaniel') or the description (d_c = 'small slender
    # toy spaniel with erect ears and a black-spotted brown to white coat') of the class 'papillon'"
    assert get_recipe("c_hc").prompts(papillon, 1, 0) == ["papillon, toy spaniel"]
    assert get_recipe("c_dc").prompts(papillon, 1, 0) == [
        "papillon, small slender toy spaniel with erect ears and a black-spotted brown to white coat"]
    # Appendix: 'the hypernym for "shih-tzu" is "toy dog"'; §4.2: pirate ship -> h_c = "ship"
    assert get_recipe("c_hc").prompts(by_name("Shih-Tzu"), 1, 0) == ["Shih-Tzu, toy dog"]
    assert get_recipe("c_hc").prompts(by_name("pirate ship"), 1, 0)[0].endswith(", ship")


def test_multiple_instance_prompts(papillon):
    # §4.3: p_c = "a photo of multiple c, h_c" and "a photo of multiple different c, h_c"
    assert get_recipe("multiple").prompts(papillon, 2, 5) == ["a photo of multiple papillon, toy spaniel"] * 2
    assert get_recipe("multiple_different").prompts(papillon, 1, 5) == [
        "a photo of multiple different papillon, toy spaniel"]


@pytest.mark.parametrize("name", ["c_hc", "c_dc", "multiple", "multiple_different"])
def test_missing_hypernym_or_definition_is_a_recipe_error_naming_the_class(name, freeform):
    with pytest.raises(RecipeError, match="caracal"):
        get_recipe(name).check(freeform)
    get_recipe("c").check(freeform)  # c needs nothing but the name


@pytest.mark.parametrize("raw, text", [
    ("/a/airfield", "airfield"),
    ("/b/bus_station/indoor", "indoor bus station"),
    ("/a/apartment_building/outdoor", "outdoor apartment building"),
    ("/f/field/wild", "wild field"),
    ("/e/elevator/door", "elevator door"),
    ("/s/subway_station/platform", "subway station platform"),
    ("/t/temple/asia", "asian temple"),
])
def test_scene_names_become_natural_text(raw, text):
    assert scene_text(raw) == text


def test_places365_file_gives_365_distinct_scenes(places365_file):
    scenes, info = load_backgrounds(places365_file)
    assert len(scenes) == len(set(scenes)) == 365 == info["count"]
    assert "indoor bus station" in scenes and "airfield" in scenes
    assert not any("/" in s or "_" in s for s in scenes)


def test_background_file_errors(tmp_path):
    with pytest.raises(RecipeError, match="listed twice"):
        parse_backgrounds("beach\nkitchen\nbeach\n", "f.txt")
    with pytest.raises(RecipeError, match="no backgrounds"):
        parse_backgrounds("# nothing\n\n", "f.txt")
    with pytest.raises(RecipeError, match="f.txt:1"):
        parse_backgrounds("/a/airfield zero\n", "f.txt")
    with pytest.raises(RecipeError, match="not found"):
        load_backgrounds(str(tmp_path / "missing.txt"))


def test_inside_b_covers_every_class_scene_combination(papillon, places365_file):
    recipe = get_recipe("c_hc_inside_b", backgrounds=places365_file)
    scenes, _ = load_backgrounds(places365_file)
    out = recipe.prompts(papillon, 2 * 365 + 10, seed=11)
    assert len(out) == 740
    prefix = "papillon, toy spaniel inside "
    assert all(p.startswith(prefix) for p in out)
    used = [p[len(prefix):] for p in out]
    assert sorted(used[:365]) == sorted(scenes)            # first pass: every scene once
    assert used[365:730] == used[:365]                     # then cycled in the same order
    assert used[730:] == used[:10]
    assert recipe.prompts(papillon, 740, seed=11) == out   # deterministic
    other = recipe.prompts(by_name("robin"), 365, seed=12)
    assert [p.split(" inside ")[1] for p in other] != used[:365]   # per-class order


def test_inside_b_plain_background_file(tmp_path, papillon):
    f = tmp_path / "bg.txt"
    f.write_text("# my scenes\nbeach\nsnowy kitchen\n")
    out = get_recipe("c_hc_inside_b", backgrounds=str(f)).prompts(papillon, 4, seed=0)
    assert collections.Counter(out) == {"papillon, toy spaniel inside beach": 2,
                                        "papillon, toy spaniel inside snowy kitchen": 2}


def test_places365_is_downloaded_once_into_the_cache(isolated_cache, papillon, places365_file):
    with open(places365_file, "rb") as f:
        payload = f.read()
    with FileServer(payload) as server:
        recipe = get_recipe("c_hc_inside_b", backgrounds_url=server.url)
        recipe.check(papillon)
        assert server.count == 1
        assert recipe.config()["backgrounds"]["count"] == 365
        get_recipe("c_hc_inside_b", backgrounds_url=server.url).prompts(papillon, 3, 0)
        assert server.count == 1                           # second use reads the cache
    assert os.path.exists(isolated_cache / "places365" / "categories_places365.txt")


def test_places365_download_refuses_an_error_page(isolated_cache, papillon):
    with FileServer(b"<html>rate limited</html>\n") as server:
        with pytest.raises(BackgroundsUnavailable, match="did not return the Places365 list"):
            get_recipe("c_hc_inside_b", backgrounds_url=server.url).check(papillon)
    assert not os.path.exists(isolated_cache / "places365" / "categories_places365.txt")


def test_places365_offline_error_names_url_and_the_option(isolated_cache, papillon):
    url = closed_port_url() + "/categories_places365.txt"
    with pytest.raises(BackgroundsUnavailable) as err:
        get_recipe("c_hc_inside_b", backgrounds_url=url).check(papillon)
    assert url in str(err.value) and "--backgrounds FILE" in str(err.value)


def test_s1_mix_deals_the_six_prompts_in_equal_shares(papillon, places365_file):
    recipe = get_recipe("s1_mix", backgrounds=places365_file)
    out = recipe.prompts(papillon, 6 * 50, seed=3)
    singles = {name: get_recipe(name).prompts(papillon, 1, 0)[0] for name in S1_SIX[:-1]}
    counts = collections.Counter(out)
    for name, prompt in singles.items():
        assert counts[prompt] == 50, name
    inside = [p for p in out if " inside " in p]
    assert len(inside) == len(set(inside)) == 50
    for start in range(0, 300, 6):                          # every window of six has all six
        window = out[start:start + 6]
        assert set(singles.values()) <= set(window) and sum(" inside " in p for p in window) == 1
    assert recipe.prompts(papillon, 7, seed=3) == out[:7]
    assert [p["name"] for p in recipe.config()["parts"]] == list(S1_SIX)


def test_s1_mix_check_fails_for_a_class_without_hypernym(freeform, places365_file):
    with pytest.raises(RecipeError, match="caracal"):
        get_recipe("s1_mix", backgrounds=places365_file).check(freeform)
