"""The one contact-sheet helper: images in a grid, a caption (the class name) under each.

Used by ``generate``'s run folder (``clone.run/contact_sheet.png``) and ``inspect --grid``::

    rows = [[(image, "tench"), (image, "tench")], [(image, "goldfish")]]
    write_sheet(rows, "sheet.png")            # one grid row per list; PNG written atomically

An image is an ``(H, W, 3)`` uint8 array or a PIL image; it is shrunk to fit a ``tile`` x
``tile`` cell, keeping its aspect ratio (an image at most half the cell is enlarged by a whole
factor, nearest-neighbour, so its pixels stay visible). Captions are drawn under the image in a
scalable font at :data:`CAPTION_PX` pixels, wrapped to the cell width (at most
:data:`CAPTION_LINES` lines, then cut with an ellipsis), so they stay readable on a 2x screen.

A cell may carry a third item, its prompt: ``(image, "tench", "tench, Tinca tinca, cyprinid")``.
Beside the PNG, ``write_sheet`` writes an HTML sheet (``sheet.png`` -> ``sheet.html``,
:func:`html_path`): one self-contained file, images embedded as data URIs, each with its
caption and its full prompt underneath (readable size, never cut) and as the hover text.
"""
from __future__ import annotations

import base64
import contextlib
import html as htmllib
import io
import math
import os
import tempfile

from loaders.errors import LoadersError

__all__ = ["TILE", "CAPTION_PX", "CAPTION_LINES", "HTML_IMAGE_PX", "SheetError", "grid_rows",
           "html_path", "render_html", "render_sheet", "write_sheet"]

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
HTML_IMAGE_PX = 192
"""Longest side an image is shown at in the HTML sheet (CSS pixels); it is embedded at up to
twice that for sharp 2x screens, and small images are enlarged by a whole factor, pixelated."""
HTML_JPEG_QUALITY = 90
"""Images wider or taller than :data:`PNG_MAX_PX` are embedded as JPEG at this quality."""
PNG_MAX_PX = 64
"""Images up to this size are embedded as PNG (lossless; small)."""


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
    caption_h = CAPTION_LINES * line_h + PAD if any(c[1] for r in rows for c in r) else 0
    cell_w, cell_h = tile + PAD, tile + caption_h + PAD
    columns = max([len(r) for r in rows] + [columns or 0])
    sheet = Image.new("RGB", (max(1, columns * cell_w + PAD), max(1, len(rows) * cell_h + PAD)),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for x, (image, caption, *_) in enumerate(row):
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


def html_path(png_path: str) -> str:
    """Where :func:`write_sheet` puts the HTML sheet of ``png_path`` (``X.png`` -> ``X.html``)."""
    return os.path.splitext(png_path)[0] + ".html"


def _data_uri(image) -> tuple[str, int, int, bool]:
    """``(data URI, shown width, shown height, enlarged)`` of one image for the HTML sheet."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    im = im.convert("RGB")
    im.thumbnail((2 * HTML_IMAGE_PX, 2 * HTML_IMAGE_PX))  # sharp on 2x screens, not bigger
    side = max(im.size)
    scale = HTML_IMAGE_PX / side if side > HTML_IMAGE_PX else max(1, HTML_IMAGE_PX // side)
    buf = io.BytesIO()
    if side <= PNG_MAX_PX:
        im.save(buf, format="PNG")
        kind = "png"
    else:
        im.save(buf, format="JPEG", quality=HTML_JPEG_QUALITY)
        kind = "jpeg"
    uri = f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, round(im.width * scale), round(im.height * scale), scale >= 2


_HTML_STYLE = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;\
color:#141414;background:#fff}
h1{font-size:18px;font-weight:600;margin:0 0 12px}
.row{display:flex;flex-wrap:wrap;gap:14px;margin-bottom:18px;align-items:flex-start}
figure{margin:0;width:%(w)dpx}
figure img{display:block;margin:0 auto;background:#eee}
figure img.px{image-rendering:pixelated}
figcaption{margin-top:4px;line-height:1.3}
.cls{font-size:15px;font-weight:600}
.prompt{font-size:13px;color:#444;overflow-wrap:anywhere}"""


def render_html(rows: list[list], title: str = "contact sheet") -> str:
    """The HTML sheet of ``rows`` (cells ``(image, caption[, prompt])``) as one string: each
    image embedded as a data URI, its caption and prompt underneath, the prompt (else the
    caption) as hover text. Same cells, same bytes."""
    esc = htmllib.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title>",
           "<style>" + _HTML_STYLE % {"w": max(HTML_IMAGE_PX, 160)} + "</style>",
           f"</head><body><h1>{esc(title)}</h1>"]
    for row in rows:
        out.append('<div class="row">')
        for image, caption, *rest in row:
            prompt = rest[0] if rest and rest[0] else ""
            uri, w, h, enlarged = _data_uri(image)
            hover = prompt or caption or ""
            px = ' class="px"' if enlarged else ""
            out.append(f'<figure title="{esc(hover)}"><img{px} src="{uri}" width="{w}" '
                       f'height="{h}" alt="{esc(caption or "")}"><figcaption>'
                       f'<div class="cls">{esc(caption or "")}</div>'
                       + (f'<div class="prompt">{esc(prompt)}</div>' if prompt else "")
                       + "</figcaption></figure>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (0644; nothing is left
    behind on failure)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_sheet(rows: list[list], path: str, tile: int = TILE, columns: int | None = None,
                html: bool = True, title: str | None = None) -> str:
    """Render ``rows`` and write a PNG to ``path`` and, with ``html``, the HTML sheet to
    :func:`html_path` (``title``: its heading, default names the PNG). Both are rendered
    before either is written, and each is written atomically (temporary file, then rename;
    nothing is left behind on failure). Returns ``path``."""
    if os.path.isdir(path):
        raise SheetError(f"{path} is a folder; give the contact sheet's file name (e.g. "
                         "sheet.png)")
    sheet = render_sheet(rows, tile, columns=columns)
    title = title or f"contact sheet {os.path.basename(path)}"
    page = render_html(rows, title).encode("utf-8") if html else None
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    _write_atomic(path, buf.getvalue())
    if page is not None:
        _write_atomic(html_path(path), page)
    return path
