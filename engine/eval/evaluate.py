"""``synthclone eval``'s pipeline: a checkpoint against test sets, robustness and transfer.

Reads top to bottom like the results it writes (schema: README "Evaluation"):

1. parse and list every set first (bad names, missing folders, baseline CSV errors fail before
   any model work);
2. load the model (:mod:`engine.eval.checkpoint`) and its label space;
3. each test set: logits + features in one pass (cached; a .beton set through the loaders' eval
   pipeline, ``--backend``), top-1/top-5 over the shared classes, many/medium/few-shot
   accuracy, feature diagnostics;
4. ImageNet-C: the mean over its corruptions at one severity;
5. robustness: accuracy gap and effective robustness against the ID set;
6. transfer: frozen features, linear probe and k-NN per set, and their averages.
"""
from __future__ import annotations

import collections
import json
import os
import sys

import numpy as np

from engine.eval import metrics
from engine.eval.beton_input import BetonImages
from engine.eval.config import EvalConfig
from engine.eval.images import ImageDataset, TransformSpec, resolve_device
from engine.eval.inference import outputs_key, run_model
from engine.eval.sets import SetError, canonical_name, load_set, parse_specs

SCHEMA = "synthclone.eval/1"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def evaluate(target: str, cfg: EvalConfig) -> tuple[dict, dict]:
    """``(results, per_class)`` for checkpoint or run folder ``target``."""
    from engine.eval.checkpoint import check_input_size, load_model, run_data_info
    from engine.eval.robustness import read_baselines
    from engine.eval.transfer_sets import canonical_transfer_name

    # 1. everything the user named, checked before any model work
    if not cfg.sets and not cfg.transfer_sets:
        raise SetError("nothing to evaluate: pass --sets NAME=PATH,... and/or --transfer "
                       "NAME=ROOT,...")
    label_files = {canonical_name(n): p for n, p in parse_specs(cfg.set_labels, "--set-labels")}
    test_sets = []
    for name, path in parse_specs(cfg.sets):
        for s in load_set(name, path, label_file=label_files.pop(canonical_name(name), None),
                          severity=cfg.imagenet_c_severity):
            test_sets.append(s.subsample(cfg.max_images, cfg.seed))
    if label_files:
        raise SetError(f"--set-labels {', '.join(label_files)}: no such set in --sets")
    if any(s.beton for s in test_sets):  # the loader options of .beton sets, checked now
        BetonImages("", (), cfg.crop, cfg.resize, cfg.backend)
    transfer_specs = [(canonical_transfer_name(n), p)
                      for n, p in parse_specs(cfg.transfer_sets, "--transfer")]
    baselines = read_baselines(cfg.baselines) if cfg.baselines else None
    train_counts = read_train_counts(cfg.train_counts) if cfg.train_counts else None

    # 2. the model and its label space
    device = resolve_device(cfg.device)
    loaded = load_model(target, model=cfg.arch, source=cfg.arch_source,
                        unsafe=cfg.unsafe_load, device=device)
    space = metrics.label_space(loaded.num_classes, cfg.classes,
                                sets=sorted({s.name.split("/")[0] for s in test_sets})) \
        if test_sets else None
    if test_sets:
        check_input_size(loaded, cfg.crop)
    if transfer_specs:
        check_input_size(loaded, cfg.transfer.crop, "--transfer.crop")
    log(f"model: {loaded.source} {loaded.arch}, {loaded.num_classes} classes, "
        f"{loaded.path} (sha256 {loaded.sha256[:12]})")

    # 3. test sets
    sets_out, per_class = {}, {}
    for s in test_sets:
        data, how = _inputs(s.items, s.beton,
                            TransformSpec(cfg.resize, cfg.crop, cfg.interpolation, s.border), cfg)
        out = _forward(loaded, data, how, s.fingerprint, cfg, device, desc=s.name)
        summary, details = metrics.classify(s.name, out["logits"], s.groups, s.targets, space)
        entry = {**s.describe(), **summary}
        if isinstance(data, BetonImages):
            entry["pipeline"] = data.describe()
        if train_counts is not None and details["labels"] is not None:
            entry["shots"] = metrics.shot_accuracy(details["correct"], details["labels"],
                                                   train_counts)
        if details["labels"] is not None:
            per_class[s.name] = _per_class(details["correct"], details["labels"])
        if cfg.diagnostics:
            from engine.eval.feature_stats import feature_diagnostics

            keep = details["keep"]
            entry["diagnostics"] = feature_diagnostics(out["features"][keep], s.targets[keep])
        sets_out[s.name] = entry
        log(f"{s.name}: top-1 {entry['top1']:.2f}  top-5 {entry['top5']:.2f}  "
            f"({entry['num_evaluated']} images, {entry['classes_evaluated']} classes"
            + (", cached" if out["cached"] else "") + ")")

    # 4. ImageNet-C: one entry, the mean over corruptions
    corruptions = {k.split("/", 1)[1]: sets_out.pop(k) for k in list(sets_out)
                   if k.startswith("imagenet-c/")}
    if corruptions:
        sets_out["imagenet-c"] = {"severity": cfg.imagenet_c_severity,
                                  "corruptions": corruptions,
                                  **metrics.mean_over(corruptions),
                                  "note": f"mean over {len(corruptions)} corruptions at severity "
                                          f"{cfg.imagenet_c_severity}"}

    # 5. robustness against the ID set
    robust = _robustness(sets_out, baselines, cfg)

    # 6. transfer
    transfer = {}
    for name, root in transfer_specs:
        transfer[name] = _transfer(loaded, name, root, cfg, device)
    if transfer:
        transfer["average"] = _transfer_average(transfer)

    info = run_data_info(loaded.run_config)
    run = {"label": cfg.label or _default_label(target),
           "kind": cfg.kind if cfg.kind != "auto" else info["kind"],
           "synthetic_images": cfg.synthetic_images if cfg.synthetic_images is not None
           else info["synthetic_images"]}
    results = {"schema": SCHEMA, "command": "eval", "run": run,
               "checkpoint": loaded.describe(),
               "label_space": space.describe() if space else None,
               "transform": {"resize": cfg.resize, "crop": cfg.crop,
                             "interpolation": cfg.interpolation},
               "sets": sets_out, "robustness": robust, "transfer": transfer}
    if cfg.train_counts:
        results["train_counts"] = {"path": os.path.abspath(cfg.train_counts),
                                   "many_shot": "> 800", "medium_shot": "300-800",
                                   "few_shot": "< 300"}
    return results, per_class


def _inputs(items, beton, spec: TransformSpec, cfg: EvalConfig):
    """``(inputs, key of their pixels)``: image files through ``spec``'s torchvision
    transforms; .beton samples through the loaders' eval pipeline (``cfg.backend``), center
    crop ``spec.crop / spec.resize`` of the short side."""
    if beton is not None:
        data = BetonImages(beton, items, crop=spec.crop, resize=spec.resize, backend=cfg.backend)
        return data, data.key()
    return ImageDataset(items, spec.build()), spec.key()


def _forward(loaded, data, transform_key: str, fingerprint, cfg, device, desc):
    key = outputs_key(loaded.sha256, fingerprint, data.items, transform_key) \
        if cfg.feature_cache else None
    return run_model(loaded, data, batch_size=cfg.batch_size, workers=cfg.workers,
                     device=device, progress=cfg.progress, desc=desc, cache_key=key)


def _per_class(correct: np.ndarray, labels: np.ndarray) -> dict:
    from engine.catalog import imagenet_wnids

    wnids = imagenet_wnids()
    out = {}
    for label in np.unique(labels):
        hit = correct[labels == label]
        out[wnids[int(label)]] = {"top1": metrics.accuracy(hit), "num_images": int(len(hit))}
    return out


def _robustness(sets_out: dict, baselines, cfg: EvalConfig) -> dict:
    from engine.eval.robustness import robustness

    id_set = canonical_name(cfg.id_set)
    if id_set not in sets_out:
        note = f"no ID set {id_set!r} among --sets: accuracy gap and effective robustness skipped"
        return {"id_set": id_set, "note": note, "shifts": {}}
    shifted = {k: v["top1"] for k, v in sets_out.items() if k != id_set and "top1" in v}
    out = {"id_set": id_set, "shifts": robustness(sets_out[id_set]["top1"], shifted, baselines,
                                                  id_set)}
    if cfg.baselines:
        from engine.eval.images import file_fingerprint

        out["baselines"] = {"path": os.path.abspath(cfg.baselines),
                            "hash": file_fingerprint(cfg.baselines)}
    else:
        out["note"] = "no --baselines CSV: effective robustness not computed (accuracy gap only)"
    return out


def _transfer(loaded, name: str, root: str, cfg: EvalConfig, device: str) -> dict:
    from engine.eval.transfer import knn_accuracy, linear_probe
    from engine.eval.transfer_sets import load_transfer

    t = cfg.transfer
    data = load_transfer(name, root, val_fraction=t.val_fraction, test_fraction=t.test_fraction,
                         seed=cfg.seed, max_images=t.max_images)
    spec = TransformSpec(t.resize, t.crop, t.interpolation)
    feats = {}
    for split in ("train", "val", "test"):
        s = data.splits[split]
        out = _forward(loaded, *_inputs(s.items, None, spec, cfg), data.fingerprints[split],
                       cfg, device, desc=f"{name}/{split}")
        feats[split] = (out["features"], s.labels)
    entry = {**data.describe(), "transform": {"resize": t.resize, "crop": t.crop,
                                              "interpolation": t.interpolation}}
    if t.linear:
        entry["linear"] = linear_probe(feats["train"], feats["val"], feats["test"],
                                       trials=t.trials, c_min=t.c_min, c_max=t.c_max,
                                       max_iter=t.max_iter, search=t.search, seed=cfg.seed,
                                       progress=cfg.progress, desc=f"{name} C search")
    if t.knn:
        bank = (np.concatenate([feats["train"][0], feats["val"][0]]),
                np.concatenate([feats["train"][1], feats["val"][1]]))
        entry["knn"] = knn_accuracy(bank, feats["test"], k=t.k, temperature=t.temperature)
    log(f"transfer {name}: " + "  ".join(f"{p} {entry[p]['top1']:.2f}" for p in ("linear", "knn")
                                          if p in entry))
    return entry


def _transfer_average(transfer: dict) -> dict:
    out = {}
    for probe in ("linear", "knn"):
        values = [v[probe]["top1"] for v in transfer.values() if probe in v]
        if values:
            out[probe] = float(np.mean(values))
    out["sets"] = sorted(transfer)
    return out


def _default_label(target: str) -> str:
    target = os.path.normpath(target)
    if os.path.isdir(target):
        return os.path.basename(os.path.abspath(target))
    stem = os.path.splitext(os.path.basename(target))[0]
    parent = os.path.basename(os.path.dirname(os.path.abspath(target)))
    return f"{parent}/{stem}" if parent else stem


def read_train_counts(path: str) -> dict[int, int]:
    """ImageNet-1K label -> training images, from the training .beton (its labels), a JSON
    mapping (wnid or label -> count), or what ``engine.catalog.counts`` reads: a train folder
    (``<wnid>/*``), the devkit's meta.mat, or ``wnid count`` lines."""
    from engine.catalog.counts import read_counts
    from engine.eval.labels import label_of_wnid
    from engine.eval.sets import read_labelled_beton

    if not os.path.exists(path):
        raise SetError(f"--train-counts {path}: no such file or folder")
    if path.endswith(".beton"):
        labels = read_labelled_beton(path, "--train-counts", fields=("label",))
        return dict(collections.Counter(int(l) for l in labels))
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                pairs = list(json.load(f).items())
        except (ValueError, AttributeError):
            raise SetError(f"--train-counts {path}: expected a JSON mapping label -> count") \
                from None
    else:
        pairs = list(read_counts(path).counts.items())
    out = {}
    for key, count in pairs:
        key = str(key)
        label = int(key) if key.isdigit() else label_of_wnid(key, where=path)
        if isinstance(count, bool) or not isinstance(count, int):
            raise SetError(f"{path}: count of {key} is not an integer: {count!r}")
        out[label] = count
    return out
