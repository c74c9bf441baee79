"""S1: the six class-agnostic prompts of "Fake it till you make it" (seeds 001/002, §4).

Sariyildiz et al., CVPR 2023, §4.1-4.3 and Table 2.  Notation of the paper:

* ``c``   - "We use the synset lemmas corresponding to each class as class-name prompt 'c',
  comma-separated if more than one" (§4.1), e.g. ``robin, American robin, Turdus migratorius``.
* ``h_c`` - "the *hypernyms* h_c of the synset as defined by the Wordnet graph, *i.e.*, the class
  name(s) of the parent node(s)" (§4.2); papillon -> ``toy spaniel``.
* ``d_c`` - "the *definition* d_c of the synset" (§4.2).
* ``b``   - a scene of Places365; "We generate images for every possible combination of a class c
  and a scene b" (§4.3).

Each of the first five recipes has a single prompt per class, repeated ``n`` times.
"""
from __future__ import annotations

from engine.catalog import ClassInfo
from engine.prompts.base import Recipe, get_recipe, register
from engine.prompts.common import (cycle, definition_text, hypernym_text, shuffled, split_counts,
                                   synset_text)
from engine.prompts.places365 import PLACES365_URL, load_backgrounds

PAPER = "seed 002 (Sariyildiz et al., Fake it till you make it, CVPR 2023)"


class _SinglePrompt(Recipe):
    """A recipe with one prompt per class (``prompt(cls)``), repeated ``n`` times."""

    def prompt(self, cls: ClassInfo) -> str:
        raise NotImplementedError

    def prompts(self, cls: ClassInfo, n: int, seed: int) -> list[str]:
        return cycle([self.prompt(cls)], n)

    def check(self, cls: ClassInfo) -> None:
        self.prompt(cls)


@register("c")
class ClassName(_SinglePrompt):
    """``p_c = "c"``: the synset lemmas, comma-joined (§4.1, Table 2 row 2)."""

    name = "c"
    paper = PAPER + " §4.1"
    pattern = "c"

    def prompt(self, cls):
        return synset_text(cls)


@register("c_hc")
class ClassHypernym(_SinglePrompt):
    """``p_c = "c, h_c"``: class name and hypernym(s) (§4.2, Table 2 row 3)."""

    name = "c_hc"
    paper = PAPER + " §4.2"
    pattern = "c, h_c"

    def prompt(self, cls):
        return f"{synset_text(cls)}, {hypernym_text(cls, self.name)}"


@register("c_dc")
class ClassDefinition(_SinglePrompt):
    """``p_c = "c, d_c"``: class name and WordNet definition (§4.2, Table 2 row 4)."""

    name = "c_dc"
    paper = PAPER + " §4.2"
    pattern = "c, d_c"

    def prompt(self, cls):
        return f"{synset_text(cls)}, {definition_text(cls, self.name)}"


@register("multiple")
class Multiple(_SinglePrompt):
    """``p_c = "a photo of multiple c, h_c"`` (§4.3 "Generating multiple instances", row 5)."""

    name = "multiple"
    paper = PAPER + " §4.3"
    pattern = "a photo of multiple c, h_c"

    def prompt(self, cls):
        return f"a photo of multiple {synset_text(cls)}, {hypernym_text(cls, self.name)}"


@register("multiple_different")
class MultipleDifferent(_SinglePrompt):
    """``p_c = "a photo of multiple different c, h_c"`` (§4.3, Table 2 row 6)."""

    name = "multiple_different"
    paper = PAPER + " §4.3"
    pattern = "a photo of multiple different c, h_c"

    def prompt(self, cls):
        return (f"a photo of multiple different {synset_text(cls)}, "
                f"{hypernym_text(cls, self.name)}")


@register("c_hc_inside_b")
class InsideBackground(Recipe):
    """``p_c = "c, h_c inside b"`` over every Places365 scene b (§4.3, "Diversifying the
    background").

    "We generate images for every possible combination of a class c and a scene b" -- for ``n``
    images of a class, image ``j`` uses scene ``order[j % B]``, where ``order`` is a permutation of
    the ``B`` backgrounds drawn from the seed (so ``n >= B`` covers every scene, and a smaller
    ``n`` still spreads over unrelated scenes rather than the alphabet's first letters).
    """

    name = "c_hc_inside_b"
    paper = PAPER + " §4.3"
    pattern = "c, h_c inside b"

    def __init__(self, backgrounds: str | None = None, backgrounds_url: str = PLACES365_URL):
        self.backgrounds_file = backgrounds
        """A backgrounds file (Places365 format or one scene a line); None: the official list."""
        self.backgrounds_url = backgrounds_url
        """Where the official list is downloaded from when no file is given."""
        self._loaded: tuple[list[str], dict] | None = None

    def backgrounds(self) -> list[str]:
        """The scenes (downloaded or read once, then kept)."""
        if self._loaded is None:
            self._loaded = load_backgrounds(self.backgrounds_file, self.backgrounds_url)
        return self._loaded[0]

    def config(self) -> dict:
        self.backgrounds()
        return {"name": self.name, "backgrounds": self._loaded[1]}

    def check(self, cls):
        hypernym_text(cls, self.name)
        self.backgrounds()

    def prompts(self, cls, n, seed):
        base = f"{synset_text(cls)}, {hypernym_text(cls, self.name)}"
        scenes = shuffled(self.backgrounds(), seed, self.name)
        return cycle([f"{base} inside {b}" for b in scenes], n)


S1_SIX = ("c", "c_hc", "c_dc", "multiple", "multiple_different", "c_hc_inside_b")


@register("s1_mix")
class SixPromptMix(Recipe):
    """All six prompts above, mixed in equal shares: the ImageNet-100-SD "10x" set (§5, Table 2).

    "We therefore generated a dataset 10x larger than ImageNet-100, using all six prompt variants
    presented in Sec. 4".  The paper gives no proportions; we deal the ``n`` images round-robin
    (image ``i`` uses recipe ``S1_SIX[i % 6]``), so every prefix of the list is balanced and each
    recipe gets ``n/6`` images (the backgrounds one still cycles through every scene).
    """

    name = "s1_mix"
    paper = PAPER + " §5 (Table 2, 10x row)"
    pattern = "c | c, h_c | c, d_c | a photo of multiple c, h_c | " \
              "a photo of multiple different c, h_c | c, h_c inside b"

    def __init__(self, backgrounds: str | None = None, backgrounds_url: str = PLACES365_URL):
        self.parts = [get_recipe(r) for r in S1_SIX[:-1]]
        self.parts.append(get_recipe("c_hc_inside_b", backgrounds=backgrounds,
                                     backgrounds_url=backgrounds_url))

    def config(self):
        return {"name": self.name, "parts": [p.config() for p in self.parts]}

    def check(self, cls):
        for p in self.parts:
            p.check(cls)

    def prompts(self, cls, n, seed):
        counts = split_counts(n, len(self.parts))
        lists = [p.prompts(cls, k, seed) for p, k in zip(self.parts, counts)]
        return [lists[i % len(lists)][i // len(lists)] for i in range(n)]
