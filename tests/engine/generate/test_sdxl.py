"""SDXL through ``synthclone generate`` (seed 003 §4, App. E): a tiny SDXL-shaped model saved in
the diffusers layout, run by the CLI in separate processes (identical .beton bytes with
``--dtype fp32``), read by FFCV, killed mid-run and resumed, sharded and merged, and the
seed-003 config resolving its hub id from the hub cache."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from engine.generate.config import GenerateConfig
from engine.generate.runner import generate
from engine.plan import write_plan
from tests.engine.generate.helpers import make_plan, read_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SDXL_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"


def _env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                HF_HUB_OFFLINE="1", **extra)


def _args(plan_path, out, model, *extra):
    return [plan_path, "--out", out, "--model", model, "--dtype", "fp32", "--batch-size", "2",
            "--no-progress", "--no-durable", "--workers", "1", *extra]


def _cli(plan_path, out, model, *extra, **env):
    return subprocess.run([sys.executable, "-m", "engine.cli", "generate",
                           *_args(plan_path, out, model, *extra)], cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    """(saved tiny SDXL folder, plan file, plan)."""
    from engine.generate.models import load_model

    root = tmp_path_factory.mktemp("xl")
    load_model("tiny-sdxl").save_pretrained(root / "tiny-sdxl")
    plan = make_plan(per_class=2, steps=2, size=32)               # 6 rows, 3 classes
    write_plan(plan, str(root / "plan.jsonl"))
    return str(root / "tiny-sdxl"), str(root / "plan.jsonl"), plan


@pytest.fixture(scope="module")
def reference(xl, tmp_path_factory):
    """One uninterrupted run of the whole plan in its own process."""
    folder, plan_path, _ = xl
    out = str(tmp_path_factory.mktemp("ref") / "clone.beton")
    res = _cli(plan_path, out, folder, PYTHONHASHSEED="0")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.timeout(900)
def test_two_processes_write_identical_bytes_that_ffcv_reads(xl, reference, tmp_path):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    folder, plan_path, plan = xl
    out = str(tmp_path / "again.beton")
    res = _cli(plan_path, out, folder, PYTHONHASHSEED="2")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = read_all(reference), read_all(out)
    assert sorted(a) == list(range(6))
    assert all(a[k][2] == b[k][2] for k in a)                     # the same JPEG bytes
    assert len({v[2] for v in a.values()}) == 6
    loader = Loader(out, batch_size=6, num_workers=1, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()],
                               "sample_id": [IntDecoder()], "recipe": [IntDecoder()],
                               "prompt": None})
    images, labels, sids, _ = next(iter(loader))
    assert images.shape == (6, 32, 32, 3)
    by_id = {r.sample_id: r.label for r in plan.rows}
    assert [by_id[s] for s in sids.ravel().tolist()] == labels.ravel().tolist()
    summary = json.load(open(tmp_path / "again.run" / "summary.json"))
    # 6 distinct prompts, each through both encoders once; no "" encoded for the negatives
    # (zero embeddings: force_zeros_for_empty_prompt)
    assert summary["embedding_cache"] == {"entries": 6, "hits": 0, "misses": 6}
    state = json.load(open(tmp_path / "again.run" / "state.json"))
    assert state["settings"]["model"]["kind"] == "dir" and state["settings"]["dtype"] == "float32"


@pytest.mark.timeout(900)
def test_killed_mid_run_resumes_to_the_same_bytes(xl, reference, tmp_path):
    folder, plan_path, _ = xl
    out = str(tmp_path / "clone.beton")
    res = subprocess.run([sys.executable, "-m", "tests.engine.generate.fault_child",
                          "kill-after-commits:1", str(tmp_path / "report.json"),
                          *_args(plan_path, out, folder)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert not os.path.exists(out) and os.path.exists(out + ".partial")
    res = _cli(plan_path, out, folder)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(2 resumed)" in res.stdout, res.stdout
    a, b = read_all(reference), read_all(out)
    assert sorted(b) == list(range(6)) and all(a[k][2] == b[k][2] for k in a)


def test_two_shards_merge_to_the_whole_plan(xl, reference, tmp_path):
    from loaders.beton import merge_betons

    folder, _, plan = xl
    cfg = GenerateConfig(model=folder, dtype="fp32", batch_size=2, progress=False,
                         durable=False, writer_workers=1)
    out = str(tmp_path / "clone.beton")
    parts = [generate(plan, out, cfg, shard=(i, 2))["out"] for i in range(2)]
    assert not set(read_all(parts[0])) & set(read_all(parts[1]))
    merged = str(tmp_path / "merged.beton")
    merge_betons(parts, merged, renumber_field=None)
    a, b = read_all(reference), read_all(merged)
    assert sorted(a) == sorted(b) == list(range(6))
    for k in a:
        assert a[k][0] == b[k][0]
        # shards batch rows differently: float batch-composition noise may move a pixel by a
        # level before JPEG
        diff = np.abs(a[k][1].astype(int) - b[k][1].astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 8, (k, diff.mean(), diff.max())


@pytest.mark.timeout(900)
def test_the_seed003_config_runs_sdxl_from_the_hub_cache(xl, reference, tmp_path):
    """engine/configs/seed003_*.yaml name SDXL base 1.0 by hub id: with the model in the hub
    cache (here the tiny SDXL under that id) generate loads it as an SDXL pipeline, offline."""
    folder, plan_path, _ = xl
    commit = "0" * 40
    repo = tmp_path / "hub" / ("models--" + SDXL_HUB_ID.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    config = os.path.join(ROOT, "engine", "configs", "seed003_diversify_imagenet1k_6x.yaml")
    out = str(tmp_path / "clone.beton")
    res = subprocess.run([sys.executable, "-m", "engine.cli", "generate", plan_path, "--out", out,
                          "--config", config, "--dtype", "fp32", "--batch-size", "2",
                          "--no-progress", "--no-durable"], cwd=ROOT,
                         env=_env(HF_HUB_CACHE=str(tmp_path / "hub")), capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    state = json.load(open(tmp_path / "clone.run" / "state.json"))
    assert state["settings"]["model"]["spec"] == SDXL_HUB_ID
    assert state["settings"]["model"]["kind"] == "hub" and state["settings"]["model"]["hash"]
    a, b = read_all(reference), read_all(out)
    assert sorted(b) == list(range(6))
    for k in a:                  # the same model and rows; the config's JPEG quality may differ
        assert np.abs(a[k][1].astype(int) - b[k][1].astype(int)).mean() < 2.0
