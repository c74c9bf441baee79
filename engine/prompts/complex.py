"""S0: complex prompts of "Will large-scale generative models corrupt future datasets?" (seed 000).

Hataya, Bao & Arai, ICCV 2023, supplementary A.5: "We synthetically generated complex prompts for
each ImageNet category [...]. The words modifying the prompts are selected to mimic human prompts
and be applicable to all classes in ImageNet. Because many classes have multiple category names,
e.g., 'African elephant' and 'Loxodonta africana' for the African elephant class, this script can
generate a variety of prompts, namely from 200 to 1300 different prompts per class."

The script itself did not survive in our copy of the supplement (only its ``import numpy as np``),
so this recipe reproduces its stated properties: every category name (lemma) of the class, each
combined with every class-agnostic modifier combination of
:mod:`engine.prompts.data.complex_modifiers`
(200 per name: framing x detail x quality, e.g. ``a photo of an African elephant, highly detailed,
8k``).  The class's space of ``200 * len(lemmas)`` prompts is drawn without replacement in a
seeded order, so the 1300 images per class of an ImageNet-sized clone get
``min(1300, 200 * len(lemmas))`` different prompts -- 200 to 1300, as A.5 says.
"""
from __future__ import annotations

import itertools

from engine.prompts.base import Recipe, register
from engine.prompts.common import article, cycle, shuffled
from engine.prompts.data.complex_modifiers import DETAILS, FRAMINGS, QUALITY

PER_NAME = len(FRAMINGS) * len(DETAILS) * len(QUALITY)


def complex_prompts(name: str) -> list[str]:
    """All 200 complex prompts of one category name, in a fixed order."""
    return [f"{framing.format(a=article(name), c=name)}, {detail}, {quality}"
            for framing, detail, quality in itertools.product(FRAMINGS, DETAILS, QUALITY)]


@register("complex")
class ComplexPrompts(Recipe):
    """Human-like complex prompts over every category name of the class (seed 000 A.5)."""

    name = "complex"
    paper = "seed 000 (Hataya et al., Will large-scale generative models corrupt future " \
            "datasets?, ICCV 2023) supplementary A.5"
    pattern = "<framing of c>, <detail>, <quality> for every category name c (200 per name)"

    def space(self, cls) -> list[str]:
        """Every distinct prompt of the class: ``200 * len(cls.lemmas)`` strings."""
        return [p for lemma in cls.lemmas for p in complex_prompts(lemma)]

    def prompts(self, cls, n, seed):
        return cycle(shuffled(self.space(cls), seed, self.name), n)
