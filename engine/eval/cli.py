"""``synthclone eval`` / ``eval-data`` / ``report``: argument parsing and output folders only;
the work is in :mod:`engine.eval.evaluate`, :mod:`engine.eval.evaluate_data` and
:mod:`engine.eval.report`.
"""
from __future__ import annotations

import os

from engine.config import (ArgumentParser, add_config_args, add_config_file_args, add_out_arg,
                           add_overwrite_arg, config_from_args)
from engine.eval.config import EvalConfig, EvalDataConfig


def check_out(path: str, overwrite: bool) -> None:
    """Refuse an output folder that exists and holds something (without ``--overwrite``) before
    any work; the folder is made (or emptied) only once the results exist, so a failed run
    leaves nothing behind and replaces nothing."""
    from engine.runs import RunDirError

    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError(f"{path} exists and is not a folder; choose another --out")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise RunDirError(f"{path} already holds results; pass --overwrite to replace them")


# ----------------------------------------------------------------------------- eval

def eval_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone eval",
        description="Evaluate a checkpoint (or training run folder) on local test sets, "
                    "robustness and transfer; writes results.json.",
        epilog="example: synthclone eval runs/r50 --sets imagenet-val=/data/val,imagenet-r="
               "/data/imagenet-r --transfer flowers=/data/flowers --baselines baselines.csv "
               "--diagnostics")
    p.add_argument("target", help="checkpoint file (.pt state dict) or run folder")
    add_out_arg(p, "folder for results.json, per_class.json and config.yaml (default: "
                   "RUN/eval, or CHECKPOINT.eval beside a checkpoint file)", required=False)
    add_config_file_args(p, "eval", example="transfer.trials=50")
    add_overwrite_arg(p, "an existing output folder (without it: refuse)")
    add_config_args(p, EvalConfig, flags={"transfer_sets": ("--transfer",)})
    return p


def eval_main(argv=None) -> int:
    args = eval_parser().parse_args(argv)
    from engine.config import to_dict
    from engine.eval.evaluate import evaluate, log
    from engine.runs import RunDir

    cfg = config_from_args(EvalConfig, args, section="eval")
    out = args.out or default_eval_out(args.target)
    check_out(out, args.overwrite)
    results, per_class = evaluate(args.target, cfg)
    run = RunDir.create(out, overwrite=args.overwrite)
    run.write_json("per_class.json", per_class)
    run.write_config({"eval": to_dict(cfg), "target": os.path.abspath(args.target)})
    run.write_json("results.json", results)
    log(f"wrote {run.file('results.json')}")
    return 0


def default_eval_out(target: str) -> str:
    """``RUN/eval`` for a run folder, ``CHECKPOINT.eval`` beside a checkpoint file."""
    target = os.path.normpath(target)
    if os.path.isdir(target):
        return os.path.join(target, "eval")
    return os.path.splitext(target)[0] + ".eval"


# ----------------------------------------------------------------------------- eval-data

def eval_data_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone eval-data",
        description="Diagnostics of a dataset (.beton): CLIP diversity and score, Inception "
                    "Score, per-class FID against a reference, the generated-image detector.",
        epilog="example: synthclone eval-data clone.beton --reference real.beton "
               "--clip-pretrained clip.pt --inception weights-inception-2015-12-05-6726825d.pth "
               "--detector.weights resnet50.pt")
    p.add_argument("file", help="the .beton to diagnose")
    add_out_arg(p, "folder for results.json and the CLIP-score histogram (default: "
                   "FILE.eval-data beside the .beton)", required=False)
    add_config_file_args(p, "eval_data", example="images_per_class=50")
    add_overwrite_arg(p, "an existing output folder (without it: refuse)")
    add_config_args(p, EvalDataConfig)
    return p


def eval_data_main(argv=None) -> int:
    args = eval_data_parser().parse_args(argv)
    from engine.config import to_dict
    from engine.eval.evaluate import log
    from engine.eval.evaluate_data import evaluate_data
    from engine.eval.plots import histogram
    from engine.runs import RunDir

    cfg = config_from_args(EvalDataConfig, args, section="eval_data")
    out = args.out or os.path.splitext(os.path.normpath(args.file))[0] + ".eval-data"
    check_out(out, args.overwrite)
    results, extras = evaluate_data(args.file, cfg)
    run = RunDir.create(out, overwrite=args.overwrite)
    if extras.get("clip_scores") is not None:
        results["figures"] = {"clip_scores": histogram(
            extras["clip_scores"], cfg.score_threshold, run.file("clip_scores.png"),
            f"CLIP scores of {os.path.basename(args.file)}")}
    run.write_config({"eval_data": to_dict(cfg), "file": os.path.abspath(args.file)})
    run.write_json("results.json", results)
    for line in results["skipped"]:
        log(f"skipped {line}")
    log(f"wrote {run.file('results.json')}")
    return 0


# ----------------------------------------------------------------------------- report

def report_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="synthclone report",
        description="Plots and an HTML page comparing evaluations (results.json files, eval "
                    "output folders or run folders).",
        epilog="example: synthclone report runs/real/eval runs/syn/eval runs/mix/eval -o report")
    p.add_argument("inputs", nargs="+", help="results.json, eval output folder or run folder")
    add_out_arg(p, "folder for the figures, report.json and index.html", default="report")
    add_overwrite_arg(p, "an existing output folder (without it: refuse)")
    return p


def report_main(argv=None) -> int:
    args = report_parser().parse_args(argv)
    from engine.eval.evaluate import log
    from engine.eval.report import load_results, make_report
    from engine.runs import RunDir

    check_out(args.out, args.overwrite)
    load_results(args.inputs)  # bad inputs fail before the folder is touched
    run = RunDir.create(args.out, overwrite=args.overwrite)
    summary = make_report(args.inputs, run.path)
    run.write_config({"report": {"inputs": [os.path.abspath(p) for p in args.inputs]}})
    for name, path in summary["figures"].items():
        log(f"{name}: {path}")
    for name, why in summary["skipped"].items():
        log(f"{name}: not drawn ({why})")
    log(f"wrote {run.file('index.html')}")
    return 0
