"""One writer per output: a second process on the same output (pack, merge or the writer API;
generate goes through the same writer) fails with one line naming the holder's pid, exit 2, and
leaves the holder's partial alone."""
import os
import signal
import subprocess
import sys

import pytest
from ffcv.fields import IntField

from engine.cli import main
from loaders.beton import BetonLockedError, BetonReader, BetonWriter
from tests.loaders.beton_data import PAGE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.timeout(300)


def start_holder(out):
    proc = subprocess.Popen([sys.executable, "-m", "tests.loaders.lock_child", str(out)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_second_process_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "o.beton"
    holder = start_holder(out)
    try:
        partial = (tmp_path / "o.beton.partial").read_bytes()
        journal = (tmp_path / "o.beton.journal").read_bytes()
        src = tmp_path / "real" / "n01440764"
        src.mkdir(parents=True)
        import PIL.Image
        import numpy as np
        PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a.png")
        other = tmp_path / "in.beton"
        with BetonWriter(other, 1, {"label": IntField(), "sample_id": IntField()},
                         page_size=PAGE) as w:
            w.append(0, {"label": 1, "sample_id": 0})
        for argv in (["pack", str(src.parent), "--out", str(out), "--overwrite", "--no-progress"],
                     ["merge", str(other), "-o", str(out), "--overwrite", "--no-progress"],
                     ["merge", str(other), "-o", str(out), "--no-progress"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert f"pid {holder.pid}" in err and "being written by another process" in err
        with pytest.raises(BetonLockedError, match=f"pid {holder.pid}"):
            BetonWriter.resume(out)
        with pytest.raises(BetonLockedError):
            BetonWriter(out, 2, {"label": IntField()}, overwrite=True)
        # nothing of the holder's was touched
        assert (tmp_path / "o.beton.partial").read_bytes() == partial
        assert (tmp_path / "o.beton.journal").read_bytes() == journal
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "closed"
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    with BetonReader(out) as r:
        assert [r.read(i)["label"] for i in range(2)] == [7, 8]
        r.verify()
    assert not os.path.exists(str(out) + ".lock")  # released and removed


def test_a_killed_holder_does_not_block_the_resume(tmp_path):
    out = tmp_path / "k.beton"
    holder = start_holder(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert os.path.exists(str(out) + ".lock")  # stale file; the kernel released the flock
    w = BetonWriter.resume(out)
    assert w.done_ids == {0}
    w.append(1, {"label": 8, "sample_id": 1})
    w.close()
    assert not os.path.exists(str(out) + ".lock")
