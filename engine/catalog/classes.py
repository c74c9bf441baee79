"""Classes and class sets.

A class is an ImageNet-1K index (timm order: sorted wnids), a wnid, its WordNet lemmas, its
definition (d_c) and its hypernym names (h_c).  Every ImageNet-derived set (ImageNet-1K,
ImageNet-100, the ImageNet-R/A 200-class subsets, a file of ImageNet wnids) keeps the ImageNet-1K
label of each class, so subsets are masks over one label space, not renumberings; ``compact()``
renumbers 0..n-1 when a user asks for it.  Custom classes that are not in ImageNet-1K get compact
labels.

Labels, wnids, lemmas and ImageNet definitions come from timm's tables (milliseconds). What
WordNet alone knows -- hypernyms (h_c) and noun senses -- is read on first access and cached
(loading WordNet takes seconds), so label-only users (eval, loaders, pack) never load it.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import warnings

from engine.catalog import wordnet as wn_mod
from engine.errors import UserError

IMAGENET_NUM_CLASSES = 1000


class ClassLookupError(UserError, LookupError):
    """A wnid or class name that is not known; the message lists close matches."""


class ClassFileError(UserError, ValueError):
    """A class file that cannot be read as one class a line (message names file and line)."""


class _FromWordNet:
    """Marker value of :attr:`ClassInfo.hypernyms`: read from WordNet on first access."""

    def __repr__(self) -> str:
        return "FROM_WORDNET"

    def __reduce__(self):  # pickles as the module's one instance
        return "FROM_WORDNET"


FROM_WORDNET = _FromWordNet()
"""Pass as ``ClassInfo(hypernyms=FROM_WORDNET)`` to read the wnid's hypernyms lazily."""


class _LazyHypernyms:
    """Data descriptor of :attr:`ClassInfo.hypernyms` (a dataclass "descriptor-typed field"):
    stores what ``__init__`` is given; :data:`FROM_WORDNET` is replaced by the wnid's WordNet
    hypernyms the first time the field is read, and cached on the instance."""

    slot = "_hypernyms"

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the field's default: hypernyms unknown
        value = obj.__dict__[self.slot]
        if value is FROM_WORDNET:
            value = tuple(wn_mod.hypernym_lemmas(obj.wnid))
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value

    @classmethod
    def raw(cls, obj):
        """The stored value without reading WordNet (maybe :data:`FROM_WORDNET`)."""
        return obj.__dict__[cls.slot]


@dataclasses.dataclass(frozen=True)
class ClassInfo:
    """One class of a class set."""

    index: int
    """Label: the ImageNet-1K index for ImageNet classes, else a compact 0..n-1 index."""
    wnid: str | None
    """WordNet noun id (``n01440764``), or None for a free-form custom class."""
    lemmas: tuple[str, ...]
    """Synonyms, the first being the class name c (ImageNet's own lemma list)."""
    definition: str | None = None
    """d_c: WordNet gloss / ImageNet description, or a user-given description."""
    hypernyms: tuple[str, ...] | None = _LazyHypernyms()
    """h_c: names of the parent synsets; None when unknown (free-form custom class). Classes
    with a wnid read them from WordNet on first access (:data:`FROM_WORDNET`)."""

    @property
    def name(self) -> str:
        return self.lemmas[0]

    def senses(self) -> list[tuple[str, str]]:
        """All WordNet noun senses of the class name: ``[(wnid, definition), ...]`` (read from
        WordNet on first call, cached per name)."""
        return wn_mod.noun_senses(self.name)

    def replace(self, **changes) -> "ClassInfo":
        """``dataclasses.replace`` that keeps unread hypernyms unread (no WordNet load)."""
        changes.setdefault("hypernyms", _LazyHypernyms.raw(self))
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ClassSet:
    """An ordered list of classes with a name and the size of their label space."""

    name: str
    classes: tuple[ClassInfo, ...]
    num_labels: int
    """Size of the label space (1000 for ImageNet-derived sets)."""

    def __len__(self):
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __getitem__(self, i):
        return self.classes[i]

    @property
    def wnids(self) -> list[str | None]:
        return [c.wnid for c in self.classes]

    def mask(self):
        """Boolean mask over the label space (numpy array): True for labels in this set."""
        import numpy as np

        m = np.zeros(self.num_labels, dtype=bool)
        m[[c.index for c in self.classes]] = True
        return m

    def compact(self) -> "ClassSet":
        """The same classes renumbered 0..n-1 (in this set's order)."""
        return ClassSet(self.name + ":compact",
                        tuple(c.replace(index=i) for i, c in enumerate(self.classes)),
                        len(self.classes))

    def describe(self) -> dict:
        return {"name": self.name, "num_classes": len(self), "num_labels": self.num_labels}


def _unknown(kind: str, key: str, candidates) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return f"unknown {kind} {key!r}{hint}"


# ---------------------------------------------------------------------------- ImageNet-1K
@functools.lru_cache(maxsize=1)
def _imagenet_table() -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    """(wnids, lemmas, definitions) of ImageNet-1K in timm order, read offline from the files
    timm ships, as ``timm.data.ImageNetInfo`` reads them (tests compare the two)."""
    wnids = _timm_info_lines("imagenet_synsets.txt")[:IMAGENET_NUM_CLASSES]
    lemma_of = _timm_info_table("imagenet_synset_to_lemma.txt")
    definition_of = _timm_info_table("imagenet_synset_to_definition.txt")
    lemmas, defs = [], []
    for w in wnids:
        desc = f"{lemma_of[w]}: {definition_of[w]}"  # ImageNetInfo's detailed description
        names, _, definition = desc.partition(": ")
        lemmas.append(tuple(s.strip() for s in names.split(",") if s.strip()))
        defs.append(definition.strip())
    return wnids, lemmas, defs


@functools.lru_cache(maxsize=1)
def _wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(_imagenet_table()[0])}


def imagenet_index() -> dict[str, int]:
    """``{wnid: ImageNet-1K label}`` (timm order: sorted wnids), e.g. ``n01440764 -> 0``.

    The label space every ImageNet-derived set uses (DESIGN.md "Label space"); ``loaders``
    reads labels through this (the one ``engine`` import it may do). A new dict each call."""
    return dict(_wnid_to_index())


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1K wnids in label order."""
    return tuple(_imagenet_table()[0])


def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1K class names (each class's first lemma) in label order, e.g.
    ``class_names()[0] == "tench"``."""
    return tuple(ls[0] for ls in _imagenet_table()[1])


@functools.lru_cache(maxsize=1)
def _name_to_wnid() -> dict[str, str]:
    """Lower-cased lemma -> wnid; a class's first lemma wins over another class's later lemma.

    Only for the pinned ImageNet-100 name list; names typed by users go through
    :func:`_name_matches`, which refuses a name that several classes share."""
    wnids, lemmas, _ = _imagenet_table()
    table: dict[str, str] = {}
    for rank in range(max(len(l) for l in lemmas)):
        for w, ls in zip(wnids, lemmas):
            if rank < len(ls):
                table.setdefault(ls[rank].lower(), w)
    return table


@functools.lru_cache(maxsize=1)
def _name_to_wnids() -> dict[str, tuple[str, ...]]:
    """Lower-cased lemma -> every wnid having it, in label order (``crane`` -> the bird and the
    machine)."""
    wnids, lemmas, _ = _imagenet_table()
    table: dict[str, list[str]] = {}
    for w, ls in zip(wnids, lemmas):
        for lemma in ls:
            found = table.setdefault(lemma.lower(), [])
            if w not in found:
                found.append(w)
    return {k: tuple(v) for k, v in table.items()}


class AmbiguousClassError(ClassLookupError):
    """A class name that several ImageNet-1K classes share (``crane``, ``maillot``)."""


def _ambiguous(key: str, wnids, where: str = "") -> AmbiguousClassError:
    _, lemmas, defs = _imagenet_table()
    index = _wnid_to_index()
    listing = "; ".join(f"{w} ({', '.join(lemmas[index[w]])}: {defs[index[w]]})" for w in wnids)
    return AmbiguousClassError(
        f"{where}{key!r} names {len(wnids)} ImageNet-1K classes: {listing}; give the wnid of the "
        f"one you mean (or list several wnids)")


def imagenet_class(wnid: str) -> ClassInfo:
    """The ImageNet-1K class of a wnid; its hypernyms are read from WordNet when first used."""
    idx = _wnid_to_index().get(wnid)
    if idx is None:
        raise ClassLookupError(_unknown("ImageNet-1K wnid", wnid, _wnid_to_index()))
    _, lemmas, defs = _imagenet_table()
    return ClassInfo(index=idx, wnid=wnid, lemmas=lemmas[idx], definition=defs[idx],
                     hypernyms=FROM_WORDNET)


def resolve_imagenet(key: str) -> str:
    """A wnid or an ImageNet class name (any lemma, case-insensitive) -> wnid.

    A name that several classes share (``crane``: the bird and the machine) is an
    :class:`AmbiguousClassError` listing every match, so that the user picks a wnid."""
    key = key.strip()
    if key in _wnid_to_index():
        return key
    if _wnid_like(key):
        raise ClassLookupError(_unknown("ImageNet-1K wnid", key, _wnid_to_index())
                               + _malformed_hint(key))
    wnids = _name_to_wnids().get(key.lower())
    if not wnids:
        pool = [l for ls in _imagenet_table()[1] for l in ls]
        raise ClassLookupError(_unknown("ImageNet-1K class", key, pool))
    if len(wnids) > 1:
        raise _ambiguous(key, wnids)
    return wnids[0]


def _looks_like_wnid(key: str) -> bool:
    return len(key) == 9 and key[0] == "n" and key[1:].isdigit()


def _wnid_like(key: str) -> bool:
    """``n`` followed by digits only: meant as a wnid, whether or not it is a well-formed one."""
    return len(key) > 1 and key[0] == "n" and key[1:].isdigit()


def _malformed_hint(key: str) -> str:
    if _looks_like_wnid(key):
        return ""
    return (f" ({key!r} has {len(key) - 1} digits; a WordNet noun id is 'n' and 8 digits, "
            "e.g. n01440764)")


def _imagenet_set(name: str, wnids) -> ClassSet:
    classes = sorted((imagenet_class(w) for w in wnids), key=lambda c: c.index)
    return ClassSet(name, tuple(classes), IMAGENET_NUM_CLASSES)


def _timm_info_path(filename: str) -> str:
    """A file of ``timm/data/_info`` (ImageNet metadata timm ships), found without importing
    timm: ``import timm`` imports torch and torchvision (seconds), which label lookups never
    need."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the ImageNet class tables come from timm, which is not "
                                  "installed: pip install timm", name="timm")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "_info", filename)


def _timm_info_lines(filename: str) -> list[str]:
    with open(_timm_info_path(filename), encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()]


def _timm_info_table(filename: str) -> dict[str, str]:
    """``key<TAB>value`` lines as a dict (``csv.reader(delimiter="\\t")``, as timm reads them)."""
    import csv

    with open(_timm_info_path(filename), encoding="utf-8") as f:
        return dict(csv.reader(f.read().splitlines(), delimiter="\t"))


# --------------------------------------------------------------------------- custom sets
def load_custom(path: str) -> ClassSet:
    """A class set from a text file, one class a line (``#`` comments, blank lines ignored).

    Each line is either a WordNet noun id (``n01440764``) or a free-form name, optionally followed
    by ``|`` description and ``|`` hypernym (``caracal | a wild cat of Africa | wild cat``).
    Names that are ImageNet-1K lemmas and wnids of ImageNet-1K resolve to ImageNet classes; if
    every line is an ImageNet class the set keeps ImageNet labels, otherwise labels are compact.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"class file not found: {path}")
    if os.path.isdir(path):
        raise ClassFileError(f"{path} is a folder; give a class file (one wnid or name a line)")
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as exc:
        raise ClassFileError(f"{path}: not a UTF-8 text file ({exc.reason} at byte "
                             f"{exc.start}); give one wnid or class name a line") from None
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 3 or not parts[0]:
            raise ClassFileError(f"{path}:{lineno}: expected 'wnid' or 'name [| description "
                                 f"[| hypernym]]', got {raw.strip()!r}")
        entries.append((lineno, parts))
    if not entries:
        raise ClassFileError(f"{path}: no classes (one wnid or name per line)")
    classes = []
    for lineno, parts in entries:
        key = parts[0]
        desc = parts[1] if len(parts) > 1 and parts[1] else None
        hyper = (parts[2],) if len(parts) > 2 and parts[2] else None
        if _wnid_like(key) and not _looks_like_wnid(key):
            raise ClassLookupError(f"{path}:{lineno}: {key!r} looks like a WordNet noun id but "
                                   f"is not one{_malformed_hint(key)}")
        if _looks_like_wnid(key):
            if key in _wnid_to_index():
                c = imagenet_class(key)
            else:
                c = _wordnet_class(key, path, lineno)
        elif len(parts) == 1 and key.lower() in _name_to_wnids():
            matches = _name_to_wnids()[key.lower()]
            if len(matches) > 1:
                raise _ambiguous(key, matches, where=f"{path}:{lineno}: ")
            c = imagenet_class(matches[0])
        else:
            c = ClassInfo(index=-1, wnid=None, lemmas=(key,), definition=desc, hypernyms=hyper)
        if desc or hyper:
            c = c.replace(definition=desc or c.definition,
                          hypernyms=hyper or _LazyHypernyms.raw(c))
        classes.append(c)
    keys = [c.wnid or c.name for c in classes]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ClassFileError(f"{path}: classes listed twice: {', '.join(dups)}")
    name = "custom:" + os.path.basename(path)
    if all(c.index >= 0 for c in classes):
        return ClassSet(name, tuple(classes), IMAGENET_NUM_CLASSES)
    return ClassSet(name, tuple(classes), len(classes)).compact()


def _wordnet_class(wnid: str, path: str, lineno: int) -> ClassInfo:
    with warnings.catch_warnings():  # nltk >= 3.9 warns and returns None for unknown offsets
        warnings.simplefilter("ignore", UserWarning)
        try:
            syn = wn_mod.synset_of(wnid)
        except Exception as exc:  # older nltk raises WordNetError / ValueError
            raise ClassLookupError(f"{path}:{lineno}: unknown WordNet noun id {wnid!r} "
                                   f"({exc})") from exc
    if syn is None:
        raise ClassLookupError(f"{path}:{lineno}: unknown WordNet noun id {wnid!r} (no such "
                               "noun in WordNet 3.0); check the wnid")
    return ClassInfo(index=-1, wnid=wnid, lemmas=tuple(wn_mod.clean(l.name()) for l in syn.lemmas()),
                     definition=syn.definition(), hypernyms=FROM_WORDNET)


# ------------------------------------------------------------------------------ registry
def _imagenet1k():
    return _imagenet_set("imagenet1k", _imagenet_table()[0])


def _imagenet100():
    from engine.catalog.imagenet100 import IMAGENET100_NAMES

    # The paper's names, pinned to Tian et al.'s wnids by the tests; a shared name ("tub")
    # resolves to the class whose first lemma it is.
    return _imagenet_set("imagenet100", [_name_to_wnid()[n.lower()] for n in IMAGENET100_NAMES])


def _imagenet_r():
    return _imagenet_set("imagenet-r", _timm_info_lines("imagenet_r_synsets.txt"))


def _imagenet_a():
    return _imagenet_set("imagenet-a", _timm_info_lines("imagenet_a_synsets.txt"))


PRESETS = {
    "imagenet1k": _imagenet1k,
    "imagenet100": _imagenet100,
    "imagenet-r": _imagenet_r,
    "imagenet-a": _imagenet_a,
}


@functools.lru_cache(maxsize=16)
def get_class_set(spec: str, compact: bool = False) -> ClassSet:
    """Resolve a class-set spec.

    ``imagenet1k`` | ``imagenet100`` | ``imagenet-r`` | ``imagenet-a`` | a path to a class file
    (see :func:`load_custom`) | a comma-separated list of ImageNet wnids or class names
    (``tench,n01443537,great white shark``).
    """
    spec = spec.strip()
    if spec in PRESETS:
        cs = PRESETS[spec]()
    elif os.path.exists(spec) or spec.startswith("file:"):
        cs = load_custom(spec[5:] if spec.startswith("file:") else spec)
    else:
        keys = [k for k in spec.split(",") if k.strip()]
        if not keys:
            raise ClassLookupError("empty class-set spec")
        if len(keys) == 1 and "," not in spec and "/" in spec:
            raise FileNotFoundError(f"class file not found: {spec}")
        try:
            wnids = [resolve_imagenet(k) for k in keys]
        except ClassLookupError as exc:
            if len(keys) == 1:
                presets = difflib.get_close_matches(spec, list(PRESETS), n=3, cutoff=0.6)
                if presets:
                    raise ClassLookupError(f"unknown class set {spec!r}; did you mean: "
                                           f"{', '.join(presets)}?") from None
            raise exc
        dups = sorted({w for w in wnids if wnids.count(w) > 1})
        if dups:
            raise ClassLookupError(f"classes listed twice: {', '.join(dups)}")
        cs = ClassSet("list", tuple(imagenet_class(w) for w in wnids), IMAGENET_NUM_CLASSES)
    return cs.compact() if compact else cs
