"""``PackConfig``: what ``pack`` packs and how (one docstring per field; the CLI's flags and the
``pack:`` section of a config file are made from it). Kept apart from ``pack.py`` so that
building the CLI (``synthclone pack --help``) imports neither FFCV nor OpenCV.
"""
from __future__ import annotations

import dataclasses

__all__ = ["PackConfig"]


@dataclasses.dataclass
class PackConfig:
    """What to pack and how."""

    source: str
    """An ImageFolder root (one sub-folder per class, named by wnid) or a list file whose
    lines are ``path,label`` (label: ImageNet index or wnid; relative paths are relative to
    the list file)."""
    out: str
    """Output .beton path."""
    max_resolution: int | None = 256
    """Longest side after resizing (FFCV's ``max_resolution``); None keeps the size."""
    write_mode: str = "jpg"
    """FFCV ``RGBImageField`` write mode: jpg, raw, smart or proportion."""
    jpeg_quality: int = 90
    """JPEG quality for re-encoded images."""
    num_workers: int = 2
    """Threads reading/decoding images, and threads encoding in the writer."""
    on_error: str = "fail"
    """``fail``: stop at the first unreadable image; ``skip``: leave it out, count and list it."""
    passthrough: bool = True
    """Store fitting RGB JPEGs verbatim instead of decoding and re-encoding them."""
    compact_labels: bool = False
    """Renumber labels 0..n-1 (sorted class-folder order) instead of keeping ImageNet-1K
    indices."""
    page_size: int | None = None
    """.beton page size (power of two, >= 2 MiB); None: FFCV's default, 8 MiB."""
    overwrite: bool = False
    """Replace an existing output (and any partial of it)."""
    progress: bool = False
    """Show a progress bar on stderr (the CLI turns it on)."""

    def __post_init__(self):
        if self.on_error not in ("fail", "skip"):
            raise ValueError(f"on_error={self.on_error!r}: use 'fail' or 'skip'")
        if self.write_mode not in ("jpg", "raw", "smart", "proportion"):
            raise ValueError(f"write_mode={self.write_mode!r}: use jpg, raw, smart or proportion")
        if self.max_resolution is not None and self.max_resolution < 1:
            raise ValueError(f"max_resolution={self.max_resolution}: must be >= 1 or None")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality={self.jpeg_quality}: must be in 1..100")
        if self.num_workers < 1:
            raise ValueError(f"num_workers={self.num_workers}: must be >= 1")
