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

    def descriptions(self, class_text: str, count: int, seed: int = 0) -> list[str]:
        """``count`` distinct descriptions of the class (at most :data:`SPACE`, then cycled)."""
        picks = rng(seed, "offline-cd", class_text).choice(SPACE, size=min(count, SPACE),
                                                           replace=False)
        out = []
        for idx in picks:
            fg, bg, light, cam = combination(int(idx))
            out.append(f"{FOREGROUNDS[fg].format(c=class_text)}, {BACKGROUNDS[bg]}, "
                       f"{LIGHTING[light]}, {CAMERA_ANGLES[cam]}")
        return [out[j % len(out)] for j in range(count)] if out else []
