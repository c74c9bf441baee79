"""Class catalog: presets, WordNet hypernyms/definitions/senses, custom sets, bad input."""
import pytest

from engine.catalog import ClassLookupError, get_class_set, imagenet_class, load_custom, resolve_imagenet
from engine.catalog.imagenet100 import IMAGENET100_NAMES

# Tian et al.'s (CMC) ImageNet-100 wnids, the subset seed 001 uses; the preset must equal it.
CMC_IMAGENET100 = set("""
n02869837 n01749939 n02488291 n02107142 n13037406 n02091831 n04517823 n04589890 n03062245
n01773797 n01735189 n07831146 n07753275 n03085013 n04485082 n02105505 n01983481 n02788148
n03530642 n04435653 n02086910 n02859443 n13040303 n03594734 n02085620 n02099849 n01558993
n04493381 n02109047 n04111531 n02877765 n04429376 n02009229 n01978455 n02106550 n01820546
n01692333 n07714571 n02974003 n02114855 n03785016 n03764736 n03775546 n02087046 n07836838
n04099969 n04592741 n03891251 n02701002 n03379051 n02259212 n07715103 n03947888 n04026417
n02326432 n03637318 n01980166 n02113799 n02086240 n03903868 n02483362 n04127249 n02089973
n03017168 n02093428 n02804414 n02396427 n04418357 n02172182 n01729322 n02113978 n03787032
n02089867 n02119022 n03777754 n04238763 n02231487 n03032252 n02138441 n02104029 n03837869
n03494278 n04136333 n03794056 n03492542 n02018207 n04067472 n03930630 n03584829 n02123045
n04229816 n02100583 n03642806 n04336792 n03259280 n02116738 n02108089 n03424325 n01855672
n02090622""".split())


def test_imagenet1k_is_timm_order_with_lemmas_and_definitions():
    cs = get_class_set("imagenet1k")
    assert len(cs) == 1000 and cs.num_labels == 1000
    assert [c.index for c in cs] == list(range(1000))
    assert cs.wnids == sorted(cs.wnids)  # timm order = sorted wnids
    tench = cs[0]
    assert tench.wnid == "n01440764" and tench.name == "tench"
    assert "freshwater" in tench.definition


def test_imagenet100_pinned_to_the_papers_100_classes():
    cs = get_class_set("imagenet100")
    assert len(IMAGENET100_NAMES) == 100
    assert len(cs) == 100 and len(set(cs.wnids)) == 100
    assert set(cs.wnids) == CMC_IMAGENET100
    assert cs.mask().sum() == 100 and cs.num_labels == 1000  # a mask, not a renumbering


def test_hypernyms_and_definitions_from_wordnet():
    papillon = imagenet_class(resolve_imagenet("papillon"))
    assert papillon.hypernyms == ("toy spaniel",)  # seed 002 §4
    assert papillon.definition.startswith("small slender toy spaniel with erect ears")
    pirate = imagenet_class(resolve_imagenet("pirate ship"))
    assert pirate.hypernyms == ("ship",)


def test_senses_list_every_noun_sense():
    crane_bird = imagenet_class(resolve_imagenet("n02012849"))
    senses = crane_bird.senses()
    wnids = [w for w, _ in senses]
    assert "n02012849" in wnids and "n03126707" in wnids  # the bird and the machine
    assert all(d for _, d in senses)


def test_imagenet_r_and_a_subsets():
    r, a = get_class_set("imagenet-r"), get_class_set("imagenet-a")
    assert len(r) == 200 and len(a) == 200 and set(r.wnids) != set(a.wnids)
    assert r.mask().sum() == 200


def test_compact_labels_renumber():
    cs = get_class_set("imagenet100", compact=True)
    assert [c.index for c in cs] == list(range(100)) and cs.num_labels == 100


def test_unknown_names_give_close_matches():
    with pytest.raises(ClassLookupError, match="goldfish"):
        get_class_set("tench,goldfsh")
    with pytest.raises(ClassLookupError, match="imagenet100"):
        get_class_set("imagenet10")


def test_custom_file_of_wnids_keeps_imagenet_labels(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# two ImageNet classes\nn01440764\ngoldfish\n")
    cs = load_custom(str(f))
    assert [c.index for c in cs] == [0, 1] and cs.num_labels == 1000
    assert cs[1].wnid == "n01443537"


def test_custom_free_form_names_get_compact_labels(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("caracal | a wild cat of Africa and Asia | wild cat\nn01440764\nzorblax\n")
    cs = load_custom(str(f))
    assert cs.num_labels == 3 and [c.index for c in cs] == [0, 1, 2]
    assert cs[0].definition == "a wild cat of Africa and Asia" and cs[0].hypernyms == ("wild cat",)
    assert cs[1].wnid == "n01440764"
    assert cs[2].hypernyms is None and cs[2].definition is None


def test_custom_file_errors(tmp_path):
    f = tmp_path / "dup.txt"
    f.write_text("tench\nn01440764\n")
    with pytest.raises(ValueError, match="twice"):
        load_custom(str(f))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no classes"):
        load_custom(str(empty))
    with pytest.raises(FileNotFoundError):
        get_class_set(str(tmp_path / "missing" / "x.txt"))


def test_cli_exit_code_2_names_the_class(capsys):
    from engine.cli import main

    assert main(["classes", "tench,goldfsh"]) == 2
    err = capsys.readouterr().err
    assert "goldfsh" in err and "goldfish" in err
    assert main(["classes", "imagenet100", "--limit", "2"]) == 0
    assert "100 classes" in capsys.readouterr().out


def test_cli_json_lists_every_class_unless_limited(capsys):
    import json

    from engine.cli import main

    assert main(["classes", "imagenet100", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100 and json.loads(lines[0])["wnid"] == get_class_set("imagenet100")[0].wnid
    assert main(["classes", "imagenet100", "--json", "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_public_label_tables():
    from engine.catalog import class_names, imagenet_index, imagenet_wnids

    index, names = imagenet_index(), class_names()
    assert len(index) == len(names) == 1000 and index["n01440764"] == 0
    assert names[index["n02123045"]] == "tabby" and imagenet_wnids()[281] == "n02123045"
    index["n01440764"] = 5                       # a copy: callers cannot change the table
    assert imagenet_index()["n01440764"] == 0


def test_class_file_errors_are_user_errors(tmp_path):
    from engine.catalog import ClassFileError
    from engine.errors import UserError

    assert issubclass(ClassFileError, UserError)
    binary = tmp_path / "x.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ClassFileError, match="UTF-8"):
        load_custom(str(binary))
    with pytest.raises(ClassFileError, match="folder"):
        load_custom(str(tmp_path))


def test_hypernyms_are_in_a_fixed_order():
    # nltk returns a synset's hypernyms in set order (string hashing); ours are sorted by synset
    # name -- the cross-process check is tests/engine/test_plan_determinism.py
    keyboard = imagenet_class("n03085013")
    assert keyboard.hypernyms == ("data input device", "keyboard")
    assert imagenet_class("n02672831").hypernyms == ("free-reed instrument", "keyboard instrument")


@pytest.mark.parametrize("name, wnids", [("crane", ("n02012849", "n03126707")),
                                         ("Maillot", ("n03710637", "n03710721")),
                                         ("tub", ("n02808440", "n04493381"))])
def test_ambiguous_names_list_every_match(name, wnids, capsys):
    from engine.catalog.classes import AmbiguousClassError
    from engine.cli import main

    with pytest.raises(AmbiguousClassError) as err:
        resolve_imagenet(name)
    assert all(w in str(err.value) for w in wnids) and "wnid" in str(err.value)
    assert main(["classes", name]) == 2
    text = capsys.readouterr().err
    assert all(w in text for w in wnids)
    assert main(["classes", wnids[1]]) == 0                     # the wnid picks one


def test_imagenet100_keeps_its_pinned_tub():
    assert "n04493381" in get_class_set("imagenet100").wnids  # "tub, vat" (Tian et al.'s list)


def test_ambiguous_name_in_a_class_file(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("tench\ncrane\n")
    with pytest.raises(ClassLookupError, match=r"classes.txt:2: 'crane' names 2 .*n03126707"):
        load_custom(str(f))


@pytest.mark.parametrize("token", ["n0144376", "n014407640"])
def test_malformed_wnid_in_a_class_file_is_an_error(tmp_path, token):
    f = tmp_path / "classes.txt"
    f.write_text(f"tench\n{token}\n")
    with pytest.raises(ClassLookupError, match=rf"classes.txt:2: '{token}' looks like a WordNet "
                                               r"noun id but is not one .*8 digits"):
        load_custom(str(f))
    with pytest.raises(ClassLookupError, match="8 digits"):
        get_class_set(f"tench,{token}")


def test_unknown_wnid_in_a_class_file_exits_2(tmp_path, capsys):
    from engine.cli import main

    f = tmp_path / "classes.txt"
    f.write_text("tench\nn99999999\n")  # well formed, but no such WordNet noun
    with pytest.raises(ClassLookupError, match=r"classes.txt:2: unknown WordNet noun id "
                                               r"'n99999999'"):
        load_custom(str(f))
    assert main(["classes", str(f)]) == 2
    err = capsys.readouterr().err
    assert "unknown WordNet noun id 'n99999999'" in err and len(err.strip().splitlines()) == 1


def test_a_limited_json_listing_says_so_on_stderr(capsys):
    from engine.cli import main

    assert main(["classes", "imagenet100", "--json", "--limit", "5"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5 and "5 of 100" in err and "--limit 0" in err
    assert main(["classes", "imagenet100", "--json"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ WordNet and timm, lazily
_LABELS_ONLY = """
import sys
from engine.catalog import get_class_set, imagenet_index, class_names
for spec in ("imagenet1k", "imagenet100", "imagenet-r", "imagenet-a", "tench,goldfish"):
    cs = get_class_set(spec)
    labels = [c.index for c in cs]
    cs.mask(); cs.compact(); cs.describe(); cs.wnids
    [(c.name, c.lemmas, c.definition) for c in cs]
imagenet_index(); class_names()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("nltk", "torch", "timm"))
print("LOADED", loaded)
cs = get_class_set("imagenet100")
papillon = [c for c in cs if c.name == "papillon"][0]
print("HYPERNYMS", papillon.hypernyms)
print("WORDNET", "nltk.corpus.reader.wordnet" in sys.modules)
"""


def test_labels_alone_load_neither_wordnet_nor_torch(tmp_path):
    """Label-only users (eval, loaders, pack) resolve class sets without loading nltk's WordNet
    (seconds) or importing timm/torch; reading h_c then loads WordNet, on first access."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", _LABELS_ONLY], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    assert "LOADED []" in out, out
    assert "HYPERNYMS ('toy spaniel',)" in out  # seed 002 §4, read lazily
    assert "WORDNET True" in out  # the lazy read is what loads WordNet


def test_lazy_hypernyms_equal_wordnets_and_survive_compact_and_pickle():
    import pickle

    from engine.catalog import wordnet as wn
    from engine.catalog.classes import FROM_WORDNET, ClassInfo

    # a fresh set (not the cached one other tests may have read): nothing read yet
    fresh = get_class_set.__wrapped__("imagenet100")
    compact = fresh.compact()
    assert [c.wnid for c in compact] == fresh.wnids and [c.index for c in compact] == \
        list(range(100))
    assert all(c.__dict__["_hypernyms"] is FROM_WORDNET for c in compact)  # still unread
    copy = pickle.loads(pickle.dumps(compact))
    assert copy.classes[0].__dict__["_hypernyms"] is FROM_WORDNET
    for c in (fresh[0], compact[0], copy[0], fresh[57]):
        assert c.hypernyms == tuple(wn.hypernym_lemmas(c.wnid))
    assert fresh[0] == get_class_set("imagenet100")[0] and copy == compact
    # given hypernyms stay as given; a free-form class has none
    assert ClassInfo(0, "n01440764", ("tench",), hypernyms=("fish",)).hypernyms == ("fish",)
    assert ClassInfo(0, None, ("zorblax",)).hypernyms is None


def test_wordnet_class_outside_imagenet_and_description_override(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("n02085620 | a tiny dog\nn02120997\n")
    cs = load_custom(str(f))
    assert cs[0].definition == "a tiny dog" and cs[0].hypernyms == ("toy dog",)
    assert cs[1].lemmas == ("feline", "felid") and cs[1].hypernyms == ("carnivore",)


def test_imagenet_table_equals_timms_imagenet_info():
    """The tables are read from timm's files without importing timm; same as ImageNetInfo."""
    from timm.data import ImageNetInfo

    from engine.catalog import classes

    info = ImageNetInfo()
    wnids, lemmas, defs = classes._imagenet_table()
    assert wnids == [info.index_to_label_name(i) for i in range(1000)]
    for i in range(1000):
        names, _, definition = info.index_to_description(i, detailed=True).partition(": ")
        assert lemmas[i] == tuple(s.strip() for s in names.split(",") if s.strip())
        assert defs[i] == definition.strip()
