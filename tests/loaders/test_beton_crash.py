"""SIGKILL a writer process at several points, resume, and check the finished file's content."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from ffcv.fields import BytesField, IntField, RGBImageField

from loaders.beton import BetonReader, BetonWriter
from tests.loaders.beton_data import load_all, make_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 60
FLUSH_EVERY = 8
"""The child flushes after every 8th append (a durability point)."""


def crash_fields():
    return {"image": RGBImageField(write_mode="jpg", jpeg_quality=85),
            "pixels": RGBImageField(write_mode="raw"),  # 120 KB each: ~17 per 2 MiB page
            "label": IntField(), "sample_id": IntField(), "prompt": BytesField()}


def crash_values(i):
    return {"image": make_image(i, 64, 64), "pixels": make_image(i, 200, 200),
            "label": i % 10, "sample_id": i, "prompt": f"a photo of sample {i}".encode()}


def append_order(n):
    return [int(i) for i in np.random.default_rng(5).permutation(n)]


def run_child(path, mode, k):
    """Start the writer child; for ``appends`` kill it after k lines. -> appended ids."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "tests.loaders.crash_child", str(path), str(N),
                             mode, str(k)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    appended = []
    for line in proc.stdout:
        if line.startswith("appended"):
            appended.append(int(line.split()[1]))
            if mode == "appends" and len(appended) == k:
                proc.send_signal(signal.SIGKILL)
                break
            proc.stdin.write("go\n")
            proc.stdin.flush()
    proc.stdout.close()
    proc.stdin.close()
    rc = proc.wait(timeout=120)
    assert rc == -signal.SIGKILL, f"child was expected to die by SIGKILL, exit code {rc}"
    return appended


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    p = tmp_path_factory.mktemp("crash") / "reference.beton"
    with BetonWriter(p, N, crash_fields(), num_workers=2, page_size=1 << 21) as w:
        for i in range(N):
            w.append(i, crash_values(i))
    return p


def finish(path, appended):
    """Resume (or start over when nothing resumable exists) and append what is missing."""
    if BetonWriter.partial_exists(path):
        w = BetonWriter.resume(path, num_workers=2)
        done = w.done_ids
        # at most the one append in progress at the kill may be committed beyond the printed ones
        assert done <= set(append_order(N)[:len(appended) + 1]), "resume kept unknown samples"
        # every sample flushed before the kill survived it (a line is printed after its flush)
        assert set(appended[:len(appended) // FLUSH_EVERY * FLUSH_EVERY]) <= done
    else:
        assert not os.path.exists(str(path) + ".partial") or not appended
        w = BetonWriter(path, N, crash_fields(), num_workers=2, page_size=1 << 21, overwrite=True)
        done = set()
    for i in range(N):
        if i not in done:
            w.append(i, crash_values(i))
    w.close()
    return done


def assert_same(a, b):
    with BetonReader(a) as ra, BetonReader(b) as rb:
        assert len(ra) == len(rb) == N
        rb.verify(decode=True)
        for i in range(N):
            x, y = ra.read(i), rb.read(i)
            for k in x:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]),
                                              err_msg=f"{k}@{i}")


@pytest.mark.parametrize("mode,k", [("appends", 3), ("appends", 30), ("fsync", 2), ("fsync", 9),
                                    ("replace", 0)])
def test_sigkill_then_resume(tmp_path, reference, mode, k):
    path = tmp_path / "gen.beton"
    appended = run_child(path, mode, k)
    assert not path.exists(), "a killed writer must not leave a finished-looking file"
    done = finish(path, appended)
    if mode == "replace":
        assert done == set(range(N))  # killed inside close(): nothing to regenerate
    assert_same(reference, path)
    assert not BetonWriter.partial_exists(path)


def test_sigkill_after_rename_leaves_finished_file(tmp_path, reference):
    path = tmp_path / "gen.beton"
    run_child(path, "unlink", 0)
    assert path.exists() and not BetonWriter.partial_exists(path)
    assert_same(reference, path)


def test_sigkill_between_rename_and_journal_removal(tmp_path, reference):
    """The finished file is complete; the journal left beside it is dropped by the next writer
    instead of making the output look unfinished or foreign."""
    path = tmp_path / "gen.beton"
    run_child(path, "renamed", 0)
    journal = str(path) + ".journal"
    assert path.exists() and os.path.exists(journal) and not BetonWriter.partial_exists(path)
    assert_same(reference, path)
    with pytest.raises(FileNotFoundError, match="already finished"):
        BetonWriter.resume(path)
    assert not os.path.exists(journal) and not os.path.exists(str(path) + ".lock")
    assert_same(reference, path)  # untouched


def test_resumed_file_reads_through_ffcv_loader(tmp_path, reference):
    path = tmp_path / "gen.beton"
    appended = run_child(path, "appends", 21)  # dies mid-page, between flushes
    finish(path, appended)
    a = load_all(reference, crash_fields(), batch_size=16)
    b = load_all(path, crash_fields(), batch_size=16)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):
        for name in ("image", "pixels", "label", "sample_id"):
            np.testing.assert_array_equal(x[name], y[name], err_msg=name)
