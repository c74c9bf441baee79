"""The offline backend of seed 003's contextual diversification: no LLM, no network.

A deterministic combinatorial generator over the curated vocabularies of
:mod:`engine.prompts.data.contexts`: each description is one (foreground, background, lighting,
camera angle) combination, drawn without replacement from the 57,600 combinations in an order
seeded by (seed, class), so classes differ and reruns agree.
"""
from __future__ import annotations

from engine.prompts.common import rng
from engine.prompts.data.contexts import BACKGROUNDS, CAMERA_ANGLES, FOREGROUNDS, LIGHTING

AXES = (FOREGROUNDS, BACKGROUNDS, LIGHTING, CAMERA_ANGLES)
SPACE = len(FOREGROUNDS) * len(BACKGROUNDS) * len(LIGHTING) * len(CAMERA_ANGLES)


def combination(index: int) -> tuple[int, ...]:
    """Mixed-radix decoding of ``index`` in ``[0, SPACE)`` into one index per aspect."""
    out = []
    for axis in reversed(AXES):
        index, r = divmod(index, len(axis))
        out.append(r)
    return tuple(reversed(out))


class OfflineBackend:
    """Contextual descriptions from curated vocabularies, seeded per class."""

    def config(self) -> dict:
        return {"backend": "offline", "space": SPACE}

    def stats(self) -> None:
        return None

    def descriptions(self, class_text: str, count: int, seed: int = 0, names=(),
                     key: str | None = None) -> list[str]:
        """``count`` distinct descriptions of the class (at most :data:`SPACE`, then cycled).

        The list for a smaller ``count`` is a prefix of the list for a larger one (a seeded
        permutation of the whole space, read from the start), so recipes asking for different
        numbers of descriptions of a class share them (``sd`` reuses ``cd``'s, seed 003 §3.2).
        ``names`` and ``key`` are accepted for the LLM backend's interface and unused."""
        order = rng(seed, "offline-cd", class_text).permutation(SPACE)
        out = []
        for idx in order[:min(count, SPACE)]:
            fg, bg, light, cam = combination(int(idx))
            out.append(f"{FOREGROUNDS[fg].format(c=class_text)}, {BACKGROUNDS[bg]}, "
                       f"{LIGHTING[light]}, {CAMERA_ANGLES[cam]}")
        return [out[j % len(out)] for j in range(count)] if out else []
