"""The one contact-sheet helper (loaders.sheets): layout, captions, enlargement, atomic writes."""
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]  # no temporary left
    with pytest.raises(SheetError, match="folder"):
        write_sheet([[(solid((1, 2, 3)), "a")]], str(tmp_path))

    def disk_full(self, f, **kw):                     # half a file written, then ENOSPC
        f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_sheet([[(solid((1, 2, 3)), "a")]], str(tmp_path / "sheet.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]  # old sheet kept, no temp
    with PIL.Image.open(path) as im:
        assert im.size == (3 * CELL_W + PAD, CELL_H + PAD)
