"""S2: prompts of "Diversify, don't fine-tune" (seed 003, §3.1-3.2 and Appendix D).

* ``cd`` - contextual diversification: "we prompt an LLM to produce contextualized descriptions of
  images featuring class c in a specific way that combines foreground objects, background
  objects, lighting condition, and camera angle [...] We collect 600 total responses from the LLM
  for each class and form the generation prompt by joining the descriptions from each aspect with
  a comma and the prefix *a photograph of*" -> ``a photograph of <fg>, <bg>, <lighting>, <camera>``.
* ``sd`` - style diversification: "replace the keyword 'photograph' in the prompts from CD with
  each art style (e.g., 'a photograph of' -> 'a painting of')", over the 60 styles of Appendix D.
* ``disambiguated`` - §3.1: the meaning chosen by label-ambiguity resolution "is used as an
  additional textual description alongside class name c" -> ``crane, a large long-legged bird``.

Descriptions come from an LLM (``llm_url``/``llm_model``) or, by default, the offline backend.
A ``meanings`` JSON file (wnid -> meaning, from :mod:`engine.prompts.ambiguity`) adds the resolved
meaning to the class text given to the backend: ``crane (a large long-legged bird)``.

``sd`` draws the same descriptions of a class as ``cd`` (it shares ``cd``'s per-class seed, and
both backends return prefixes of one list), as §3.2 builds the SD prompts from the CD ones.
Without an LLM or without meanings on ImageNet classes the recipe is *not* the paper's method;
:meth:`_Contextual.notes` says so loudly and the plan header records it.
"""
from __future__ import annotations

from engine.catalog import ClassInfo
from engine.prompts.ambiguity import load_meanings
from engine.prompts.base import Recipe, RecipeError, register
from engine.prompts.common import article, class_key, cycle, describe_class, shuffled
from engine.prompts.data.styles import STYLES
from engine.prompts.llm import LLMBackend, LLMConfig
from engine.prompts.offline import OfflineBackend

PAPER = "seed 003 (Diversify, don't fine-tune)"
CD_PER_CLASS = 600
"""Seed 003 §3.2: "We collect 600 total responses from the LLM for each class"."""


def style_word(style: str) -> str:
    """``Oil painting`` -> ``oil painting``; ``CGI``/``3D model`` keep their capitals."""
    first = style.split()[0]
    return style if first.isupper() or first[:1].isdigit() else style[:1].lower() + style[1:]


def _meaning(meanings: dict | None, cls: ClassInfo, recipe: str, path: str | None) -> str | None:
    if meanings is None:
        return None
    key = class_key(cls)
    if key not in meanings:
        raise RecipeError(f"recipe {recipe!r}: class {describe_class(cls)} has no meaning in "
                          f"{path}; resolve it (engine.prompts.ambiguity) or add '{key}': '...'")
    return meanings[key]


class _Contextual(Recipe):
    """Shared options of ``cd`` and ``sd``: backend, descriptions per class, meanings."""

    def __init__(self, llm_url: str | None = None, llm_model: str | None = None,
                 llm_api_key_env: str = "OPENAI_API_KEY", llm_timeout_s: float = 120.0,
                 llm_retries: int = 4, per_class: int = CD_PER_CLASS, meanings: str | None = None):
        if (llm_url is None) != (llm_model is None):
            raise RecipeError("the LLM backend needs both llm_url and llm_model "
                              "(CLI: --llm-url URL --llm-model NAME); give neither for offline")
        if per_class < 1:
            raise RecipeError(f"per_class must be >= 1, got {per_class}")
        self.backend = (OfflineBackend() if llm_url is None else LLMBackend(LLMConfig(
            url=llm_url, model=llm_model, api_key_env=llm_api_key_env, timeout_s=llm_timeout_s,
            retries=llm_retries)))
        """Where descriptions come from: OfflineBackend (default) or LLMBackend."""
        self.per_class = per_class
        """Distinct descriptions per class (600 in the paper); more images cycle through them."""
        self.meanings_file = meanings
        """JSON file wnid -> resolved meaning; adds the meaning to the class text."""
        self.meanings = load_meanings(meanings) if meanings else None

    def config(self):
        return {"name": self.name, "per_class": self.per_class, "meanings": self.meanings_file,
                **self.backend.config()}

    def check(self, cls):
        _meaning(self.meanings, cls, self.name, self.meanings_file)

    def notes(self, classes) -> list[str]:
        """Loud notes when ImageNet classes are planned without the paper's LLM (§3.2) or
        without label-ambiguity resolution (§3.1)."""
        if not any(c.wnid for c in classes):
            return []
        out = []
        if isinstance(self.backend, OfflineBackend):
            out.append("descriptions come from the offline vocabulary, not the paper's method "
                       "(seed 003 §3.2 asks an LLM, gpt-3.5-turbo, for 600 per class): pass "
                       "--llm-url URL --llm-model NAME for the paper's prompts")
        if self.meanings is None:
            out.append("no label-ambiguity meanings, not the paper's method (seed 003 §3.1 adds "
                       "the resolved meaning to the class name): make them with `synthclone "
                       "meanings` and pass --meanings FILE")
        return out

    def stats(self):
        return self.backend.stats()

    def class_text(self, cls: ClassInfo) -> str:
        meaning = _meaning(self.meanings, cls, self.name, self.meanings_file)
        return f"{cls.name} ({meaning})" if meaning else cls.name

    def descriptions(self, cls: ClassInfo, n: int, seed: int) -> list[str]:
        return self.backend.descriptions(self.class_text(cls), min(n, self.per_class), seed,
                                         names=cls.lemmas, key=class_key(cls))


@register("cd")
class ContextualDiversification(_Contextual):
    """``a photograph of <foreground>, <background>, <lighting>, <camera angle>`` (§3.2)."""

    name = "cd"
    paper = PAPER + " §3.2 (CD)"
    pattern = "a photograph of <foreground>, <background>, <lighting condition>, <camera angle>"

    def prompts(self, cls, n, seed):
        return cycle([f"a photograph of {d}" for d in self.descriptions(cls, n, seed)], n)


@register("sd")
class StyleDiversification(_Contextual):
    """``a <style> of <foreground>, ...``: CD, "photograph" replaced by one of 60 styles (§3.2).

    Image ``i`` takes description ``i % D`` and style ``order[(i % D + i // D) % 60]`` (``order`` a
    seeded permutation of the styles), so each pass over the descriptions shifts the styles and
    no (description, style) pair repeats before ``60 * D`` images.
    """

    name = "sd"
    seed_key = "cd"  # the same descriptions of a class as cd (§3.2: SD prompts are CD's, restyled)
    paper = PAPER + " §3.2 (SD) + Appendix D styles"
    pattern = "a <style> of <foreground>, <background>, <lighting condition>, <camera angle>"

    def prompts(self, cls, n, seed):
        if n == 0:
            return []
        desc = self.descriptions(cls, n, seed)
        styles = shuffled(list(STYLES), seed, "sd-styles")
        out = []
        for i in range(n):
            style = style_word(styles[(i % len(desc) + i // len(desc)) % len(styles)])
            out.append(f"{article(style)} {style} of {desc[i % len(desc)]}")
        return out


@register("disambiguated")
class Disambiguated(Recipe):
    """``c, P_c``: class name and resolved meaning (§3.1: ``crane, a large long-legged bird``)."""

    name = "disambiguated"
    paper = PAPER + " §3.1 (label ambiguity resolution)"
    pattern = "c, P_c"

    def __init__(self, meanings: str | None = None):
        if not meanings:
            raise RecipeError("recipe 'disambiguated' needs meanings=FILE, the JSON wnid -> "
                              "meaning written by label-ambiguity resolution "
                              "(synthclone meanings; CLI: --meanings FILE)")
        self.meanings_file = meanings
        """JSON file wnid (or name, for free-form classes) -> meaning."""
        self.meanings = load_meanings(meanings)

    def config(self):
        return {"name": self.name, "meanings": self.meanings_file}

    def check(self, cls):
        _meaning(self.meanings, cls, self.name, self.meanings_file)

    def prompts(self, cls, n, seed):
        return cycle([f"{cls.name}, {_meaning(self.meanings, cls, self.name, self.meanings_file)}"],
                     n)
