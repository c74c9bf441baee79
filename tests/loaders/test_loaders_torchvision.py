"""torchvision backend: PIL decoding of .beton rows, the ImageFolder dataset and its labels,
planned rows through DataLoader workers, and worker failures that raise instead of hang."""
import os

import numpy as np
import pytest
import torch

from loaders.beton import BetonReader
from loaders.config import LoaderConfig, MixConfig
from loaders.errors import LoaderConfigError, LoadersError, LoaderWorkerError
from loaders.mixing import DualDomainLoader, make_eval_loader
from loaders.sources import BetonSource
from loaders.torchvision import BetonDataset, ImageFolderDataset, folder_loader
from tests.loaders.loader_data import image, wreck_jpeg, write_beton, write_folder
from tests.loaders.loader_refs import center_crop, expected_rows

SIZE = 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tv")
    return {"real": write_beton(d / "real.beton", 20, num_classes=2, label_base=7),
            "syn": write_beton(d / "syn.beton", 24, num_classes=2, label_base=7,
                               synthetic=True, sample_id_base=100),
            "raw": write_beton(d / "raw.beton", 6, write_mode="raw"),
            "folder": write_folder(d / "folder", 10, classes=("n01484850", "n01491361"))}


def cfg(**kw):
    return LoaderConfig(**{"backend": "torchvision", "batch_size": 6, "image_size": SIZE,
                           "workers": 2, "timeout": 60, **kw})


def test_beton_dataset_decodes_what_was_stored(files):
    raw = BetonDataset(files["raw"])
    for i in range(6):
        img, label, sid, f = raw[i]
        assert (np.asarray(img) == image(i)).all() and sid == i and f == 0
    jpg = BetonDataset(files["real"])
    with BetonReader(files["real"]) as r:
        for i in (0, 7):
            img, label, sid, _ = jpg[i]
            assert label == r.read(i)["label"] and sid == i
            diff = np.abs(np.asarray(img, np.float32) - r.read(i)["image"].astype(np.float32))
            assert diff.mean() < 2.0 and diff.max() <= 32  # PIL: accurate DCT; FFCV: fast DCT


def test_image_folder_labels(files, tmp_path):
    ds = ImageFolderDataset(files["folder"])
    assert ds.classes == ["n01484850", "n01491361"]  # great white shark, tiger shark
    assert ds.targets.tolist() == [2] * 5 + [3] * 5  # their ImageNet-1K indices, sorted listing
    assert len(ds) == 10 and ds[7][1] == 3
    compact = ImageFolderDataset(files["folder"], labels="compact")
    assert compact.targets.tolist() == [0] * 5 + [1] * 5
    odd = tmp_path / "odd"
    write_folder(odd, 4, classes=("cats", "dogs"))
    with pytest.raises(LoaderConfigError, match="not ImageNet-1K wnids.*compact"):
        ImageFolderDataset(str(odd))
    assert ImageFolderDataset(str(odd), labels="compact").targets.tolist() == [0, 0, 1, 1]


@pytest.mark.timeout(300)
def test_folder_eval_loader_reads_every_image_once_in_order(files):
    loader = folder_loader(files["folder"], cfg(pipeline="eval", batch_size=4))
    got = [b.clone() for b in loader]
    assert [b.batch_size for b in got] == [4, 4, 2]
    ds = ImageFolderDataset(files["folder"])
    assert torch.cat([b.sample_id for b in got]).tolist() == list(range(10))
    assert torch.cat([b.labels for b in got]).tolist() == ds.targets.tolist()
    assert got[0].images.shape == (4, 3, SIZE, SIZE) and got[0].images.dtype == torch.float32


@pytest.mark.timeout(300)
def test_dual_batches_follow_the_plan_through_workers(files):
    real, syn = BetonSource(files["real"]), BetonSource(files["syn"])
    fixed = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, dtype="uint8")
    loader = DualDomainLoader(real, syn, cfg(**fixed), MixConfig(synthetic_share=0.5))
    pix = {}
    for s in (real, syn):
        with BetonReader(s.paths[0]) as r:
            pix[s.paths[0]] = [r.read(i)["image"] for i in range(len(r))]
    all_pix = pix[files["real"]] + pix[files["syn"]]
    for epoch in range(2):
        plan = loader.epoch_plan(epoch)
        got = [b.clone() for b in loader]
        assert len(got) == len(plan) == 20 // 3
        for b, batch in enumerate(got):
            rows = plan.batch(b)
            labels, sids = expected_rows([real, syn], rows)
            assert batch.num_real == 3
            assert batch.labels.tolist() == labels.tolist()
            assert batch.sample_id.tolist() == sids.tolist()
            want = np.stack([center_crop(all_pix[r], SIZE, 1.0) for r in rows])
            got_hwc = batch.images.permute(0, 2, 3, 1).numpy().astype(np.float32)
            assert np.abs(got_hwc - want).mean() < 4  # PIL antialiased resize vs INTER_AREA


@pytest.mark.timeout(120)
def test_a_killed_worker_raises_instead_of_hanging(files, monkeypatch):
    real_decode = BetonDataset.decode

    def dying(self, row):
        if row == 5:
            os._exit(3)  # the worker process dies without a word
        return real_decode(self, row)

    monkeypatch.setattr(BetonDataset, "decode", dying)
    loader = make_eval_loader(files["real"], cfg())
    with pytest.raises(LoaderWorkerError, match="worker"):
        list(loader)


@pytest.mark.timeout(120)
def test_an_undecodable_image_names_the_file(files, tmp_path):
    path = wreck_jpeg(write_beton(tmp_path / "bad.beton", 8), 2)
    with pytest.raises(LoadersError, match="sample 2: undecodable"):
        list(make_eval_loader(path, cfg()))
