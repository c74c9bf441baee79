"""Tiny stand-ins for what ImageNet users have on disk: the train folder and the ILSVRC-2012
devkit's meta.mat, in their real layouts."""
import numpy as np

DEVKIT_FIELDS = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
                 "wordnet_height", "num_train_images")


def fake_train_folder(root, counts: dict):
    """ImageNet's train layout: root/<wnid>/<wnid>_<i>.JPEG (empty files: only names count)."""
    for wnid, n in counts.items():
        d = root / wnid
        d.mkdir(parents=True)
        for i in range(n):
            (d / f"{wnid}_{i}.JPEG").write_bytes(b"")
    return root


def fake_meta_mat(path, counts: dict, parents: int = 2):
    """The ILSVRC-2012 devkit's data/meta.mat: a (N, 1) struct array ``synsets`` whose first
    rows are the leaf classes (ILSVRC2012_ID 1..1000, num_children 0), then inner WordNet nodes
    (ids above 1000, with children and the summed num_train_images)."""
    import scipy.io

    u16 = lambda v: np.array([[v]], dtype=np.uint16)  # noqa: E731
    rows = [(u16(i + 1), wnid, f"class {wnid}", "a gloss", u16(0), np.zeros((1, 0), np.uint16),
             u16(0), u16(n)) for i, (wnid, n) in enumerate(counts.items())]
    total = sum(counts.values())
    for j in range(parents):  # inner nodes: never counted as classes
        rows.append((u16(1001 + j), f"n0000000{j}", "entity", "an inner node", u16(2),
                     np.array([[1, 2]], np.uint16), u16(3), u16(total)))
    arr = np.empty((len(rows), 1), dtype=[(f, object) for f in DEVKIT_FIELDS])
    for i, row in enumerate(rows):
        for f, v in zip(DEVKIT_FIELDS, row):
            arr[i, 0][f] = v
    scipy.io.savemat(str(path), {"synsets": arr})
    return path
