"""pack (ImageFolder / list file, passthrough, on-error), and the pack/merge/inspect CLI."""
import json

import PIL.Image
import pytest
from ffcv.fields.rgb_image import encode_jpeg, resizer

from loaders.beton import BetonReader, BetonWriter
from engine.cli import main
from loaders.beton.pack import PackConfig, PackError, pack
from tests.loaders.beton_data import make_image

TENCH, TABBY = "n01440764", "n02123045"  # ImageNet-1K indices 0 and 281 (timm order)


def save(path, arr, **kw):
    PIL.Image.fromarray(arr).save(path, **kw)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "real"
    (root / TENCH).mkdir(parents=True)
    (root / TABBY).mkdir()
    save(root / TENCH / "a.jpg", make_image(1, 40, 48), quality=92)        # fits: passthrough
    save(root / TENCH / "b.png", make_image(2, 100, 80))                    # png: decode+encode
    (root / TENCH / "bad.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")  # unreadable
    save(root / TABBY / "c.jpg", make_image(3, 90, 120), quality=92)       # too big: resized
    save(root / TABBY / "d.jpg", make_image(4, 30, 30)[..., 0])             # grayscale JPEG
    (root / TABBY / "notes.txt").write_text("not an image")
    return root


def test_pack_folder_fail_and_skip(tmp_path, folder):
    out = tmp_path / "real.beton"
    with pytest.raises(PackError, match=r"bad\.jpg.*--on-error skip"):
        pack(PackConfig(str(folder), str(out), max_resolution=64))
    assert not out.exists() and BetonWriter.partial_exists(out)  # a re-run resumes it
    res = pack(PackConfig(str(folder), str(out), max_resolution=64, on_error="skip",
                          overwrite=True))
    assert res.num_written == 4 and res.passthrough == 1
    assert [p.endswith("bad.jpg") for p, _ in res.skipped] == [True]
    assert res.classes == {0: 2, 281: 2}
    with BetonReader(out) as r:
        assert len(r) == 4
        rows = [r.read(i) for i in range(4)]
        assert [x["label"] for x in rows] == [0, 0, 281, 281]
        assert [x["sample_id"] for x in rows] == [0, 1, 3, 4]  # index in the sorted file list
        assert r.encoded(0, "image")[0] == (folder / TENCH / "a.jpg").read_bytes()  # verbatim
        assert rows[1]["image"].shape == (64, 51, 3) and rows[2]["image"].shape == (48, 64, 3)
        assert rows[3]["image"].shape == (30, 30, 3)
        # exactly what FFCV's RGBImageField stores for the decoded PNG (resize + JPEG q90)
        want = encode_jpeg(resizer(make_image(2, 100, 80), 64), 90)
        assert r.encoded(1, "image")[0] == want.tobytes()
        r.verify(decode=True)


def test_pack_list_file_and_labels(tmp_path, folder):
    lst = tmp_path / "list.csv"
    lst.write_text(f"path,label\nreal/{TENCH}/a.jpg,{TABBY}\nreal/{TABBY}/c.jpg,7\n"
                   f"# comment\nreal/{TABBY}/d.jpg,{TENCH}\n")
    out = tmp_path / "list.beton"
    res = pack(PackConfig(str(lst), str(out), max_resolution=None, write_mode="raw"))
    assert res.passthrough == 0 and res.num_written == 3
    with BetonReader(out) as r:
        assert [r.read(i)["label"] for i in range(3)] == [281, 7, 0]
        assert r.encoded(1, "image")[1] == "raw" and r.read(1)["image"].shape == (90, 120, 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("x.jpg,not_a_class\n")
    with pytest.raises(PackError, match=r"bad.csv:1: label 'not_a_class'"):
        pack(PackConfig(str(bad), str(tmp_path / "b.beton")))


def test_pack_rejects_unknown_folders_unless_compact(tmp_path):
    root = tmp_path / "custom"
    for name in ("zebra", "apple"):
        (root / name).mkdir(parents=True)
        save(root / name / "x.png", make_image(len(name), 16, 16))
    with pytest.raises(PackError, match="not ImageNet-1K wnids.*--compact-labels"):
        pack(PackConfig(str(root), str(tmp_path / "c.beton")))
    pack(PackConfig(str(root), str(tmp_path / "c.beton"), compact_labels=True))
    with BetonReader(tmp_path / "c.beton") as r:
        assert [r.read(i)["label"] for i in range(2)] == [0, 1]  # apple, zebra


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_cli_pack_inspect_merge(tmp_path, folder, capsys):
    out = tmp_path / "real.beton"
    assert main(["pack", str(folder), "--out", str(out), "--store-size", "64",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg" in err and err.count("\n") == 1
    assert main(["pack", str(folder), "-o", str(out), "--store-size", "64", "--on-error", "skip",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err  # this run resumed the partial the failed one left
    assert "skipped 1 unreadable" in err
    assert "bad.jpg" in (tmp_path / "real.beton.skipped.txt").read_text()
    assert main(["pack", str(folder), "--out", str(out), "--no-progress"]) == 2  # no --overwrite
    assert "--overwrite" in capsys.readouterr().err

    grid = tmp_path / "grid.png"
    assert main(["inspect", str(out), "--json", "--verify", "--grid", str(grid),
                 "--grid-columns", "3"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["num_samples"] == 4 and s["classes"] == {"0": 2, "281": 2}
    assert s["domains"] == {"real": 4} and s["write_modes"] == {"jpg": 4, "raw": 0}
    assert s["kind"] == "real" and s["class_names_source"] == "file"
    assert s["class_names"] == {"0": "n01440764 tench", "281": "n02123045 tabby"}
    assert s["verify"]["decoded"] is True and s["verify"]["checksums"] is True
    with PIL.Image.open(grid) as g:
        # 2 classes x 3 columns of 128 px cells + 4 px gaps, 2 caption lines of 16 px + 4
        assert g.size == (3 * 132 + 4, 2 * (128 + 36 + 4) + 4)
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tench" in text and "tabby" in text

    merged = tmp_path / "merged.beton"
    assert main(["merge", str(out), str(out), "-o", str(merged), "--no-progress"]) == 0
    assert "merged 2 files, 8 samples" in capsys.readouterr().err
    with BetonReader(merged) as r:  # real files are renumbered by default
        assert len(r) == 8 and [r.read(i)["sample_id"] for i in range(8)] == list(range(8))
        assert r.info.kind == "real" and r.info.class_name(281) == "tabby"
    assert main(["merge", str(out), str(out), "-o", str(tmp_path / "k.beton"), "--no-progress",
                 "--keep-sample-ids"]) == 2
    one_line_error(capsys, "more than once")
    assert main(["merge", str(out), str(merged), "-o", str(merged), "--no-progress"]) == 2
    one_line_error(capsys, "also an input")
    assert main(["merge", str(out), "-o", str(merged), "--no-progress"]) == 2
    one_line_error(capsys, "exists; pass --overwrite")
    (tmp_path / "corrupt.beton").write_bytes(out.read_bytes()[:5000])
    assert main(["inspect", str(tmp_path / "corrupt.beton")]) == 2
    assert "corrupt.beton" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.beton")]) == 2
    assert main(["inspect", str(tmp_path)]) == 2  # a folder
    assert "folder" in capsys.readouterr().err
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["inspect", str(out), "--grid", str(tmp_path)]) == 2  # the sheet names a folder
    assert "folder" in capsys.readouterr().err
    assert main(["inspect", str(out), "--grid", str(grid), "--max-classes", "-1"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before     # nothing stray written


def test_pack_old_spellings_still_work_for_one_release(tmp_path, folder, capsys):
    """Positional OUT, --max-resolution and --quiet are hidden aliases (README: renamed flags)."""
    out = tmp_path / "old.beton"
    assert main(["pack", str(folder), str(out), "--max-resolution", "64", "--on-error", "skip",
                 "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "positional OUT" in err and "pack:" not in err.split("note:")[0][-1:]
    with BetonReader(out) as r:
        assert len(r) == 4 and max(r.read(2)["image"].shape[:2]) == 64
    assert main(["pack", str(folder), str(out), "--out", str(out)]) == 2
    assert "give only --out" in capsys.readouterr().err


def test_pack_config_file_section(tmp_path, folder):
    cfg = tmp_path / "pack.yaml"
    cfg.write_text("pack:\n  max_resolution: 32\n  on_error: skip\n  write_mode: raw\n")
    out = tmp_path / "cfg.beton"
    assert main(["pack", str(folder), "--out", str(out), "--config", str(cfg),
                 "--set", "max_resolution=48", "--no-progress"]) == 0
    with BetonReader(out) as r:
        assert r.encoded(0, "image")[1] == "raw"          # from the file
        assert max(r.read(2)["image"].shape[:2]) == 48    # --set beats the file


def test_pack_refuses_bad_quality(tmp_path, folder, capsys):
    for q in ("0", "500"):
        assert main(["pack", str(folder), "--out", str(tmp_path / "q.beton"),
                     "--jpeg-quality", q]) == 2
        assert "jpeg_quality" in capsys.readouterr().err
