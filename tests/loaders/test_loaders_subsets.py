"""Subsets: low-data, long-tail and fraction sizes equal the papers' formulas; index files."""
import json
import math

import numpy as np
import pytest

from loaders import subsets
from loaders.errors import LoaderConfigError
from loaders.sources import BetonSource
from tests.loaders.loader_data import write_beton


def labels(per_class, classes=None):
    classes = classes if classes is not None else range(len(per_class))
    return np.concatenate([np.full(n, c) for c, n in zip(classes, per_class)])


def test_per_class_takes_n_of_every_class_reproducibly():
    y = labels([30, 25, 40], classes=[3, 7, 900])  # ImageNet-1K style sparse labels
    pos = subsets.per_class(y, 20, seed=1)
    assert subsets.class_counts(y[pos]) == {3: 20, 7: 20, 900: 20}
    assert (pos == subsets.per_class(y, 20, seed=1)).all()
    assert not (pos == subsets.per_class(y, 20, seed=2)).all()
    assert len(set(pos.tolist())) == 60 and (np.diff(pos) > 0).all()


def test_per_class_refuses_a_class_that_is_too_small():
    y = labels([30, 5])
    with pytest.raises(LoaderConfigError, match=r"fewer than 10 samples .*\(1, 5\)"):
        subsets.per_class(y, 10)
    assert subsets.class_counts(y[subsets.per_class(y, 10, allow_fewer=True)]) == {0: 10, 1: 5}


@pytest.mark.parametrize("gamma", [50, 100, 200])
def test_long_tail_sizes_follow_the_exponential_profile(gamma):
    k_classes, n1 = 10, 1300
    sizes = subsets.long_tail_sizes(k_classes, gamma, n1)
    # hand-written seed 003 §4.3 formula, k = 1..K
    want = [math.floor(n1 * gamma ** (-(k - 1) / (k_classes - 1)) + 1e-9)
            for k in range(1, k_classes + 1)]
    assert sizes.tolist() == want
    assert sizes[0] == 1300 and sizes[-1] == 1300 // gamma  # n_K = n_1 / gamma exactly


def test_long_tail_subset_sizes_with_a_seeded_class_order():
    k_classes, n1, gamma = 8, 60, 10
    y = labels([70] * k_classes, classes=[10 * c for c in range(k_classes)])
    pos, info = subsets.long_tail(y, gamma, n1=n1, seed=3, return_info=True)
    counts = subsets.class_counts(y[pos])
    sizes = subsets.long_tail_sizes(k_classes, gamma, n1)
    # the class at rank k of the recorded order holds n_k samples
    assert [counts[c] for c in info["class_order"]] == sizes.tolist()
    assert sorted(info["class_order"]) == sorted(counts)
    assert info["clipped"] == []
    _, other = subsets.long_tail(y, gamma, n1=n1, seed=4, return_info=True)
    assert other["class_order"] != info["class_order"]  # the order is random, and seeded
    _, same = subsets.long_tail(y, gamma, n1=n1, seed=3, return_info=True)
    assert same["class_order"] == info["class_order"]


def test_long_tail_keeps_all_of_a_class_smaller_than_its_quota():
    y = labels([100, 3, 100])
    pos, info = subsets.long_tail(y, gamma=2, n1=50, seed=0, return_info=True)
    counts = subsets.class_counts(y[pos])
    short = [c for c in info["target"] if info["target"][c] > {0: 100, 1: 3, 2: 100}[c]]
    assert info["clipped"] == short
    for c, n in counts.items():
        assert n == min(info["target"][c], {0: 100, 1: 3, 2: 100}[c])


def test_fraction_is_class_stratified_and_exact():
    y = labels([40, 20, 10])
    pos = subsets.fraction(y, 0.25, seed=0)
    assert len(pos) == 18  # floor(0.25 * 70 + 0.5)
    c = subsets.class_counts(y[pos])
    assert c == {0: 10, 1: 5, 2: 3}  # quotas 10, 5, 2.5 -> the largest remainder gets the extra
    # seed 004: generated 200% of the REAL set's size, taken from a big enough generated set
    g = labels([100, 100, 100])
    assert len(subsets.fraction(g, 2.0, reference=70)) == 140
    with pytest.raises(LoaderConfigError, match="has 300"):
        subsets.fraction(g, 2.0, reference=300)


def test_index_file_round_trip_and_mismatch(tmp_path):
    path = write_beton(tmp_path / "r.beton", 40, num_classes=4, label_base=100)
    src = BetonSource(path)
    spec = subsets.SubsetSpec(kind="per_class", n=3, seed=7)
    rows, record = subsets.make_subset(src, spec)
    out = subsets.save_subset(str(tmp_path / "run" / "real_subset.json"), rows, record)
    back, rec = subsets.load_subset(out, src)
    assert (back == rows).all() and rec["counts"] == {"100": 3, "101": 3, "102": 3, "103": 3}
    assert json.load(open(out))["spec"]["n"] == 3
    rows2, _ = subsets.make_subset(src, spec)
    assert (rows2 == rows).all()  # reproducible from the spec
    other = BetonSource(write_beton(tmp_path / "o.beton", 12))
    with pytest.raises(subsets.SubsetFileError, match="made for files of sizes"):
        subsets.load_subset(out, other)
    with pytest.raises(subsets.SubsetFileError, match="no such subset"):
        subsets.load_subset(str(tmp_path / "missing.json"))
