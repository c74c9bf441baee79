"""The prompt-recipe contract and registry.

A recipe turns one class into ``n`` prompts, deterministically from a seed:

    recipe = get_recipe("c_hc_inside_b", backgrounds="places365.txt")
    recipe.prompts(cls, n=13, seed=1234)   # -> list of 13 strings

``engine.plan`` calls ``prompts`` once per (recipe, class) with ``seed`` derived from the plan's
master seed, the recipe name and the class, and requires exactly ``n`` strings back.  Recipes
that have fewer distinct prompts than ``n`` cycle through them in a fixed order.
"""
from __future__ import annotations

from engine.errors import UserError
import abc
from typing import Callable

from engine.catalog import ClassInfo


class RecipeError(UserError, ValueError):
    """A recipe cannot produce prompts for a class (missing hypernym, bad template, ...)."""


class Recipe(abc.ABC):
    """A named, documented prompt recipe from one of the papers."""

    name: str = ""
    """Registry name (``c``, ``c_hc``, ``c_dc``, ...)."""
    paper: str = ""
    """Where the recipe comes from: seed file, paper and section."""
    pattern: str = ""
    """The prompt in the paper's notation, e.g. ``"c, h_c inside b"``."""
    seed_key: str = ""
    """Name the plan derives this recipe's per-class seed from (empty: ``name``). ``sd`` uses
    ``cd``'s, so that it draws the same descriptions of a class as ``cd`` (seed 003 §3.2)."""

    @abc.abstractmethod
    def prompts(self, cls: ClassInfo, n: int, seed: int) -> list[str]:
        """Exactly ``n`` prompts for class ``cls``; the same arguments give the same list."""

    def config(self) -> dict:
        """The recipe's resolved options, recorded in the plan header."""
        return {"name": self.name}

    def check(self, cls: ClassInfo) -> None:
        """Raise :class:`RecipeError` naming the class if it cannot serve it (default: ok)."""

    def notes(self, classes) -> list[str]:
        """Warnings about using this recipe on ``classes`` (e.g. "not the paper's method"),
        recorded in the plan header and printed by the CLI (default: none)."""
        return []

    def stats(self) -> dict | None:
        """What happened while making prompts (per class), for the plan header; None: nothing
        to report. Called after every class's prompts were made."""
        return None


_REGISTRY: dict[str, Callable[..., Recipe]] = {}


def register(name: str):
    """Class decorator: make a recipe constructible by name through :func:`get_recipe`."""

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"recipe {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def recipe_names() -> list[str]:
    return sorted(_REGISTRY)


def get_recipe(name: str, **options) -> Recipe:
    """Build the recipe registered as ``name`` with its options (unknown name -> RecipeError)."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise RecipeError(f"unknown recipe {name!r}{hint} (known: {', '.join(recipe_names())})")
    return _REGISTRY[name](**options)


def recipe_factory(name: str) -> Callable[..., Recipe]:
    """The registered class (factory) of recipe ``name``: its ``pattern``, ``paper`` and
    options without building it (unknown name -> RecipeError)."""
    if name not in _REGISTRY:
        get_recipe(name)  # raises the helpful unknown-recipe error
    return _REGISTRY[name]


def accepted_options(name: str) -> set[str]:
    """The option names recipe ``name`` takes (its constructor's keyword parameters)."""
    import inspect

    factory = _REGISTRY.get(name)
    if factory is None:
        get_recipe(name)  # raises the helpful unknown-recipe error
    init = getattr(factory, "__init__", None)
    if init is None or init is object.__init__:
        return set()
    return {p for p in inspect.signature(init).parameters if p != "self"}


def build_recipe(name: str, options: dict, strict: bool = True) -> Recipe:
    """Build recipe ``name`` from a pool of CLI options (``None`` means "not given").

    Given options the recipe does not take are an error when ``strict`` (``--template`` with
    ``--recipe c_hc``), else ignored (one option pool shared by several recipes).
    """
    given = {k: v for k, v in options.items() if v is not None}
    accepted = accepted_options(name)
    unused = sorted(set(given) - accepted)
    if unused and strict:
        raise RecipeError(f"recipe {name!r} takes no option {', '.join(unused)} (it takes: "
                          f"{', '.join(sorted(accepted)) or 'none'})")
    return get_recipe(name, **{k: v for k, v in given.items() if k in accepted})
