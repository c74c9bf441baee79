"""Every transfer dataset read through torchvision (download=False) from a tiny fake in its
layout, the splits we carve, and a transfer evaluation end to end."""
import json
import os
from collections import Counter

import numpy as np
import pytest

from engine.cli import main
from engine.eval.transfer_sets import TransferSetError, load_transfer, stratified_split
from tests.engine.eval import fakes, transfer_fakes


@pytest.mark.parametrize("name", ["flowers", "dtd", "aircraft"])
def test_sets_with_official_train_val_test(tmp_path, name):
    want = transfer_fakes.BUILDERS[name](str(tmp_path))
    data = load_transfer(name, str(tmp_path))
    for split in ("train", "val", "test"):
        assert sorted(data.splits[split].labels.tolist()) == sorted(want[split]), split
    assert data.num_classes == 3
    assert len(data.splits["trainval"].items) == len(want["train"]) + len(want["val"])
    assert not any("validation split" in n for n in data.notes)


def test_flowers_records_non_official_mat_files(tmp_path):
    transfer_fakes.flowers(str(tmp_path))
    data = load_transfer("flowers102", str(tmp_path))
    assert any("differ from the official files" in n for n in data.notes)


@pytest.mark.parametrize("name", ["pets", "food", "cars"])
def test_sets_with_train_test_get_a_seeded_validation_split(tmp_path, name):
    want = transfer_fakes.BUILDERS[name](str(tmp_path))
    train_name = "trainval" if name == "pets" else "train"
    data = load_transfer(name, str(tmp_path), val_fraction=0.25, seed=4)
    tr, va = data.splits["train"].labels.tolist(), data.splits["val"].labels.tolist()
    assert sorted(tr + va) == sorted(want[train_name])
    assert Counter(va) == {c: 1 for c in set(want[train_name])}  # 25 % of 4 per class
    assert sorted(data.splits["test"].labels.tolist()) == sorted(want["test"])
    again = load_transfer(name, str(tmp_path), val_fraction=0.25, seed=4)
    assert again.splits["val"].items == data.splits["val"].items
    assert set(data.splits["train"].items).isdisjoint(data.splits["val"].items)


@pytest.mark.parametrize("name", ["eurosat", "sun397"])
def test_sets_without_splits(tmp_path, name):
    want = transfer_fakes.BUILDERS[name](str(tmp_path))["all"]
    data = load_transfer(name, str(tmp_path), test_fraction=0.2, val_fraction=0.25, seed=0)
    sizes = {k: Counter(v.labels.tolist()) for k, v in data.splits.items() if k != "trainval"}
    assert sizes["test"] == {0: 1, 1: 1, 2: 1} and sizes["val"] == {0: 1, 1: 1, 2: 1}
    assert sum(sum(c.values()) for c in sizes.values()) == len(want)
    items = [p for k in ("train", "val", "test") for p in data.splits[k].items]
    assert len(set(items)) == len(want)
    if name == "sun397":  # class from the folder path, as torchvision lists it
        bakery = [p for p in items if "bakery" in p]
        lab = dict(zip(data.splits["train"].items + data.splits["val"].items +
                       data.splits["test"].items,
                       np.concatenate([data.splits[k].labels for k in ("train", "val", "test")])))
        assert {lab[p] for p in bakery} == {1}


def test_missing_or_wrong_layout_and_names(tmp_path):
    with pytest.raises(TransferSetError, match="unknown transfer set 'mnist'"):
        load_transfer("mnist", str(tmp_path))
    with pytest.raises(TransferSetError, match="no such folder"):
        load_transfer("dtd", str(tmp_path / "nope"))
    with pytest.raises(TransferSetError, match="Food101 cannot read.*food-101/"):
        load_transfer("food", str(tmp_path))


def test_stratified_split_keeps_one_per_class():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    held = stratified_split(labels, 0.5, 0)
    assert Counter(labels[held].tolist()) == {0: 2, 1: 1}  # a singleton class is never held out


@pytest.mark.timeout(600)
def test_transfer_through_eval_cli(tmp_path, monkeypatch):
    """Colour-coded classes are separable even in a random network's features: both probes
    reach 100 % on the test split."""
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path / "cache"))
    transfer_fakes.flowers(str(tmp_path / "flowers"), per=(6, 3, 4))
    transfer_fakes.eurosat(str(tmp_path / "eurosat"), per=10)
    ckpt = fakes.tiny_checkpoint(str(tmp_path / "m.pt"))
    out = str(tmp_path / "out")
    assert main(["eval", ckpt, "--arch", "test_resnet", "--transfer",
                 f"flowers={tmp_path / 'flowers'},eurosat={tmp_path / 'eurosat'}",
                 "--transfer.resize", "32", "--transfer.crop", "32", "--transfer.trials", "5",
                 "--transfer.k", "3", "--workers", "0", "--no-progress", "-o", out]) == 0
    res = json.load(open(os.path.join(out, "results.json")))
    t = res["transfer"]
    for name in ("flowers", "eurosat"):
        assert t[name]["linear"]["top1"] == 100.0 and t[name]["knn"]["top1"] == 100.0
        assert t[name]["linear"]["trials"] == 5 and t[name]["knn"]["k"] == 3
    assert t["flowers"]["splits"] == {"train": 18, "val": 9, "test": 12}
    assert t["average"] == {"linear": 100.0, "knn": 100.0, "sets": ["eurosat", "flowers"]}
    assert res["sets"] == {} and res["label_space"] is None
