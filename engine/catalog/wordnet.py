"""WordNet 3.0 access through nltk, with or without ``nltk.download``.

Order of preference:
1. nltk's own ``wordnet`` corpus, if the user downloaded it (same data as Debian's).
2. The Debian ``wordnet-base`` files (``/usr/share/wordnet``; the Makefile installs them), copied
   once into ``$SYNTHCLONE_CACHE/nltk_data/corpora/wordnet`` together with the ``lexnames`` file
   that Debian does not ship (nltk refuses symlinks, hence the copy).

ImageNet wnids are WordNet 3.0 noun offsets (``n01440764`` -> offset 1440764).
"""
from __future__ import annotations

from engine.errors import UserError
import functools
import os
import shutil
import tempfile
import warnings

from engine.paths import cache_dir

DEBIAN_WORDNET = "/usr/share/wordnet"

# lexnames(5WN): number, lexicographer file name, syntactic category (1 noun .. 4 adverb).
LEXNAMES = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
    "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1",
    "noun.communication 1", "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1",
    "noun.location 1", "noun.motive 1", "noun.object 1", "noun.person 1", "noun.phenomenon 1",
    "noun.plant 1", "noun.possession 1", "noun.process 1", "noun.quantity 1",
    "noun.relation 1", "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2",
    "verb.competition 2", "verb.consumption 2", "verb.contact 2", "verb.creation 2",
    "verb.emotion 2", "verb.motion 2", "verb.perception 2", "verb.possession 2",
    "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
)


class WordNetUnavailable(UserError, RuntimeError):
    pass


def _install_debian_copy(root: str) -> None:
    """Copy the Debian WordNet files under ``root/corpora/wordnet`` (atomically) + lexnames."""
    target = os.path.join(root, "corpora", "wordnet")
    if os.path.exists(os.path.join(target, "lexnames")):
        return
    if not os.path.exists(os.path.join(DEBIAN_WORDNET, "data.noun")):
        raise WordNetUnavailable(
            "WordNet 3.0 is not available: neither nltk's 'wordnet' corpus nor the Debian files "
            f"in {DEBIAN_WORDNET} were found. Run `make setup` (installs Debian's wordnet-base), "
            "or `python -m nltk.downloader wordnet` where you have internet.")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".wordnet-", dir=os.path.dirname(target))
    for name in os.listdir(DEBIAN_WORDNET):
        src = os.path.join(DEBIAN_WORDNET, name)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(tmp, name))
    with open(os.path.join(tmp, "lexnames"), "w", encoding="utf-8") as f:
        for i, line in enumerate(LEXNAMES):
            name, cat = line.split()
            f.write(f"{i:02d}\t{name}\t{cat}\n")
    try:
        os.rename(tmp, target)
    except OSError:  # another process won the race: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def wordnet():
    """The nltk WordNet corpus reader (loaded once)."""
    import nltk
    from nltk.corpus import wordnet as wn

    try:
        wn.ensure_loaded()
        return wn
    except LookupError:
        pass
    root = os.path.join(cache_dir(), "nltk_data")
    _install_debian_copy(root)
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():  # "multilingual functions are not available": expected, no OMW
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(os.path.join(root, "corpora", "wordnet"), None)


def synset_of(wnid: str):
    """The noun synset of an ImageNet wnid (``n02085620``)."""
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        raise ValueError(f"not a WordNet noun id: {wnid!r} (expected like 'n02085620')")
    return wordnet().synset_from_pos_and_offset("n", int(wnid[1:]))


def clean(lemma: str) -> str:
    return lemma.replace("_", " ")


def hypernym_lemmas(wnid: str) -> list[str]:
    """Names of the parent synsets (first lemma of each hypernym), e.g. papillon -> toy spaniel.

    Ordered by synset name (``data_input_device.n.01`` before ``keyboard.n.01``): nltk keeps a
    synset's pointers in a ``set`` and returns them in an order that follows Python's string
    hashing, so without an explicit order "c, h_c" would differ between processes.
    """
    syn = synset_of(wnid)
    parents = syn.hypernyms() or syn.instance_hypernyms()
    return [clean(p.lemmas()[0].name()) for p in sorted(parents, key=lambda s: s.name())]


def noun_senses(name: str) -> list[tuple[str, str]]:
    """All WordNet noun senses of a name: ``[(wnid, definition), ...]`` in WordNet order
    (cached per name; a new list each call)."""
    return list(_noun_senses(name.strip().replace(" ", "_")))


@functools.lru_cache(maxsize=4096)
def _noun_senses(key: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"n{s.offset():08d}", s.definition()) for s in wordnet().synsets(key, pos="n"))
