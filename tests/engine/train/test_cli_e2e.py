"""``synthclone train`` end to end on .beton files made the way users make them: an ImageNet
folder packed with ``pack`` (real, held-out) and a generated-style file (synthetic), read by the
FFCV dual-domain loader — one process and two (torchrun, gloo)."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from engine import cli
from engine.train.metrics import read_jsonl
from engine.train.toydata import write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
TINY = os.path.join(ROOT, "engine", "configs", "train_tiny.yaml")
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # ImageNet-1K labels 0-3


def pack_folder(folder, out):
    from loaders.beton.pack import pack
    from loaders.beton.pack_config import PackConfig

    pack(PackConfig(source=str(folder), out=str(out), max_resolution=None))
    return str(out)


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_image_folder(str(root / "real"), WNIDS, per_class=16, seed=0, size=48)
    write_image_folder(str(root / "syn"), WNIDS, per_class=16, seed=1, size=48)
    write_image_folder(str(root / "heldout"), WNIDS, per_class=4, seed=2, size=48)
    return {k: pack_folder(root / k, root / f"{k}.beton") for k in ("real", "syn", "heldout")}


def args(betons, out, *extra):
    return ["train", TINY, f"data.real={betons['real']}", f"data.synthetic={betons['syn']}",
            f"data.eval={betons['heldout']}", "data.resolution=32", "data.eval_resolution=32",
            "data.batch_size=16", "data.workers=1", "schedule.epochs=2", "schedule.warmup_epochs=0.5",
            "run.threads=1",
            "run.checkpoint_every=2", "--no-progress", "--out", str(out), *extra]


@pytest.mark.timeout(900)
def test_train_cli_on_betons(betons, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(args(betons, out)) == 0
    printed = capsys.readouterr().out
    assert "trained resnet18 for 16 steps (2 epochs, 256 images)" in printed
    assert "held-out top-1" in printed
    with open(out / "metrics.json") as f:
        summary = json.load(f)
    assert summary["num_classes"] == 4 and summary["eval"]["images"] == 16
    with open(out / "data.json") as f:
        data = json.load(f)
    assert data["real"]["samples"] == 64 and len(data["synthetic"]["index_sha256"]) == 64
    recs = read_jsonl(str(out / "metrics.jsonl"))
    first = next(r for r in recs if r["kind"] == "train")
    assert first["rows"] == 16 * first["step"] and first["image_size"] == 32
    assert first["loss_real"] is not None and first["loss_syn"] is not None
    # the export loads into the plain torchvision model
    import torchvision

    plain = torchvision.models.resnet18(num_classes=4)
    plain.load_state_dict(torch.load(out / "model_real.pt", weights_only=True))
    # resuming a finished run with another config is refused, naming the key
    assert cli.main(args(betons, out, "optim.lr=0.3", "--resume")) == 2
    assert "optim.lr: 0.1 in the checkpoint, 0.3 now" in capsys.readouterr().err


@pytest.mark.timeout(900)
def test_low_data_subset_is_drawn_and_recorded(betons, tmp_path):
    out = tmp_path / "run"
    assert cli.main(args(betons, out, "data.low_data_per_class=8", "schedule.epochs=1")) == 0
    with open(out / "real_subset.json") as f:
        subset = json.load(f)
    assert subset["num_rows"] == 32 and len(subset["indices"]) == 32
    with open(out / "metrics.json") as f:
        assert json.load(f)["steps"] == 4  # 32 real rows, 8 per batch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(900)
def test_two_process_cli_run_shards_the_loader(betons, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "engine.cli",
           *args(betons, out, "model.sync_bn=true", "schedule.epochs=1")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=800)
    assert res.returncode == 0, res.stderr[-4000:]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    # each step: 2 ranks x 8 rows, 4 real each, so 64 real rows make 8 steps
    assert ckpt["world_size"] == 2 and ckpt["progress"]["step"] == 8
    assert ckpt["progress"]["images"] == 128
    assert len(ckpt["rng"]) == 2  # both ranks' RNG states for an exact resume
    with open(out / "metrics.json") as f:
        assert json.load(f)["eval"]["images"] == 16  # both ranks' shards of the held-out set


@pytest.mark.timeout(900)
def test_resume_through_the_ffcv_loader_equals_one_run(betons, tmp_path):
    """Stopped mid-epoch (after step 3) and resumed, the run ends with the same weights as
    one uninterrupted run: the loader restarts at the batch it had reached (without decoding
    the skipped ones) with the same rows and the same random crops and flips (the recipe's
    own: keyed by seed, epoch and row, loaders.augment)."""
    full, split = tmp_path / "full", tmp_path / "split"
    fixed = ("schedule.epochs=1",)
    assert cli.main(args(betons, full, *fixed)) == 0
    assert cli.main(args(betons, split, *fixed, "run.max_steps=3")) == 0
    assert torch.load(split / "checkpoint.pt", weights_only=True)["progress"]["batch"] == 3
    assert cli.main(args(betons, split, *fixed, "--resume")) == 0
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(split / "checkpoint.pt", weights_only=True)
    assert a["progress"] == b["progress"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
