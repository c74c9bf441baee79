"""DALI backend (CPU with device_id=None; the mixed GPU decoder where a GPU exists): the same
rows as the plan and as FFCV, images within JPEG-decoder tolerance of FFCV's, raw-stored
samples, and the documented errors (DALI missing, decode failure)."""
import sys

import numpy as np
import pytest
import torch

from loaders.backends import get_backend
from loaders.beton import BetonReader
from loaders.config import LoaderConfig, MixConfig
from loaders.errors import BackendUnavailable, LoaderWorkerError
from loaders.mixing import DualDomainLoader, make_eval_loader
from loaders.sources import BetonSource
from tests.loaders.loader_data import wreck_jpeg, write_beton
from tests.loaders.loader_refs import expected_rows

SIZE = 32
MEAN_TOL, MAX_TOL = 2.5, 40
"""uint8 agreement of DALI and FFCV eval crops (measured: mean 1.6 / max 24 levels for JPEGs,
0.3 / 27 for raw): DALI's decode and antialiased linear resize vs FFCV's fast-DCT libjpeg-turbo
decode and OpenCV INTER_AREA differ by a level or two on average, more on sharp edges."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dali")
    return {"real": write_beton(d / "real.beton", 22, num_classes=3, label_base=5),
            "syn": write_beton(d / "syn.beton", 30, num_classes=3, label_base=5,
                               synthetic=True, sample_id_base=300, write_mode="proportion"),
            "raw": write_beton(d / "raw.beton", 9, num_classes=3, label_base=5,
                               write_mode="raw")}


def cfg(**kw):
    return LoaderConfig(**{"backend": "dali", "batch_size": 8, "image_size": SIZE, "workers": 1,
                           "dali_py_workers": 0, **kw})


def eval_stream(path, backend, **kw):
    loader = make_eval_loader(path, cfg(backend=backend, dtype="uint8", **kw))
    out = [b.clone() for b in loader]
    return (torch.cat([b.images for b in out]), torch.cat([b.labels for b in out]),
            torch.cat([b.sample_id for b in out]), [b.batch_size for b in out])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["real", "raw"])
def test_dali_cpu_and_ffcv_eval_agree(files, name):
    d_img, d_lab, d_sid, d_sizes = eval_stream(files[name], "dali", dali_py_workers=1)
    f_img, f_lab, f_sid, f_sizes = eval_stream(files[name], "ffcv")
    n = len(BetonReader(files[name]))
    assert d_sizes == f_sizes and sum(d_sizes) == n
    assert d_lab.tolist() == f_lab.tolist() == BetonSource(files[name]).labels.tolist()
    assert d_sid.tolist() == f_sid.tolist() == list(range(n))
    diff = (d_img.float() - f_img.float()).abs()
    assert diff.mean() < MEAN_TOL and diff.max() <= MAX_TOL, (diff.mean(), diff.max())
    # and the agreement is per image: each DALI crop is closest to its own FFCV crop
    dist = ((d_img.float().flatten(1)[:, None] - f_img.float().flatten(1)[None]) ** 2).mean(-1)
    assert (dist.argmin(1) == torch.arange(n)).all()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("py_workers", [0, 1])
def test_dual_batches_follow_the_plan_with_raw_and_jpeg_samples(files, py_workers):
    real, syn = BetonSource(files["real"]), BetonSource(files["syn"])
    assert syn.image_raw.any() and not syn.image_raw.all()  # write mode "proportion"
    loader = DualDomainLoader(real, syn, cfg(dali_py_workers=py_workers), MixConfig())
    for epoch in range(2):
        plan = loader.epoch_plan(epoch)
        got = [b.clone() for b in loader]
        assert len(got) == len(plan) == 22 // 4
        for b, batch in enumerate(got):
            labels, sids = expected_rows([real, syn], plan.batch(b))
            assert batch.num_real == 4 and batch.images.shape == (8, 3, SIZE, SIZE)
            assert batch.labels.tolist() == labels.tolist()
            assert batch.sample_id.tolist() == sids.tolist()
            assert batch.images.dtype == torch.float32 and torch.isfinite(batch.images).all()
    loader.close()


@pytest.mark.timeout(600)
def test_set_epoch_and_early_exit_restart_cleanly(files):
    loader = DualDomainLoader(files["real"], files["syn"], cfg(), MixConfig())
    first = next(iter(loader)).sample_id.tolist()  # leave epoch 0 after one batch
    loader.set_epoch(3)
    e3 = [b.sample_id.tolist() for b in loader]
    plan3 = loader.epoch_plan(3)
    want = [expected_rows(loader.sources, plan3.batch(b))[1].tolist() for b in range(len(plan3))]
    assert e3 == want
    loader.set_epoch(0)
    assert next(iter(loader)).sample_id.tolist() == first
    loader.close()


def test_dali_missing_names_the_extra(monkeypatch, files):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    monkeypatch.delitem(sys.modules, "loaders.dali", raising=False)
    with pytest.raises(BackendUnavailable, match=r"synthclone\[dali\]"):
        get_backend("dali")
    with pytest.raises(BackendUnavailable, match="nvidia-dali"):
        make_eval_loader(files["real"], cfg())


@pytest.mark.timeout(300)
def test_a_corrupt_jpeg_raises_instead_of_hanging(files, tmp_path):
    path = wreck_jpeg(write_beton(tmp_path / "bad.beton", 10), 3)
    loader = make_eval_loader(path, cfg(dali_py_workers=1))
    with pytest.raises(LoaderWorkerError, match="dali"):
        list(loader)
    loader.close()


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_mixed_gpu_decoder_matches_the_cpu_decoder(files):
    g_img, g_lab, g_sid, _ = eval_stream(files["real"], "dali", device="cuda")
    c_img, c_lab, c_sid, _ = eval_stream(files["real"], "dali")
    assert g_img.is_cuda
    assert g_lab.cpu().tolist() == c_lab.tolist() and g_sid.tolist() == c_sid.tolist()
    diff = (g_img.cpu().float() - c_img.float()).abs()
    assert diff.mean() < MEAN_TOL and diff.max() <= MAX_TOL, (diff.mean(), diff.max())
    loader = DualDomainLoader(files["real"], files["syn"], cfg(device="cuda"), MixConfig())
    batch = next(iter(loader))
    assert batch.images.is_cuda and batch.labels.is_cuda and batch.num_real == 4
    np.testing.assert_array_equal(
        batch.labels.cpu().numpy(), expected_rows(loader.sources, loader.epoch_plan(0).batch(0))[0])
