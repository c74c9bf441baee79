"""``synthclone export`` and the stored class names in ``inspect``: a clone of custom classes
shows its own names (not ImageNet's "tench, goldfish"), prompts come back as text."""
import csv
import json

import numpy as np
import PIL.Image
import pytest

from engine.cli import main
from loaders.beton import BetonReader, BetonWriter, ClassEntry, FileInfo
from loaders.beton.schema import generated_fields
from tests.loaders.beton_data import PAGE, make_image

pytestmark = pytest.mark.timeout(300)
CLASSES = {0: ClassEntry("solar panel", None), 1: ClassEntry("wind turbine", None),
           2: ClassEntry("water tower", "n04562935")}
PROMPTS = ["a photo of a solar panel, on a roof", "wind turbine, «café» 風車", "water tower"]


@pytest.fixture()
def clone(tmp_path):
    path = tmp_path / "clone.beton"
    info = FileInfo("generated", "f" * 64, CLASSES, ["c", "c_hc"])
    with BetonWriter(path, 9, generated_fields(32), num_workers=1, page_size=PAGE,
                     info=info) as w:
        for i in range(9):
            w.append(i, {"image": make_image(i, 32, 32), "label": i % 3, "sample_id": 100 + i,
                         "recipe": i % 2, "prompt": PROMPTS[i % 3].encode("utf-8")})
    return path


def test_inspect_shows_stored_class_names(clone, capsys):
    assert main(["inspect", str(clone)]) == 0
    out = capsys.readouterr().out
    assert "solar panel" in out and "n04562935 water tower" in out and "kind generated" in out
    assert "tench" not in out and "goldfish" not in out
    assert main(["inspect", str(clone), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["class_names"] == {"0": "solar panel", "1": "wind turbine",
                                "2": "n04562935 water tower"}
    assert s["domains"] == {"synthetic": 9} and s["plan_hash"] == "f" * 64
    assert s["recipes"] == ["c", "c_hc"]


def test_export_images_and_table(clone, tmp_path, capsys):
    out = tmp_path / "images"
    assert main(["export", str(clone), str(out), "--no-progress"]) == 0
    assert "exported 9 images" in capsys.readouterr().out
    with open(out / "samples.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["sample_id"]) for r in rows] == list(range(100, 109))
    with BetonReader(clone) as r:
        for i, row in enumerate(rows):
            assert row["prompt"] == PROMPTS[i % 3]  # text, not a uint8 array
            assert row["class_name"] == CLASSES[i % 3].name
            assert row["recipe"] == ["c", "c_hc"][i % 2] and int(row["label"]) == i % 3
            assert (out / row["file"]).read_bytes() == r.encoded(i, "image")[0]  # as stored
            assert row["file"].startswith(("0/", "1/", "n04562935/"))
    # a class by wnid, a class by name, a limit; JSON lines
    assert main(["export", str(clone), str(tmp_path / "w"), "--class", "n04562935",
                 "--format", "jsonl", "--no-progress"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "w" / "samples.jsonl").read_text().splitlines()]
    assert [x["index"] for x in lines] == [2, 5, 8] and lines[0]["wnid"] == "n04562935"
    assert main(["export", str(clone), str(tmp_path / "s"), "--class", "Solar Panel",
                 "--limit", "2", "--no-progress"]) == 0
    assert len((tmp_path / "s" / "samples.csv").read_text().splitlines()) == 3
    capsys.readouterr()


def test_export_errors_are_one_line(clone, tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    cases = ((["export", str(clone), str(out)], "--overwrite"),
             (["export", str(clone), str(tmp_path / "y"), "--class", "tench"], "not in"),
             (["export", str(clone), str(tmp_path / "y"), "--limit", "-1"], "limit"),
             (["export", str(tmp_path), str(tmp_path / "y")], "is a folder"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and needle in err
    assert (out / "keep.txt").read_text() == "mine" and not (tmp_path / "y").exists()
    assert main(["export", str(clone), str(out), "--overwrite", "--no-progress"]) == 0
    assert not (out / "keep.txt").exists() and (out / "samples.csv").exists()
    assert not [p for p in tmp_path.iterdir() if "export-" in p.name]


def test_export_raw_images_as_png(tmp_path):
    from ffcv.fields import IntField, RGBImageField

    path = tmp_path / "raw.beton"
    with BetonWriter(path, 2, {"image": RGBImageField(write_mode="raw"), "label": IntField()},
                     page_size=PAGE) as w:
        for i in range(2):
            w.append(i, {"image": make_image(i, 10, 12), "label": 281})
    assert main(["export", str(path), str(tmp_path / "e"), "--no-progress"]) == 0
    # no stored names (FFCV-style file): ImageNet-1K's, as inspect shows them
    img = np.asarray(PIL.Image.open(tmp_path / "e" / "n02123045" / "00000001.png"))
    np.testing.assert_array_equal(img, make_image(1, 10, 12))
    assert ",tabby," in (tmp_path / "e" / "samples.csv").read_text()
