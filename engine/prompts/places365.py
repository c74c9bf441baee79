"""The backgrounds ``b`` of the ``c, h_c inside b`` recipe: the 365 Places365 scene categories.

Seed 002 §4.3: "We use *all* scene classes from the Places [121] dataset as background for every
class."  The list is not on PyPI; on first use it is downloaded from the official CSAILVision
repository into ``cache_dir("places365")`` (atomic write), or read from a file the user gives
(``backgrounds=FILE`` / ``--backgrounds FILE``).

A backgrounds file is either the official ``categories_places365.txt`` (``/a/airfield 0``,
``/b/bus_station/indoor 71``), or plain text with one background a line (``#`` comments allowed).

Scene names become natural text (the paper shows prompts, not the raw ids): underscores become
spaces and a sub-category qualifier goes in front of the scene (``/b/bus_station/indoor`` ->
``indoor bus station``, ``/f/field/wild`` -> ``wild field``), except for the few qualifiers that
name a part or place of the scene and read naturally after it (:data:`QUALIFIER_AFTER`:
``/e/elevator/door`` -> ``elevator door``) or that need rewording (:data:`SCENE_OVERRIDES`).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

from engine.paths import atomic_write, cache_dir
from engine.prompts.base import RecipeError

PLACES365_URL = ("https://raw.githubusercontent.com/CSAILVision/places365/master/"
                 "categories_places365.txt")
"""The official Places365 category list (365 lines ``/a/airfield 0``)."""
PLACES365_FILE = "categories_places365.txt"
PLACES365_COUNT = 365
DOWNLOAD_TIMEOUT_S = 30

QUALIFIER_AFTER = frozenset({"door", "platform", "shop"})
"""Qualifiers that read after the scene: ``elevator door``, ``subway station platform``."""
SCENE_OVERRIDES = {
    "temple/asia": "asian temple",
    "underwater/ocean_deep": "deep ocean underwater",
}
"""Categories whose qualifier needs rewording rather than moving."""


class BackgroundsUnavailable(RecipeError):
    """The Places365 list could not be downloaded and no backgrounds file was given."""


def scene_text(category: str) -> str:
    """``/b/bus_station/indoor`` -> ``indoor bus station``; ``/a/airfield`` -> ``airfield``."""
    parts = [p for p in category.strip().split("/") if p]
    if len(parts) >= 2 and len(parts[0]) == 1:  # drop the /a/ letter folder
        parts = parts[1:]
    key = "/".join(parts)
    if key in SCENE_OVERRIDES:
        return SCENE_OVERRIDES[key]
    words = [p.replace("_", " ") for p in parts]
    if len(words) == 1:
        return words[0]
    head, quals = words[0], words[1:]
    if len(quals) == 1 and quals[0] in QUALIFIER_AFTER:
        return f"{head} {quals[0]}"
    return " ".join(quals + [head])


def parse_backgrounds(text: str, source: str) -> list[str]:
    """Backgrounds from a Places365-format or plain one-per-line file (order kept, no dups)."""
    out: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("/"):
            fields = line.split()
            if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
                raise RecipeError(f"{source}:{lineno}: expected a Places365 line like "
                                  f"'/a/airfield 0', got {raw.strip()!r}")
            line = scene_text(fields[0])
        if line in out:
            raise RecipeError(f"{source}:{lineno}: background {line!r} listed twice")
        out.append(line)
    if not out:
        raise RecipeError(f"{source}: no backgrounds (one scene a line, or the Places365 list)")
    return out


def _download(url: str, path: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BackgroundsUnavailable(
            f"could not download the Places365 scene list from {url} ({exc}); without network, "
            f"get {PLACES365_FILE} elsewhere and pass backgrounds=FILE (CLI: --backgrounds FILE)"
        ) from exc
    text = data.decode("utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != PLACES365_COUNT or not all(ln.startswith("/") for ln in lines):
        raise BackgroundsUnavailable(
            f"{url} did not return the Places365 list ({len(lines)} lines, expected "
            f"{PLACES365_COUNT} like '/a/airfield 0'); pass backgrounds=FILE (--backgrounds FILE)")
    parse_backgrounds(text, url)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def load_backgrounds(path: str | None = None, url: str = PLACES365_URL) -> tuple[list[str], dict]:
    """The backgrounds and a provenance record ``{source, sha256, count}`` for the plan header.

    ``path`` given: read it.  Otherwise the cached Places365 list, downloaded from ``url`` once.
    """
    if path is None:
        path = os.path.join(cache_dir("places365"), PLACES365_FILE)
        source = url
        if not os.path.exists(path):
            _download(url, path)
    else:
        source = path
        if not os.path.exists(path):
            raise RecipeError(f"backgrounds file not found: {path} (one scene a line, or the "
                              f"Places365 list from {url})")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    backgrounds = parse_backgrounds(text, path)
    info = {"source": source, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "count": len(backgrounds)}
    return backgrounds, info
