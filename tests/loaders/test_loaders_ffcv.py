"""FFCV backend: eval and train pipelines against plain references, planned rows, dual and
union batches over several files, resume, resizing, and failures that raise instead of hang."""
import numpy as np
import pytest
import torch

from loaders.beton import BetonReader
from loaders.beton.format import BetonFormatError
from loaders.config import LoaderConfig, MixConfig
from loaders.errors import LoaderWorkerError
from loaders.mixing import DualDomainLoader, make_eval_loader, make_loader
from loaders.sources import BetonSource
from tests.loaders.loader_data import write_beton
from tests.loaders.loader_refs import (center_crop, expected_rows, keyed_crop, keyed_params_ref,
                                       normalize)

SIZE = 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ffcv")
    return {"real": write_beton(d / "real.beton", 30, num_classes=3, label_base=10),
            "syn0": write_beton(d / "syn0.beton", 26, num_classes=3, label_base=10,
                                synthetic=True, sample_id_base=500),
            "syn1": write_beton(d / "syn1.beton", 20, num_classes=3, label_base=10,
                                synthetic=True, sample_id_base=900, write_mode="raw")}


def cfg(**kw):
    return LoaderConfig(**{"batch_size": 8, "image_size": SIZE, "workers": 1, **kw})


def pixels(paths):
    out = []
    for p in paths:
        with BetonReader(p) as r:
            out += [r.read(i)["image"] for i in range(len(r))]
    return out


@pytest.mark.timeout(300)
def test_eval_pipeline_equals_the_reference_in_file_order(files):
    loader = make_eval_loader(files["real"], cfg(), batch_size=7)
    imgs = pixels([files["real"]])
    src = BetonSource(files["real"])
    got = [b.clone() for b in loader]  # a batch is valid until the next one
    assert [b.batch_size for b in got] == [7, 7, 7, 7, 2]
    images = torch.cat([b.images for b in got])
    want = torch.from_numpy(np.stack([normalize(center_crop(im, SIZE, 224 / 256))
                                      for im in imgs]))
    torch.testing.assert_close(images, want, atol=1e-5, rtol=0)
    assert torch.cat([b.labels for b in got]).tolist() == src.labels.tolist()
    assert torch.cat([b.sample_id for b in got]).tolist() == list(range(30))
    assert all(b.num_real == b.batch_size for b in got)


@pytest.mark.timeout(300)
def test_uint8_channels_last_output(files):
    loader = make_eval_loader(files["real"], cfg(dtype="uint8", channels_last=True))
    b = next(iter(loader))
    assert b.images.dtype == torch.uint8 and b.images.shape == (8, 3, SIZE, SIZE)
    assert b.images.is_contiguous(memory_format=torch.channels_last)
    im0 = center_crop(pixels([files["real"]])[0], SIZE, 224 / 256)
    assert (b.images[0].permute(1, 2, 0).numpy() == im0).all()


def check_batches(loader, sources, epochs=2, seed=0):
    """Every batch holds exactly the planned rows, with matching labels, ids and pixels: each
    row's default RandomResizedCrop + flip, its window and flip computed by the plain-Python
    reference of (seed, epoch, row) (loader_refs.keyed_params_ref)."""
    imgs = pixels([p for s in sources for p in s.paths])
    flips = 0
    for epoch in range(epochs):
        plan = loader.epoch_plan(epoch)
        got = [b.clone() for b in loader]
        assert len(got) == len(plan) == len(loader)
        for b, batch in enumerate(got):
            rows = plan.batch(b)
            labels, sids = expected_rows(sources, rows)
            assert batch.num_real == plan.num_real[b]
            assert batch.labels.tolist() == labels.tolist()
            assert batch.sample_id.tolist() == sids.tolist()
            params = [keyed_params_ref(seed, epoch, int(r), *imgs[r].shape[:2]) for r in rows]
            flips += sum(p[4] for p in params)
            want = np.stack([normalize(keyed_crop(imgs[r], p, SIZE))
                             for r, p in zip(rows, params)])
            torch.testing.assert_close(batch.images, torch.from_numpy(want), atol=1e-5,
                                       rtol=0)
    assert flips > 0  # the reference did draw flips (and the loader matched them)


@pytest.mark.timeout(300)
def test_dual_batches_are_the_planned_rows_with_right_pixels(files):
    real, syn = BetonSource(files["real"]), BetonSource([files["syn0"], files["syn1"]])
    loader = DualDomainLoader(real, syn, cfg(seed=3), MixConfig(synthetic_share=0.5))
    assert len(loader) == 30 // 4
    for batch in loader:
        assert batch.num_real == 4
        assert (batch.source[:4] == 0).all() and (batch.source[4:] >= 1).all()
    loader.set_epoch(0)
    check_batches(loader, [real, syn], seed=3)


@pytest.mark.timeout(300)
def test_union_batches_over_three_files(files):
    real, syn = BetonSource(files["real"]), BetonSource([files["syn0"], files["syn1"]])
    loader = DualDomainLoader(real, syn, cfg(), MixConfig(mode="union"))
    assert len(loader) == (30 + 46) // 8
    check_batches(loader, [real, syn], epochs=1)


@pytest.mark.timeout(300)
def test_resume_mid_epoch_gives_the_remaining_batches(files):
    """Rows, and pixels: the default random crops and flips are the ones the uninterrupted
    loader cut (keyed by seed, epoch and row, loaders.augment)."""
    def run(loader):
        return [(b.sample_id.tolist(), b.images.clone()) for b in loader]
    a = make_loader(files["real"], cfg(seed=4))
    a.set_epoch(1)
    full = run(a)
    b = make_loader(files["real"], cfg(seed=4))
    b.set_epoch(1)
    it = iter(b)
    first = [(x.sample_id.tolist(), x.images.clone()) for x in (next(it), next(it))]
    state = b.state_dict()
    assert state == {"epoch": 1, "batch": 2}
    c = make_loader(files["real"], cfg(seed=4))
    c.load_state_dict(state)
    resumed = first + run(c)
    assert [r for r, _ in resumed] == [r for r, _ in full]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(resumed, full))
    assert c.state_dict() == {"epoch": 2, "batch": 0}


@pytest.mark.timeout(300)
def test_progressive_resizing(files):
    loader = make_loader(files["real"], cfg())
    assert next(iter(loader)).images.shape[-1] == SIZE
    loader.set_image_size(24)
    assert next(iter(loader)).images.shape[-1] == 24


@pytest.mark.timeout(300)
def test_two_ranks_read_disjoint_rows(files):
    ids = []
    for rank in range(2):
        loader = make_loader(files["real"], cfg(distributed=True, rank=rank, world_size=2,
                                                batch_size=5))
        assert len(loader) == 3
        ids.append({i for b in loader for i in b.sample_id.tolist()})
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 30


@pytest.mark.timeout(120)
def test_a_failing_decode_thread_raises_instead_of_hanging(files, monkeypatch):
    from ffcv.loader.epoch_iterator import EpochIterator

    calls = {"n": 0}
    real_run = EpochIterator.run_pipeline

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated worker crash")
        return real_run(self, *args)

    monkeypatch.setattr(EpochIterator, "run_pipeline", flaky)
    loader = make_loader(files["real"], cfg())
    with pytest.raises(LoaderWorkerError, match="simulated worker crash"):
        list(loader)


@pytest.mark.timeout(120)
def test_missing_empty_and_truncated_files_raise_the_format_error(files, tmp_path):
    with pytest.raises(BetonFormatError, match="no such .beton"):
        make_loader(str(tmp_path / "nope.beton"), cfg())
    empty = tmp_path / "empty.beton"
    empty.write_bytes(b"")
    with pytest.raises(BetonFormatError, match="too short"):
        make_loader(str(empty), cfg())
    data = open(files["real"], "rb").read()
    cut = tmp_path / "cut.beton"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(BetonFormatError, match="truncated|outside|fit"):
        make_loader(str(cut), cfg())


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_cuda_output_equals_the_cpu_output(files):
    cpu = [b.clone() for b in make_eval_loader(files["real"], cfg())]
    gpu = [b.clone() for b in make_eval_loader(files["real"], cfg(device="cuda",
                                                                  channels_last=True))]
    assert all(b.images.is_cuda and b.labels.is_cuda for b in gpu)
    torch.testing.assert_close(torch.cat([b.images for b in gpu]).cpu(),
                               torch.cat([b.images for b in cpu]), atol=1e-5, rtol=0)
    real, syn = BetonSource(files["real"]), BetonSource([files["syn0"], files["syn1"]])
    loader = DualDomainLoader(real, syn, cfg(device="cuda"), MixConfig())
    batch = next(iter(loader))
    assert batch.images.is_cuda and batch.num_real == 4
    assert batch.labels.cpu().tolist() == expected_rows(
        [real, syn], loader.epoch_plan(0).batch(0))[0].tolist()


@pytest.mark.timeout(300)
def test_quasi_random_order_with_the_process_cache(files):
    loader = make_loader(files["real"], cfg(order="quasi_random", os_cache=False))
    for epoch in range(2):
        plan = loader.epoch_plan(epoch)
        ids = [b.sample_id.tolist() for b in loader]
        assert ids == [plan.batch(b).tolist() for b in range(len(plan))]  # sample_id = row
        flat = sum(ids, [])
        assert len(flat) == 24 and len(set(flat)) == 24


@pytest.mark.timeout(300)
def test_the_callers_thread_counts_survive_ffcv_and_its_decode_threads_keep_theirs(
        files, monkeypatch):
    """FFCV sets torch's (process-wide) and numba's thread count to its decode threads when it
    builds a pipeline and at every epoch start; the trainer's model must keep its own."""
    import numba
    from ffcv.loader.epoch_iterator import EpochIterator

    pool = numba.config.NUMBA_NUM_THREADS
    if pool < 2:
        pytest.skip("needs 2 cores to tell the loader's thread count from the caller's")
    seen = []
    real_run = EpochIterator.run_pipeline

    def spy(self, *args):
        seen.append(numba.get_num_threads())  # in the decode thread
        return real_run(self, *args)

    monkeypatch.setattr(EpochIterator, "run_pipeline", spy)
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        loader = make_loader(files["real"], cfg(workers=2))
        for size in (SIZE, 24):
            loader.set_image_size(size)
            for _ in range(2):
                for _ in loader:
                    assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
        loader.close()
        assert seen and set(seen) == {2}
        # more workers than numba's pool: capped (numba refuses more threads than its pool)
        seen.clear()
        assert len(list(make_loader(files["real"], cfg(workers=pool + 3)))) == 30 // 8
        assert set(seen) == {pool}
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


@pytest.mark.timeout(300)
def test_files_decoding_into_the_same_batches_share_the_decode_threads(files, monkeypatch):
    """Dual batches decode the real and the synthetic file at once: each file's decode thread
    takes half of ``workers``, not all of them (2 + 2 threads on 2 cores fight); a batch drawn
    from one file keeps them all."""
    import numba
    from ffcv.loader.epoch_iterator import EpochIterator

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 cores to tell a split thread count from the whole")
    seen = []
    real_run = EpochIterator.run_pipeline

    def spy(self, *args):
        seen.append((self.loader.reader.file_name, numba.get_num_threads()))
        return real_run(self, *args)

    monkeypatch.setattr(EpochIterator, "run_pipeline", spy)
    dual = DualDomainLoader(files["real"], files["syn0"], cfg(workers=2), MixConfig())
    assert len(list(dual)) == 30 // 4
    dual.close()
    assert {n for _, n in seen} == {1} and len({f for f, _ in seen}) == 2
    seen.clear()
    one = make_loader(files["real"], cfg(workers=2))
    assert len(list(one)) == 30 // 8
    one.close()
    assert {n for _, n in seen} == {2}


@pytest.mark.timeout(300)
def test_a_process_that_leaves_a_dual_loader_open_mid_epoch_exits_cleanly(files):
    """Decode threads left running at exit are stopped and joined first (with split thread
    counts, numba's TBB pool otherwise aborts: 'terminate called without an active exception')."""
    import subprocess
    import sys

    code = ("import sys; from loaders.config import LoaderConfig, MixConfig; "
            "from loaders.mixing import DualDomainLoader; "
            "ld = DualDomainLoader(sys.argv[1], sys.argv[2], LoaderConfig(batch_size=8, "
            f"image_size={SIZE}, workers=2), MixConfig()); it = iter(ld); next(it); print('ok')")
    for _ in range(3):
        res = subprocess.run([sys.executable, "-c", code, str(files["real"]), str(files["syn0"])],
                             capture_output=True, text=True, timeout=240)
        assert (res.returncode, res.stdout.strip()) == (0, "ok"), res.stderr[-2000:]
        assert "terminate called" not in res.stderr


@pytest.mark.timeout(300)
def test_close_frees_the_pipelines_at_once_dropping_only_numbas_finalizer_error(
        files, monkeypatch):
    """FFCV's pipelines sit in reference cycles; when the collector frees their numba
    dispatchers, numba's finalizer can raise KeyError ("Exception ignored in: <finalize
    object ...>" on stderr, whenever the collector runs). close() frees them at once and drops
    exactly those errors."""
    import gc
    import os
    import sys
    import weakref

    loader = make_loader(files["real"], cfg())
    assert len(list(loader)) == 30 // 8
    ffcv_loader = weakref.ref(loader.backend._loaders[0].loader)
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(repr(u.exc_value)))
    space = {}
    exec(compile("def finalizer():\n    raise KeyError('numba')\n",  # as numba's own
                 os.path.join("site-packages", "numba", "core", "dispatcher.py"), "exec"), space)

    def finalizer():  # same name, another file: a real error, reported
        raise KeyError("ours")

    class Node:
        pass

    gc.collect()
    gc.disable()  # only close() may collect
    try:
        for fn in (space["finalizer"], finalizer):
            a, b = Node(), Node()
            a.other, b.other = b, a                           # a cycle: freed by the collector
            weakref.finalize(b, fn)
        del a, b
        assert ffcv_loader() is not None and seen == []
        loader.close()
        assert ffcv_loader() is None
        assert seen == ["KeyError('ours')"]
    finally:
        gc.enable()


def compiles(fn):
    """(result of fn(), names of the functions numba compiled meanwhile, in any thread)."""
    from numba.core import event

    with event.install_recorder("numba:compile") as rec:
        out = fn()
    return out, [e.data["dispatcher"].py_func.__name__ for _, e in rec.buffer
                 if e.is_start]


@pytest.mark.timeout(300)
def test_a_loader_reuses_the_compiled_pipeline_of_an_earlier_one_with_the_same_spec(
        files, tmp_path):
    """FFCV compiles each loader's pipeline anew (~1-2 s per loader and file); a later loader
    of the same spec, even over another file of the same layout, runs the stages already
    compiled in this process, with the same pixels, labels and ids."""
    spec = cfg(seed=11)
    first = make_loader(files["syn0"], spec)
    list(first)
    other = write_beton(tmp_path / "other.beton", 18, num_classes=3, label_base=10,
                        synthetic=True, sample_id_base=300)
    loader = make_loader(other, spec)
    _, names = compiles(lambda: check_batches(loader, [loader.sources[0]], epochs=1,
                                                    seed=11))
    # only FFCV's memory reader, compiled eagerly inside ffcv's Loader(), is left
    assert set(names) <= {"read"}, names
    assert loader.backend._loaders[0].shared
    # a different spec compiles its own pipeline (and still gives the right pixels)
    resized = make_loader(other, spec.replace(image_size=SIZE - 4))
    assert next(iter(resized)).images.shape[-1] == SIZE - 4
    assert not resized.backend._loaders[0].shared
    for lo in (first, loader, resized):
        lo.close()
