"""Tiny fakes of every dataset layout and file format the evaluation reads, saved exactly as the
real releases lay them out (so the real loading code runs on them)."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from engine.catalog import imagenet_wnids

R_WNIDS_SAMPLE = ("n01443537", "n01484850", "n01494475")  # goldfish, white shark, hammerhead


def image(path: str, seed: int, size=(40, 32)) -> str:
    """A small textured RGB image (format from the extension)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 3 + seed * 11) % 256, (y * 5 + seed * 7) % 256,
                     ((x + y) * 2 + seed * 13) % 256], -1)
    arr = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def wnid_folders(root: str, wnids, per_class: int = 2, ext: str = ".JPEG", seed: int = 0):
    """``root/<wnid>/<wnid>_<i><ext>``; returns [(path, label)] in listing order."""
    out = []
    lab = {w: i for i, w in enumerate(imagenet_wnids())}
    for c, w in enumerate(sorted(wnids)):
        for i in range(per_class):
            p = image(os.path.join(root, w, f"{w}_{i}{ext}"), seed + 100 * c + i)
            out.append((p, lab[w]))
    return out


def v2_folders(root: str, labels, per_class: int = 2):
    """ImageNetV2: ``root/<label>/<hash>.jpeg``."""
    out = []
    for c, label in enumerate(labels):
        for i in range(per_class):
            out.append((image(os.path.join(root, str(label), f"{c:02d}{i:03d}abcdef.jpeg"),
                              7 * c + i), label))
    return sorted(out, key=lambda t: (str(t[1]), t[0]))


# ----------------------------------------------------------------------------- ImageNet val

def devkit_order(seed: int = 3) -> list[str]:
    """A fake ILSVRC2012_ID order: ID i+1 is wnid order[i] (the real order is not timm's)."""
    return list(np.random.default_rng(seed).permutation(imagenet_wnids()))


def write_devkit(root: str, order, gt_ids) -> str:
    """``root/data/meta.mat`` (1000 leaves in ``order`` + 2 non-leaf synsets) and the ground
    truth file of ILSVRC2012_IDs; returns the devkit folder."""
    import scipy.io

    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"),
          ("num_children", "O"), ("children", "O"), ("wordnet_height", "O"),
          ("num_train_images", "O")]
    rows = [(i + 1, w, "words", "gloss", 0, np.zeros(0), 0, 1300) for i, w in enumerate(order)]
    rows += [(1001, "n00001740", "entity", "gloss", 3, np.array([1, 2, 3]), 18, 0),
             (1002, "n00002137", "abstraction", "gloss", 2, np.array([4, 5]), 17, 0)]
    arr = np.zeros((len(rows), 1), dtype=dt)
    for i, r in enumerate(rows):
        arr[i, 0] = r
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    scipy.io.savemat(os.path.join(data, "meta.mat"), {"synsets": arr})
    with open(os.path.join(data, "ILSVRC2012_validation_ground_truth.txt"), "w") as f:
        f.writelines(f"{i}\n" for i in gt_ids)
    return root


def flat_val(root: str, n: int) -> list[str]:
    return [image(os.path.join(root, f"ILSVRC2012_val_{i:08d}.JPEG"), i) for i in range(1, n + 1)]


# ----------------------------------------------------------------------------- ObjectNet

def objectnet(root: str, mapping: dict, unmapped=("bucket",), per_class: int = 2) -> str:
    """``root/objectnet-1.0/{images,mappings}``. ``mapping``: {folder: (ObjectNet label,
    [ImageNet-1K labels])}; ImageNet names are 'class <label>' in a permuted 2012-id order."""
    base = os.path.join(root, "objectnet-1.0")
    folders = sorted(list(mapping) + list(unmapped))
    for c, folder in enumerate(folders):
        for i in range(per_class):
            image(os.path.join(base, "images", folder, f"{c:03d}{i}.png"), 31 * c + i)
    m = os.path.join(base, "mappings")
    os.makedirs(m, exist_ok=True)
    labels = {f: mapping[f][0] if f in mapping else f.replace("_", " ").title() for f in folders}
    with open(os.path.join(m, "folder_to_objectnet_label.json"), "w") as f:
        json.dump(labels, f)
    with open(os.path.join(m, "objectnet_to_imagenet_1k.json"), "w") as f:
        json.dump({on: "; ".join(f"class {l}" for l in ins) for on, ins in mapping.values()}, f)
    line_of = np.random.default_rng(5).permutation(1000)  # pytorch label -> line
    lines = [""] * 1000
    for label, line in enumerate(line_of):
        lines[line] = f"class {label}"
    with open(os.path.join(m, "imagenet_to_label_2012_v2"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(m, "pytorch_to_imagenet_2012_id.json"), "w") as f:
        json.dump({str(label): int(line) for label, line in enumerate(line_of)}, f)
    return root


# ----------------------------------------------------------------------------- .beton

def beton(path: str, labels, size=(40, 32), seed: int = 0, images=None) -> str:
    from ffcv.fields import IntField, RGBImageField

    from loaders.beton import BetonWriter

    fields = {"image": RGBImageField(write_mode="jpg", jpeg_quality=95), "label": IntField()}
    with BetonWriter(path, num_samples=len(labels), fields=fields, num_workers=1) as w:
        for i, label in enumerate(labels):
            if images is not None:
                arr = images[i]
            else:
                tmp = image(os.path.join(os.path.dirname(path), ".tmp", f"{i}.png"), seed + i,
                            size)
                arr = np.asarray(Image.open(tmp).convert("RGB"))
            w.append(i, {"image": arr, "label": int(label)})
    return path


# ----------------------------------------------------------------------------- models

def tiny_checkpoint(path: str, name: str = "test_resnet", num_classes: int = 1000,
                    seed: int = 0, wrap: str | None = None) -> str:
    """A timm/torchvision model with seeded random weights saved as a plain state dict (or
    under ``wrap``)."""
    import torch

    from engine.eval.checkpoint import build_model

    torch.manual_seed(seed)
    model, _ = build_model(name, num_classes)
    sd = model.state_dict()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def run_folder(root: str, name: str = "test_resnet", num_classes: int = 1000, data=None) -> str:
    """A trainer-like run folder: config.yaml naming the model + model_real.pt."""
    import yaml

    os.makedirs(root, exist_ok=True)
    tiny_checkpoint(os.path.join(root, "model_real.pt"), name, num_classes)
    cfg = {"train": {"model": {"name": name, "source": "auto"}, "data": data or {}}}
    with open(os.path.join(root, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    return root


def inception_weights(path: str, seed: int = 0) -> str:
    """torch-fidelity's Inception-v3 with seeded random weights, saved as the state dict file a
    user brings (the format of weights-inception-2015-12-05-6726825d.pth)."""
    import torch
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    original = cls.load_state_dict
    cls.load_state_dict = lambda self, sd, strict=True: None   # skip the download + load
    saved_url = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: {}
    try:
        torch.manual_seed(seed)
        net = cls("inception-v3-compat", ["2048"])
    finally:
        cls.load_state_dict = original
        fe.load_state_dict_from_url = saved_url
    torch.save(net.state_dict(), path)
    return path
