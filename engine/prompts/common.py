"""Small helpers shared by the recipes: stable per-class randomness, cycling, class text."""
from __future__ import annotations

import hashlib
import math

import numpy as np

from engine.catalog import ClassInfo
from engine.prompts.base import RecipeError


def rng(seed: int, *salt) -> np.random.Generator:
    """A numpy generator from ``seed`` and any salt (strings, ints), stable across runs/platforms.

    Python's ``hash()`` is salted per process, so the key goes through sha256 instead.
    """
    key = repr((int(seed),) + tuple(salt)).encode("utf-8")
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:16], "little"))


def class_key(cls: ClassInfo) -> str:
    """The stable identity of a class: its wnid, or its name for a free-form custom class."""
    return cls.wnid or cls.name


def describe_class(cls: ClassInfo) -> str:
    """How an error message names a class: ``'papillon' (n02086910, label 157)``."""
    ident = f"{cls.wnid}, label {cls.index}" if cls.wnid else f"label {cls.index}"
    return f"{cls.name!r} ({ident})"


def cycle(pool: list[str], n: int) -> list[str]:
    """Exactly ``n`` items: ``pool`` repeated in its order (``pool[j % len(pool)]``)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n and not pool:
        raise RecipeError("no prompts to cycle through (empty pool)")
    return [pool[j % len(pool)] for j in range(n)]


def shuffled(pool: list[str], seed: int, *salt) -> list[str]:
    """``pool`` in a deterministic order drawn from ``(seed, *salt)``."""
    order = rng(seed, *salt).permutation(len(pool))
    return [pool[i] for i in order]


def split_counts(n: int, parts: int) -> list[int]:
    """How many of ``n`` items part ``k`` gets when items are dealt round-robin (k = i % parts)."""
    return [max(0, math.ceil((n - k) / parts)) for k in range(parts)]


def article(word: str) -> str:
    """``a`` or ``an`` for an English word (by its first letter; good enough for prompts)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def synset_text(cls: ClassInfo) -> str:
    """Seed 002 §4.1's ``c``: the synset lemmas, comma-separated if more than one."""
    return ", ".join(cls.lemmas)


def hypernym_text(cls: ClassInfo, recipe: str) -> str:
    """Seed 002 §4.2's ``h_c``: the name(s) of the parent node(s), comma-separated."""
    if not cls.hypernyms:
        raise RecipeError(
            f"recipe {recipe!r} needs the hypernym h_c of class {describe_class(cls)}, which has "
            "none: give it in the class file as 'name | description | hypernym', or use a recipe "
            "without h_c (c, c_dc)")
    return ", ".join(cls.hypernyms)


def definition_text(cls: ClassInfo, recipe: str) -> str:
    """Seed 002 §4.2's ``d_c``: the WordNet definition of the synset."""
    if not cls.definition:
        raise RecipeError(
            f"recipe {recipe!r} needs the definition d_c of class {describe_class(cls)}, which has "
            "none: give it in the class file as 'name | description', or use a recipe without d_c")
    return cls.definition
