"""The one contact-sheet helper: images in a grid, a caption (the class name) under each.

Used by ``generate``'s run folder (``clone.run/contact_sheet.png``) and ``inspect --grid``::

    rows = [[(image, "tench"), (image, "tench")], [(image, "goldfish")]]
    write_sheet(rows, "sheet.png")            # one grid row per list; PNG written atomically

An image is an ``(H, W, 3)`` uint8 array or a PIL image; it is shrunk to fit a ``tile`` x
``tile`` cell, keeping its aspect ratio (an image at most half the cell is enlarged by a whole
factor, nearest-neighbour, so its pixels stay visible). Captions are drawn under the image in a
scalable font at :data:`CAPTION_PX` pixels, wrapped to the cell width (at most
:data:`CAPTION_LINES` lines, then cut with an ellipsis), so they stay readable on a 2x screen.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile

from loaders.errors import LoadersError

__all__ = ["TILE", "CAPTION_PX", "CAPTION_LINES", "SheetError", "grid_rows", "render_sheet",
           "write_sheet"]

TILE = 128
"""Cell size in pixels (images are shrunk to fit)."""
CAPTION_PX = 13
"""Caption font size in pixels."""
CAPTION_LINES = 2
"""Caption lines under each image (longer captions end in an ellipsis)."""
PAD = 4
"""Pixels between cells and around captions."""
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


class SheetError(LoadersError, ValueError):
    """A contact sheet that cannot be written where asked (message says why)."""


def grid_rows(cells: list, columns: int | None = None) -> list[list]:
    """Lay ``cells`` out in rows of ``columns`` (default: a near-square grid)."""
    if not cells:
        return []
    columns = columns or max(1, math.ceil(math.sqrt(len(cells))))
    return [cells[i:i + columns] for i in range(0, len(cells), columns)]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's built-in scalable font (FreeType)
    except (TypeError, OSError, ImportError):     # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font, width: int, lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last kept line ends in an ellipsis if cut."""
    words, out, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    cut = len(out) > lines
    out = out[:lines]
    for i, ln in enumerate(out):  # a single word wider than the cell, or the cut last line
        if font.getlength(ln) > width or (cut and i == len(out) - 1):
            while ln and font.getlength(ln + "…") > width:
                ln = ln[:-1]
            out[i] = ln.rstrip() + "…"
    return out


def render_sheet(rows: list[list], tile: int = TILE, caption_px: int = CAPTION_PX,
                 columns: int | None = None):
    """A PIL image of the grid: ``rows`` is a list of rows, each a list of ``(image, caption)``;
    ``columns`` (default: the longest row) fixes the width, so short rows leave blank cells."""
    from PIL import Image, ImageDraw

    font = _font(caption_px)
    line_h = caption_px + 3
    caption_h = CAPTION_LINES * line_h + PAD if any(c for r in rows for _, c in r) else 0
    cell_w, cell_h = tile + PAD, tile + caption_h + PAD
    columns = max([len(r) for r in rows] + [columns or 0])
    sheet = Image.new("RGB", (max(1, columns * cell_w + PAD), max(1, len(rows) * cell_h + PAD)),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for x, (image, caption) in enumerate(row):
            im = image if isinstance(image, Image.Image) else Image.fromarray(image)
            im = im.convert("RGB")
            im.thumbnail((tile, tile))
            factor = tile // max(im.size)
            if factor >= 2:  # small images (64 px) are enlarged by a whole factor, pixels kept
                im = im.resize((im.width * factor, im.height * factor), Image.NEAREST)
            left, top = PAD + x * cell_w, PAD + y * cell_h
            # centred horizontally, on the bottom of the cell so the caption sits right under it
            sheet.paste(im, (left + (tile - im.width) // 2, top + tile - im.height))
            for k, text in enumerate(_wrap(caption or "", font, tile, CAPTION_LINES)):
                w = font.getlength(text)
                draw.text((left + (tile - w) / 2, top + tile + PAD // 2 + k * line_h), text,
                          fill=TEXT, font=font)
    return sheet


def write_sheet(rows: list[list], path: str, tile: int = TILE, columns: int | None = None) -> str:
    """Render ``rows`` and write a PNG to ``path`` atomically (temporary file, then rename;
    nothing is left behind on failure). Returns ``path``."""
    if os.path.isdir(path):
        raise SheetError(f"{path} is a folder; give the contact sheet's file name (e.g. "
                         "sheet.png)")
    sheet = render_sheet(rows, tile, columns=columns)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            sheet.save(f, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
