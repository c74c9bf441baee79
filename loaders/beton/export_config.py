"""``ExportConfig``: what ``synthclone export`` writes (one docstring per field; the CLI's flags
are made from it). Kept apart from ``export.py`` so that building the CLI imports no FFCV."""
from __future__ import annotations

import dataclasses
from typing import Literal

from loaders.errors import LoaderConfigError

__all__ = ["ExportConfig"]


@dataclasses.dataclass
class ExportConfig:
    """What to export from a .beton."""

    limit: int = 0
    """Samples to export at most: the first ones in file order, after --class (0 = all)."""
    class_key: str | None = None
    """Only this class: a wnid, a label number or a class name as stored in the file."""
    format: Literal["csv", "jsonl"] = "csv"
    """Table format: samples.csv or samples.jsonl."""
    progress: bool = True
    """Show a progress bar on stderr."""

    def __post_init__(self):
        if self.limit < 0:
            raise LoaderConfigError(f"limit={self.limit}: must be >= 0 (0 = all)")
        if self.format not in ("csv", "jsonl"):
            raise LoaderConfigError(f"format={self.format!r}: use csv or jsonl")
