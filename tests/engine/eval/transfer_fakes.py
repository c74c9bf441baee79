"""Tiny transfer datasets saved exactly in the layouts ``torchvision.datasets`` reads with
``download=False``. Each builder returns {split: [class index per image]} as torchvision
should list them (class ``c`` images are coloured by ``COLORS[c]``)."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

COLORS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 40)]


def colored(path: str, c: int, seed: int, size=(36, 30)) -> None:
    """A class-coloured image with a little noise (classes are easy to tell apart)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(COLORS[c]) + rng.integers(-25, 25, (size[1], size[0], 3)), 0, 255)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def flowers(root, classes=3, per=(3, 2, 2)):
    import scipy.io

    base = os.path.join(root, "flowers-102")
    n = classes * sum(per)
    labels = np.array([i % classes for i in range(n)])  # image id i+1 has class labels[i]
    for i in range(n):
        colored(os.path.join(base, "jpg", f"image_{i + 1:05d}.jpg"), labels[i], i)
    ids = {k: [] for k in ("trnid", "valid", "tstid")}
    seen = np.zeros(classes, int)
    for i in range(n):
        c = labels[i]
        k = "trnid" if seen[c] < per[0] else "valid" if seen[c] < per[0] + per[1] else "tstid"
        ids[k].append(i + 1)
        seen[c] += 1
    scipy.io.savemat(os.path.join(base, "imagelabels.mat"), {"labels": labels[None] + 1})
    scipy.io.savemat(os.path.join(base, "setid.mat"),
                     {k: np.array(v)[None] for k, v in ids.items()})
    return {"train": [labels[i - 1] for i in ids["trnid"]],
            "val": [labels[i - 1] for i in ids["valid"]],
            "test": [labels[i - 1] for i in ids["tstid"]]}


def pets(root, breeds=("Abyssinian", "beagle", "Bengal"), per=(4, 2)):
    base = os.path.join(root, "oxford-iiit-pet")
    os.makedirs(os.path.join(base, "annotations"), exist_ok=True)
    out = {}
    for split, count, offset in (("trainval", per[0], 0), ("test", per[1], 100)):
        with open(os.path.join(base, "annotations", f"{split}.txt"), "w") as f:
            for c, breed in enumerate(breeds):
                for i in range(count):
                    name = f"{breed}_{offset + i + 1}"
                    colored(os.path.join(base, "images", name + ".jpg"), c, 10 * c + i + offset)
                    species = 1 if breed[0].isupper() else 2
                    f.write(f"{name} {c + 1} {species} 1\n")
        out[split] = [c for c in range(len(breeds)) for _ in range(count)]
    return out


def food(root, classes=("apple_pie", "baby_back_ribs"), per=(4, 2)):
    base = os.path.join(root, "food-101")
    os.makedirs(os.path.join(base, "meta"), exist_ok=True)
    out = {}
    for split, count, offset in (("train", per[0], 1000), ("test", per[1], 2000)):
        meta = {}
        for c, name in enumerate(classes):
            meta[name] = [f"{name}/{offset + i}" for i in range(count)]
            for i in range(count):
                colored(os.path.join(base, "images", name, f"{offset + i}.jpg"), c, offset + i)
        with open(os.path.join(base, "meta", f"{split}.json"), "w") as f:
            json.dump(meta, f)
        out[split] = [c for c in range(len(classes)) for _ in range(count)]
    return out


def dtd(root, classes=("banded", "blotchy", "braided"), per=(2, 1, 2)):
    base = os.path.join(root, "dtd", "dtd")
    os.makedirs(os.path.join(base, "labels"), exist_ok=True)
    out, k = {}, 0
    for split, count in zip(("train", "val", "test"), per):
        with open(os.path.join(base, "labels", f"{split}1.txt"), "w") as f:
            for c, name in enumerate(classes):
                for _ in range(count):
                    k += 1
                    fn = f"{name}_{k:04d}.jpg"
                    colored(os.path.join(base, "images", name, fn), c, k)
                    f.write(f"{name}/{fn}\n")
        out[split] = [c for c in range(len(classes)) for _ in range(count)]
    return out


def aircraft(root, variants=("707-320", "A300B4", "Cessna 172"), per=(2, 1, 2)):
    base = os.path.join(root, "fgvc-aircraft-2013b", "data")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "variants.txt"), "w") as f:
        f.write("\n".join(variants) + "\n")
    out, k = {}, 1000000
    for split, count in zip(("train", "val", "test"), per):
        with open(os.path.join(base, f"images_variant_{split}.txt"), "w") as f:
            for c, v in enumerate(variants):
                for _ in range(count):
                    k += 1
                    colored(os.path.join(base, "images", f"{k}.jpg"), c, k)
                    f.write(f"{k} {v}\n")
        out[split] = [c for c in range(len(variants)) for _ in range(count)]
    return out


def cars(root, classes=("AM General Hummer SUV 2000", "Acura RL Sedan 2012"), per=(4, 2)):
    import scipy.io

    base = os.path.join(root, "stanford_cars")
    os.makedirs(os.path.join(base, "devkit"), exist_ok=True)
    scipy.io.savemat(os.path.join(base, "devkit", "cars_meta.mat"),
                     {"class_names": np.array(classes, dtype=object)[None]})
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
          ("class", "O"), ("fname", "O")]
    out = {}
    for split, count, mat, folder in (
            ("train", per[0], os.path.join(base, "devkit", "cars_train_annos.mat"), "cars_train"),
            ("test", per[1], os.path.join(base, "cars_test_annos_withlabels.mat"), "cars_test")):
        rows = [(1, 1, 20, 20, c + 1, f"{split}{c}{i:04d}.jpg")
                for c in range(len(classes)) for i in range(count)]
        arr = np.zeros((1, len(rows)), dtype=dt)
        for j, r in enumerate(rows):
            arr[0, j] = r
            colored(os.path.join(base, folder, r[5]), r[4] - 1, j + len(split))
        scipy.io.savemat(mat, {"annotations": arr})
        out[split] = [r[4] - 1 for r in rows]
    return out


def eurosat(root, classes=("AnnualCrop", "Forest", "River"), per=5):
    for c, name in enumerate(classes):
        for i in range(per):
            path = os.path.join(root, "eurosat", "2750", name, f"{name}_{i + 1}.jpg")
            colored(path, c, 9 * c + i)
    return {"all": [c for c in range(len(classes)) for _ in range(per)]}


def sun397(root, classes=("/a/abbey", "/b/bakery/shop", "/z/zoo"), per=5):
    base = os.path.join(root, "SUN397")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "ClassName.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    for c, name in enumerate(classes):
        for i in range(per):
            colored(os.path.join(base, name.strip("/"), f"sun_{c}{i:05d}abc.jpg"), c, 5 * c + i)
    return {"all": [c for c in range(len(classes)) for _ in range(per)]}


BUILDERS = {"flowers": flowers, "pets": pets, "food": food, "dtd": dtd, "aircraft": aircraft,
            "cars": cars, "eurosat": eurosat, "sun397": sun397}
