"""Bad inputs and hostile moments for pack / merge / inspect: every case is one line on stderr
and exit 2 (Ctrl-C: 130), nothing half-written, and damaged JPEGs never stored verbatim."""
import errno
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest

import loaders.beton.lock as lock_mod
import loaders.beton.pages as pages_mod
from engine.cli import main
from loaders.beton import BetonReader, BetonWriter
from loaders.beton.pack import PackConfig, PackError, pack
from tests.loaders.beton_data import make_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TENCH, TABBY = "n01440764", "n02123045"
pytestmark = pytest.mark.timeout(300)


def jpeg_bytes(img, quality=92) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def one_line(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture()
def damaged(tmp_path):
    """Good JPEGs that fit (passthrough candidates) and damaged ones of every kind."""
    root = tmp_path / "real"
    (root / TENCH).mkdir(parents=True)
    good = jpeg_bytes(make_image(1, 40, 48))
    (root / TENCH / "a_good.jpg").write_bytes(good)
    (root / TENCH / "b_empty.jpg").write_bytes(b"")
    (root / TENCH / "c_truncated.jpg").write_bytes(good[:len(good) // 2])
    (root / TENCH / "d_no_eoi.jpg").write_bytes(good[:-2])
    sos = good.index(b"\xff\xda")
    zeroed = bytearray(good)
    zeroed[sos + 20:-2] = bytes(len(good) - 2 - sos - 20)
    (root / TENCH / "e_zeroed.jpg").write_bytes(bytes(zeroed))
    (root / TENCH / "f_empty.png").write_bytes(b"")
    png = io.BytesIO()
    PIL.Image.fromarray(make_image(2, 30, 30)).save(png, "PNG")
    (root / TENCH / "g_truncated.png").write_bytes(png.getvalue()[:200])
    return root


def test_damaged_images_become_skip_entries(tmp_path, damaged, capsys):
    out = tmp_path / "o.beton"
    assert main(["pack", str(damaged), "--out", str(out), "--on-error", "skip", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped 6 unreadable" in err
    listing = (tmp_path / "o.beton.skipped.txt").read_text()
    for name in ("b_empty", "c_truncated", "d_no_eoi", "e_zeroed", "f_empty", "g_truncated"):
        assert name in listing
    with BetonReader(out) as r:
        assert len(r) == 1 and r.verify(decode=True)["checksums"]
        assert r.encoded(0, "image")[0] == (damaged / TENCH / "a_good.jpg").read_bytes()
    # and without --on-error skip: one line naming the first bad file
    assert main(["pack", str(damaged), "--out", str(tmp_path / "p.beton"), "--no-progress"]) == 2
    one_line(capsys, "b_empty.jpg", "empty file")


def test_resume_after_the_source_changed_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "real"
    (root / TENCH).mkdir(parents=True)
    for j in range(30):
        PIL.Image.fromarray(make_image(j, 20, 20)).save(root / TENCH / f"{j:03d}.png")
    out = tmp_path / "o.beton"
    real_append, calls = BetonWriter.append, {"n": 0}

    def dying_append(self, sid, values):  # the pack dies after 12 images
        calls["n"] += 1
        if calls["n"] > 12:
            raise KeyboardInterrupt
        real_append(self, sid, values)

    monkeypatch.setattr(BetonWriter, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        pack(PackConfig(str(root), str(out), num_workers=1))
    monkeypatch.setattr(BetonWriter, "append", real_append)
    assert BetonWriter.partial_exists(out)
    os.remove(root / TENCH / "003.png")  # one file deleted, one added: same count
    PIL.Image.fromarray(make_image(99, 20, 20)).save(root / TENCH / "100.png")
    with pytest.raises(PackError, match="source changed since the interrupted pack"):
        pack(PackConfig(str(root), str(out), num_workers=1))
    res = pack(PackConfig(str(root), str(out), num_workers=1, overwrite=True,
                          write_mode="raw"))
    assert res.num_written == 30
    with BetonReader(out) as r:
        names = sorted(p for p in os.listdir(root / TENCH))
        for i in range(30):  # every sample id points at its own image
            want = np.asarray(PIL.Image.open(root / TENCH / names[r.read(i)["sample_id"]]))
            np.testing.assert_array_equal(r.read(i)["image"], want)


@pytest.mark.parametrize("quality", ["0", "500"])
def test_pack_rejects_bad_jpeg_quality(tmp_path, damaged, capsys, quality):
    assert main(["pack", str(damaged), "--out", str(tmp_path / "q.beton"), "--jpeg-quality",
                 quality, "--no-progress"]) == 2
    one_line(capsys, "jpeg_quality", "1..100")
    assert not (tmp_path / "q.beton.partial").exists()


def test_directory_arguments_are_one_line(tmp_path, damaged, capsys):
    good = tmp_path / "good.beton"
    assert main(["pack", str(damaged), "--out", str(good), "--on-error", "skip", "--no-progress"]) == 0
    capsys.readouterr()
    for argv, needle in ((["merge", str(tmp_path), "-o", str(tmp_path / "m.beton")],
                          "is a folder"),
                         (["merge", str(good), "-o", str(tmp_path)], "is a folder"),
                         (["pack", str(damaged), "--out", str(tmp_path)], "is a folder"),
                         (["inspect", str(tmp_path)], "is a folder"),
                         (["inspect", str(good), "--grid", str(tmp_path)], "is a folder"),
                         (["inspect", str(good), "--grid", str(tmp_path / "g.png"),
                           "--grid-rows", "-1"], "must be >= 1")):
        assert main(argv) == 2, argv
        one_line(capsys, needle)
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".tmp.png", ".partial", ".lock"))]


def test_read_only_output_folder(tmp_path, damaged, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()

    class ReadOnlyOS:
        """``os`` whose file creation under ``ro`` fails as on a read-only folder."""

        def __getattr__(self, name):
            return getattr(os, name)

        def open(self, path, flags, mode=0o777):
            if str(path).startswith(str(ro)) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return os.open(path, flags, mode)

    monkeypatch.setattr(lock_mod, "os", ReadOnlyOS())
    good = tmp_path / "good.beton"
    assert main(["pack", str(damaged), "--out", str(good), "--on-error", "skip", "--no-progress"]) == 0
    capsys.readouterr()
    for argv in (["pack", str(damaged), "--out", str(ro / "o.beton"), "--no-progress"],
                 ["merge", str(good), "-o", str(ro / "m.beton"), "--no-progress"]):
        assert main(argv) == 2
        one_line(capsys, "is not writable", str(ro))
    import loaders.sheets as sheets_mod

    real_mkstemp = sheets_mod.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if str(dir).startswith(str(ro)):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(sheets_mod.tempfile, "mkstemp", mkstemp)
    assert main(["inspect", str(good), "--grid", str(ro / "g.png")]) == 2
    one_line(capsys, "Permission denied", str(ro))
    assert os.listdir(ro) == []


def test_disk_full_during_pack_is_one_line_and_writes_nothing_more(tmp_path, damaged, capsys,
                                                                 monkeypatch):
    for j in range(40):  # raw 64x64 images: several pages
        PIL.Image.fromarray(make_image(j, 500, 500)).save(damaged / TENCH / f"z{j:02d}.png")
    out = tmp_path / "full.beton"
    real, calls = pages_mod._pwrite, {"n": 0}

    def pwrite(fd, data, offset):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, offset)

    monkeypatch.setattr(pages_mod, "_pwrite", pwrite)
    argv = ["pack", str(damaged), "--out", str(out), "--on-error", "skip", "--write-mode", "raw",
            "--store-size", "none", "--page-size", str(1 << 21), "--no-progress"]
    assert main(argv) == 2
    one_line(capsys, "No space left on device", "rerun the same command to resume")
    assert calls["n"] == 4  # nothing written after the failed write
    assert not os.path.exists(str(out) + ".skipped.txt") and not out.exists()
    assert BetonWriter.partial_exists(out) and not os.path.exists(str(out) + ".lock")
    monkeypatch.setattr(pages_mod, "_pwrite", real)
    assert main(argv) == 0  # space freed: the rerun resumes
    with BetonReader(out) as r:
        assert len(r) == 41 and r.verify()["checksums"]


@pytest.mark.timeout(600)
def test_ctrl_c_in_pack_exits_130_with_one_line(tmp_path):
    root = tmp_path / "many" / TENCH
    root.mkdir(parents=True)
    for j in range(60):
        PIL.Image.fromarray(make_image(j, 32, 32)).save(root / f"{j:04d}.png")
    fifo = root / "0030.png"  # reading it blocks: the pack is caught mid-way, every time
    os.remove(fifo)
    os.mkfifo(fifo)
    out = tmp_path / "c.beton"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "pack", str(root.parent),
                             "--out", str(out), "--workers", "1", "--no-progress"], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while not os.path.exists(str(out) + ".journal") and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2)  # the 30 images before the pipe take well under a second
    proc.send_signal(signal.SIGINT)
    time.sleep(1)
    os.close(os.open(fifo, os.O_WRONLY))  # let the blocked read finish (as an empty file)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["synthclone pack: interrupted"]
    assert not out.exists() and BetonWriter.partial_exists(out)
    assert not os.path.exists(str(out) + ".lock")
    w = BetonWriter.resume(out)  # what was appended before Ctrl-C is committed
    assert w.done_ids == set(range(30))
    w.abort()
