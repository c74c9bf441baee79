"""The one contact-sheet helper (loaders.sheets): layout, captions, enlargement, atomic writes,
and the HTML sheet beside the PNG (captions and prompts, images embedded)."""
import base64
import html.parser
import io
import os

import numpy as np
import PIL.Image
import pytest

from loaders import sheets
from loaders.sheets import SheetError, grid_rows, render_sheet, write_sheet

TILE, PAD = sheets.TILE, sheets.PAD
CAPTION_H = sheets.CAPTION_LINES * (sheets.CAPTION_PX + 3) + PAD  # layout of render_sheet
CELL_W, CELL_H = TILE + PAD, TILE + CAPTION_H + PAD


def solid(colour, h=TILE, w=TILE):
    return np.full((h, w, 3), colour, np.uint8)


def cell_box(x, y):
    left, top = PAD + x * CELL_W, PAD + y * CELL_H
    return left, top


def test_layout_images_and_captions():
    red, blue = (200, 20, 20), (20, 20, 200)
    rows = [[(solid(red), "tench"), (solid(blue), "goldfish")], [(solid(blue), "")]]
    sheet = np.asarray(render_sheet(rows))
    assert sheet.shape == (2 * CELL_H + PAD, 2 * CELL_W + PAD, 3)
    for (x, y), colour in (((0, 0), red), ((1, 0), blue), ((0, 1), blue)):
        left, top = cell_box(x, y)
        assert tuple(sheet[top + TILE // 2, left + TILE // 2]) == colour
        caption = sheet[top + TILE: top + TILE + CAPTION_H, left: left + TILE]
        has_text = (caption < 128).all(axis=-1).any()
        assert has_text == (rows[y][x][1] != "")  # dark text only where a caption was given
    left, top = cell_box(1, 1)                     # the missing cell stays background
    assert (sheet[top: top + CELL_H - PAD, left: left + TILE] == 255).all()


def test_long_captions_stay_inside_their_cell():
    long = "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias"
    sheet = np.asarray(render_sheet([[(solid((0, 0, 0)), long), (solid((0, 0, 0)), "")]]))
    left, top = cell_box(1, 0)
    neighbour_caption = sheet[top + TILE: top + TILE + CAPTION_H, left - PAD: left + TILE]
    assert (neighbour_caption == 255).all()


def test_small_images_are_enlarged_by_a_whole_factor():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16] = 255                                   # top half white, bottom half black
    sheet = np.asarray(render_sheet([[(img, "")]]))
    left, top = cell_box(0, 0)
    tile = sheet[top: top + TILE, left: left + TILE]  # 32 px x 4 = the whole cell
    assert (tile[:64] == 255).all() and (tile[64:] == 0).all()


def test_grid_rows_near_square():
    assert [len(r) for r in grid_rows(list(range(10)))] == [4, 4, 2]
    assert [len(r) for r in grid_rows(list(range(6)), columns=5)] == [5, 1]
    assert grid_rows([]) == []


def test_write_sheet_is_atomic_and_refuses_a_folder(tmp_path, monkeypatch):
    path = tmp_path / "sheet.png"
    write_sheet([[(solid((1, 2, 3)), "a")]], str(path), columns=3)
    with PIL.Image.open(path) as im:
        assert im.size == (3 * CELL_W + PAD, CELL_H + PAD)
    listing = ["sheet.html", "sheet.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temporary left
    old_html = (tmp_path / "sheet.html").read_bytes()
    with pytest.raises(SheetError, match="folder"):
        write_sheet([[(solid((1, 2, 3)), "a")]], str(tmp_path))

    real_fdopen = os.fdopen

    class FullDisk:                                   # half a file written, then ENOSPC
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sheets.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space"):
        write_sheet([[(solid((9, 9, 9)), "b")]], str(tmp_path / "sheet.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # old sheets kept, no temp
    with PIL.Image.open(path) as im:
        assert im.size == (3 * CELL_W + PAD, CELL_H + PAD)
        assert im.getpixel((PAD + TILE // 2, PAD + TILE // 2)) == (1, 2, 3)
    assert (tmp_path / "sheet.html").read_bytes() == old_html


class Figures(html.parser.HTMLParser):
    """The figures of an HTML sheet: hover text, image source and size, caption texts."""

    def __init__(self):
        super().__init__()
        self.figures, self.rows, self._div = [], 0, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("class") == "row":
            self.rows += 1
        elif tag == "figure":
            self.figures.append({"title": a.get("title"), "text": {}, "row": self.rows})
        elif tag == "img":
            self.figures[-1].update(src=a["src"], width=int(a["width"]), alt=a["alt"])
        elif tag == "div":
            self._div = a.get("class")

    def handle_data(self, data):
        if self._div and self.figures:
            self.figures[-1]["text"][self._div] = data

    def handle_endtag(self, tag):
        if tag == "div":
            self._div = None


def decode_uri(src):
    kind, b64 = src.split(",", 1)
    assert kind in ("data:image/png;base64", "data:image/jpeg;base64")
    return np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_html_sheet_shows_each_image_with_its_class_and_prompt(tmp_path):
    red, blue = (200, 20, 20), (20, 20, 200)
    prompt = 'tench, Tinca tinca, a "fish" <b>& more</b>'  # escaped, not markup
    rows = [[(solid(red, 32, 32), "0 tench", prompt), (solid(blue, 600, 400), "1 goldfish")],
            [(PIL.Image.new("RGB", (8, 8), blue), "1 goldfish", "goldfish, Carassius auratus")]]
    write_sheet(rows, str(tmp_path / "sheet.png"))
    text = (tmp_path / "sheet.html").read_text(encoding="utf-8")
    assert "<b>& more" not in text                    # the prompt is escaped
    parsed = Figures()
    parsed.feed(text)
    figs = parsed.figures
    assert parsed.rows == 2 and [f["row"] for f in figs] == [1, 1, 2]
    assert [f["text"].get("cls") for f in figs] == ["0 tench", "1 goldfish", "1 goldfish"]
    assert [f["text"].get("prompt") for f in figs] == [prompt, None, "goldfish, Carassius auratus"]
    assert [f["title"] for f in figs] == [prompt, "1 goldfish", "goldfish, Carassius auratus"]
    assert [f["alt"] for f in figs] == ["0 tench", "1 goldfish", "1 goldfish"]
    # images embedded: small ones losslessly at their own size (enlarged on screen by a whole
    # factor), big ones shrunk to twice the shown size, colours kept
    small, big, tiny = (decode_uri(f["src"]) for f in figs)
    assert small.shape == (32, 32, 3) and (small == red).all()
    assert figs[0]["width"] == 32 * (sheets.HTML_IMAGE_PX // 32)
    assert big.shape == (2 * sheets.HTML_IMAGE_PX, 2 * sheets.HTML_IMAGE_PX * 400 // 600, 3)
    assert np.abs(big.astype(int) - blue).max() <= 8  # JPEG
    assert figs[1]["width"] == round(sheets.HTML_IMAGE_PX * 400 / 600)
    assert tiny.shape == (8, 8, 3) and (tiny == blue).all()


def test_html_sheet_is_deterministic_and_optional(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), "x", "a prompt")]]
    write_sheet(rows, str(tmp_path / "a.png"))
    write_sheet(rows, str(tmp_path / "b.png"), title="contact sheet a.png")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    write_sheet(rows, str(tmp_path / "c.png"), html=False)
    assert not (tmp_path / "c.html").exists()
