"""Each test-set layout, read from a tiny fake saved the way the real release lays it out."""
import os

import numpy as np
import pytest

from engine.eval import sets
from engine.catalog import imagenet_wnids
from engine.eval.labels import subset_labels, wnid_to_label
from tests.engine.eval import fakes

WNIDS = ["n01440764", "n01443537", "n15075141"]  # labels 0, 1, 999


def _pairs(ts):
    return [(os.path.basename(p), ts.groups[t]) for p, t in zip(ts.items, ts.targets)]


def test_imagenet_val_wnid_folders_and_sketch(tmp_path):
    made = fakes.wnid_folders(str(tmp_path / "val"), WNIDS, per_class=2)
    (ts,) = sets.load_set("imagenet-val", str(tmp_path / "val"))
    assert ts.items == [p for p, _ in made]
    assert [ts.groups[t][0] for t in ts.targets] == [l for _, l in made] == [0, 0, 1, 1, 999, 999]
    assert len(ts.groups) == 1000 and ts.fingerprint["method"] == "listing-sha256"
    (sk,) = sets.load_set("sketch", str(tmp_path / "val"))  # alias
    assert sk.name == "imagenet-sketch" and sk.targets.tolist() == ts.targets.tolist()


def test_flat_val_with_devkit_ilsvrc_ids_maps_through_meta_mat(tmp_path):
    order = fakes.devkit_order()
    # images 1..4 carry ILSVRC2012_IDs 5, 1, 1000, 5
    gt = [5, 1, 1000, 5]
    devkit = fakes.write_devkit(str(tmp_path / "ILSVRC2012_devkit_t12"), order, gt)
    fakes.flat_val(str(tmp_path / "val"), 4)
    (ts,) = sets.load_set("imagenet-val", str(tmp_path / "val"))  # found beside the folder
    want = [wnid_to_label()[order[i - 1]] for i in gt]
    assert [ts.groups[t][0] for t in ts.targets] == want
    assert want != [i - 1 for i in gt]  # the IDs are not timm indices
    assert "ILSVRC2012_IDs via meta.mat" in ts.layout
    # the ground-truth file itself, given explicitly
    gt_file = os.path.join(devkit, "data", "ILSVRC2012_validation_ground_truth.txt")
    (ts2,) = sets.load_set("imagenet-val", str(tmp_path / "val"), label_file=gt_file)
    assert ts2.targets.tolist() == ts.targets.tolist()


def test_flat_val_with_kaggle_csv_and_label_list(tmp_path):
    fakes.flat_val(str(tmp_path / "val"), 3)
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\n"
                   "ILSVRC2012_val_00000002,n15075141 1 2 3 4 n15075141 5 6 7 8\n"
                   "ILSVRC2012_val_00000001,n01443537 1 2 3 4\n"
                   "ILSVRC2012_val_00000003,n01440764 0 0 9 9\n")
    (ts,) = sets.load_set("imagenet-val", str(tmp_path / "val"), label_file=str(csv))
    assert [ts.groups[t][0] for t in ts.targets] == [1, 999, 0]
    lst = tmp_path / "val.txt"
    lst.write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG n01440764\n"
                   "ILSVRC2012_val_00000003.JPEG 7\n")
    (ts,) = sets.load_set("imagenet-val", str(tmp_path / "val"), label_file=str(lst))
    assert [ts.groups[t][0] for t in ts.targets] == [65, 0, 7]


def test_flat_val_errors(tmp_path):
    fakes.flat_val(str(tmp_path / "val"), 2)
    with pytest.raises(sets.SetError, match="no label file was found.*--set-labels"):
        sets.load_set("imagenet-val", str(tmp_path / "val"))
    lst = tmp_path / "labels.txt"
    lst.write_text("ILSVRC2012_val_00000001.JPEG 3\n")
    with pytest.raises(sets.SetError, match="1 images have no label.*00000002"):
        sets.load_set("imagenet-val", str(tmp_path / "val"), label_file=str(lst))
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("1\n2\n")
    with pytest.raises(sets.SetError, match="needs the devkit's meta.mat"):
        sets.load_set("imagenet-val", str(tmp_path / "val"), label_file=str(gt))


def test_imagenet_v2_class_index_folders(tmp_path):
    made = fakes.v2_folders(str(tmp_path / "v2"), [0, 10, 2, 999])
    (ts,) = sets.load_set("imagenet-v2", str(tmp_path / "v2"))
    assert [ts.groups[t][0] for t in ts.targets] == [l for _, l in made]
    assert sorted({ts.groups[t][0] for t in ts.targets}) == [0, 2, 10, 999]
    os.makedirs(tmp_path / "v2" / "n01440764")
    fakes.image(str(tmp_path / "v2" / "n01440764" / "a.jpeg"), 1)
    with pytest.raises(sets.SetError, match="class indices 0..999"):
        sets.load_set("imagenet-v2", str(tmp_path / "v2"))


def test_imagenet_r_and_a_use_their_200_classes(tmp_path):
    fakes.wnid_folders(str(tmp_path / "r"), fakes.R_WNIDS_SAMPLE)
    (ts,) = sets.load_set("imagenet-r", str(tmp_path / "r"))
    assert [g[0] for g in ts.groups] == list(subset_labels("imagenet-r"))
    assert {ts.groups[t][0] for t in ts.targets} == {wnid_to_label()[w]
                                                      for w in fakes.R_WNIDS_SAMPLE}
    assert "3 of 200 class folders present" in ts.notes
    fakes.wnid_folders(str(tmp_path / "r"), ["n01440764"])  # tench is not an R class
    with pytest.raises(sets.SetError, match="n01440764 is not one of the 200 imagenet-r"):
        sets.load_set("imagenet-r", str(tmp_path / "r"))
    a = subset_labels("imagenet-a")
    fakes.wnid_folders(str(tmp_path / "a"), [imagenet_wnids()[a[0]]])
    (ta,) = sets.load_set("imagenet-a", str(tmp_path / "a"))
    assert len(ta.groups) == 200 and ta.groups[ta.targets[0]] == (a[0],)


def test_objectnet_folders_and_mapping_files(tmp_path):
    mapping = {"alarm_clock": ("Alarm clock", [409, 530]), "banana": ("Banana", [954]),
               "tennis_racket": ("Tennis racket", [752])}
    fakes.objectnet(str(tmp_path / "on"), mapping, unmapped=("bucket", "wok"))
    (ts,) = sets.load_set("objectnet", str(tmp_path / "on"))
    assert ts.group_names == ["Alarm clock", "Banana", "Tennis racket"]
    assert ts.groups == [(409, 530), (954,), (752,)]
    assert [ts.group_names[t] for t in ts.targets] == ["Alarm clock"] * 2 + ["Banana"] * 2 + \
        ["Tennis racket"] * 2
    assert ts.border == 2 and "4 images of classes without an ImageNet-1K" in ts.notes[0]
    # the images folder itself, mappings beside it
    (ts2,) = sets.load_set("objectnet", str(tmp_path / "on" / "objectnet-1.0" / "images"))
    assert ts2.groups == ts.groups and len(ts2) == 6
    os.remove(tmp_path / "on" / "objectnet-1.0" / "mappings" / "imagenet_to_label_2012_v2")
    with pytest.raises(sets.SetError, match="imagenet_to_label_2012_v2 is missing"):
        sets.load_set("objectnet", str(tmp_path / "on"))


def test_imagenet_c_one_set_per_corruption(tmp_path):
    for c in ("gaussian_noise", "fog"):
        for sev in (1, 5):
            fakes.wnid_folders(str(tmp_path / "c" / c / str(sev)), WNIDS[:2], per_class=1)
    out = sets.load_set("imagenet-c", str(tmp_path / "c"), severity=5)
    assert [s.name for s in out] == ["imagenet-c/fog", "imagenet-c/gaussian_noise"]
    assert all(len(s) == 2 and s.path.endswith(os.sep + "5") for s in out)
    (one,) = sets.load_set("imagenet-c", str(tmp_path / "c" / "fog"), severity=1)
    assert one.name == "imagenet-c/fog"
    with pytest.raises(sets.SetError, match="no severity folder 3"):
        sets.load_set("imagenet-c", str(tmp_path / "c"), severity=3)


def test_labelled_beton(tmp_path):
    r = subset_labels("imagenet-r")
    path = fakes.beton(str(tmp_path / "r.beton"), [r[0], r[5], r[0]])
    (ts,) = sets.load_set("imagenet-r", path)
    assert ts.beton == path and ts.items == [0, 1, 2] and len(ts.groups) == 200
    assert [ts.groups[t][0] for t in ts.targets] == [r[0], r[5], r[0]]
    (any_name,) = sets.load_set("my-generated-val", path)
    assert len(any_name.groups) == 1000 and any_name.fingerprint["method"] == "file-sha256"
    with pytest.raises(sets.SetError, match="labels outside the 200"):
        sets.load_set("imagenet-a", fakes.beton(str(tmp_path / "x.beton"), [0, 1]))


def test_unlabelled_or_missing_beton_is_one_set_error_everywhere(tmp_path):
    """load_set, eval-data and --train-counts share one check (sets.read_labelled_beton)."""
    from ffcv.fields import RGBImageField

    from engine.eval.evaluate import read_train_counts
    from loaders.beton import BetonWriter

    path = str(tmp_path / "nolabel.beton")
    with BetonWriter(path, num_samples=1, fields={"image": RGBImageField(write_mode="raw")},
                     num_workers=1) as w:
        w.append(0, {"image": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(sets.SetError, match=r"^imagenet-r: .*nolabel\.beton has no 'label' "
                                            r"field \(fields: image\)$"):
        sets.load_set("imagenet-r", path)
    with pytest.raises(sets.SetError, match=r"^--train-counts .*has no 'label' field"):
        read_train_counts(path)
    with pytest.raises(sets.SetError, match=r"^--reference .*missing\.beton: no such \.beton"):
        sets.read_labelled_beton(str(tmp_path / "missing.beton"), "--reference")


def test_bad_names_missing_and_empty_folders(tmp_path):
    with pytest.raises(sets.SetError, match="unknown test set 'imagenet-q'.*known: imagenet-val"):
        sets.load_set("imagenet-q", str(tmp_path))
    with pytest.raises(sets.SetError, match="no such folder"):
        sets.load_set("imagenet-sketch", str(tmp_path / "nope"))
    fakes.wnid_folders(str(tmp_path / "s"), WNIDS[:1])
    os.makedirs(tmp_path / "s" / "n01443537")
    with pytest.raises(sets.SetError, match="n01443537: class folder holds no images"):
        sets.load_set("imagenet-sketch", str(tmp_path / "s"))
    with pytest.raises(sets.SetError, match="expected NAME=PATH"):
        sets.parse_specs(["imagenet-r"])
    with pytest.raises(sets.SetError, match="imagenet-r given twice"):
        sets.parse_specs(["imagenet-r=/a,imagenet-r=/b"])
    assert sets.parse_specs(["a=/x,b=/y", "c=/z"]) == [("a", "/x"), ("b", "/y"), ("c", "/z")]


def test_subsample_is_seeded_and_ordered(tmp_path):
    fakes.wnid_folders(str(tmp_path / "v"), WNIDS, per_class=4)
    (ts,) = sets.load_set("imagenet-val", str(tmp_path / "v"))
    a, b = ts.subsample(5, 0), ts.subsample(5, 0)
    assert a.items == b.items and len(a) == 5 and a.items == sorted(a.items)
    assert np.array_equal(a.targets, [ts.targets[ts.items.index(p)] for p in a.items])
