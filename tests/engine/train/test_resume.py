"""A SIGKILLed run resumed with --resume ends with the same weights as an uninterrupted one
(CPU, fp32, bitwise), through mid-epoch checkpoints, an epoch end, EMA, RandAugment, mixup,
dropout and gradient accumulation: on tensors in memory, and on .beton files through the FFCV
dual-domain loader with its default random-resized crop and flip (keyed by seed, epoch and
row: loaders.augment)."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))


WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # ImageNet-1K labels 0-3


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    """A packed real set (32 images) and a synthetic one (48), as users make them."""
    from engine.train.toydata import write_image_folder
    from loaders.beton.pack import pack
    from loaders.beton.pack_config import PackConfig

    root = tmp_path_factory.mktemp("data")
    out = []
    for name, per_class, seed in (("real", 8, 0), ("syn", 12, 1)):
        write_image_folder(str(root / name), WNIDS, per_class=per_class, seed=seed, size=40)
        pack(PackConfig(source=str(root / name), out=str(root / f"{name}.beton"),
                        max_resolution=None))
        out.append(str(root / f"{name}.beton"))
    return out


def child(out, *flags, stdin=None):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.engine.train.train_child", str(out),
                             *flags], cwd=ROOT, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def train_records(path):
    keep = ("step", "epoch", "lr", "loss_real", "loss_syn", "acc_real", "acc_syn", "objective")
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    return [{k: r.get(k) for k in keep} for r in recs if r["kind"] in ("train", "epoch")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, betons):
    runs = {}

    def get(data):
        if data not in runs:
            out = tmp_path_factory.mktemp(f"full-{data}") / "run"
            finish(child(out, *data_flags(data, betons)))
            runs[data] = out
        return runs[data]
    return get


def data_flags(data, betons):
    return ("--betons", *betons) if data == "betons" else ()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("data", ["tensors", "betons"])
@pytest.mark.parametrize("kill_after", [7, 9])
def test_sigkill_and_resume_equals_uninterrupted(tmp_path, uninterrupted, betons, data,
                                                 kill_after):
    # 8 optimizer steps per epoch, checkpoints every 2 steps and at epoch ends: killed after
    # step 7 it resumes from step 6 (mid-epoch); after step 9, from step 8 (the epoch end)
    flags = data_flags(data, betons)
    out = tmp_path / "run"
    proc = child(out, "--lockstep", *flags, stdin=subprocess.PIPE)
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:]
        if line.strip() == f"step {kill_after}":
            break
        proc.stdin.write("\n")
        proc.stdin.flush()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close(), proc.stderr.close(), proc.stdin.close()
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["step"] == kill_after - 1
    finish(child(out, "--resume", *flags))

    uninterrupted = uninterrupted(data)
    a = torch.load(uninterrupted / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "checkpoint.pt", weights_only=True)
    assert a["progress"] == b["progress"] and a["progress"]["step"] == 16
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    fa = torch.load(uninterrupted / "model_real.pt", weights_only=True)
    fb = torch.load(out / "model_real.pt", weights_only=True)
    assert all(torch.equal(fa[k], fb[k]) for k in fa)
    # the metrics of the resumed run read as if it had never stopped
    assert train_records(uninterrupted / "metrics.jsonl") == train_records(out / "metrics.jsonl")


@pytest.mark.timeout(900)
def test_resume_needs_a_checkpoint(tmp_path):
    proc = child(tmp_path / "empty", "--resume")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "no checkpoint to resume" in err
