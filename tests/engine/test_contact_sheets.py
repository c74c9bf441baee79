"""Contact sheets a user looks at (issue #15): ``clone.run/contact_sheet.png`` + ``.html`` after
``generate`` and ``inspect --grid X.png`` + ``X.html``, labelled with class names, the HTML with
each image's prompt (hover and underneath)."""
import os

import numpy as np
import PIL.Image
import pytest

from engine.cli import main
from tests.engine.generate.helpers import make_plan
from tests.loaders.test_sheets import Figures, decode_uri

NAMES = {0: "tench", 1: "goldfish", 2: "great white shark"}
WNIDS = {0: "n01440764", 1: "n01443537", 2: "n01484850"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    from engine.generate.config import GenerateConfig
    from engine.generate.runner import generate

    plan = make_plan(per_class=2, steps=2, size=64)
    out = str(tmp_path_factory.mktemp("clone") / "clone.beton")
    generate(plan, out, GenerateConfig(model="tiny", progress=False, batch_size=6))
    return plan, out


def figures(path):
    parsed = Figures()
    with open(path, encoding="utf-8") as f:
        parsed.feed(f.read())
    return parsed.figures


@pytest.mark.timeout(300)
def test_run_folder_has_png_and_html_sheets_with_names_and_prompts(clone):
    plan, out = clone
    run = out[:-len(".beton")] + ".run"
    with PIL.Image.open(os.path.join(run, "contact_sheet.png")) as im:
        assert im.width >= 2 * 128 and im.height >= 2 * 128    # 6 thumbnails, captioned
    figs = figures(os.path.join(run, "contact_sheet.html"))
    assert len(figs) == len(plan)
    expected = sorted((NAMES[r.label], r.prompt) for r in plan.rows)
    assert sorted((f["text"]["cls"], f["text"]["prompt"]) for f in figs) == expected
    assert all(f["title"] == f["text"]["prompt"] for f in figs)
    assert all(decode_uri(f["src"]).shape == (64, 64, 3) for f in figs)


@pytest.mark.timeout(300)
def test_inspect_grid_writes_the_html_sheet_beside_the_png(clone, tmp_path, capsys):
    plan, out = clone
    from loaders.beton import BetonReader

    with BetonReader(out) as r:
        stored = {int(r.read(i)["sample_id"]): r.read(i)["image"] for i in range(len(r))}
    sheet = tmp_path / "sheet.png"
    assert main(["inspect", out, "--grid", str(sheet), "--grid-columns", "2"]) == 0
    with PIL.Image.open(sheet) as im:
        assert im.size[0] > 2 * 128 and im.size[1] > 3 * 128  # 3 classes x 2 images
    figs = figures(tmp_path / "sheet.html")
    by_prompt = {}
    for r in plan.rows:
        by_prompt.setdefault(r.prompt, []).append(r)
    assert len(figs) == len(plan)
    for f in figs:
        label = int(f["text"]["cls"].split()[0])
        assert f["text"]["cls"] == f"{label} {WNIDS[label]} {NAMES[label]}"  # stored names
        rows = [r for r in by_prompt[f["text"]["prompt"]] if r.label == label]
        assert rows and f["title"] == f["text"]["prompt"]
        img = decode_uri(f["src"])                       # the stored pixels, losslessly (64 px)
        assert any(np.array_equal(img, stored[r.sample_id]) for r in rows)
