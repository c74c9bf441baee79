"""``synthclone inspect plan.jsonl`` (issue #15): counts per class and recipe, settings, example
prompts, and the estimated time at this machine's measured rate, saying where the rate came from
(engine/rates.py: the generate log, a run folder, a measurement now, or unknown)."""
import json
import os

import pytest
import yaml

from engine import rates
from engine.cli import main
from engine.plan import PlanRow, plan_from_rows, row_seed, write_plan

CLASSES = [(0, "n01440764", "tench"), (1, "n01443537", "goldfish"), (7, None, "solar panel")]


def make_rows(per_class=(3, 2, 1), steps=20, size=128, sampler="ddim"):
    rows = []
    for (label, wnid, name), k in zip(CLASSES, per_class):
        for j in range(k):
            sid = len(rows)
            rows.append(PlanRow(sample_id=sid, label=label, wnid=wnid,
                                recipe="c" if j % 2 == 0 else "c_hc",
                                prompt=f"{name} #{j}", seed=row_seed(0, sid), guidance=7.5,
                                steps=steps, height=size, width=size, sampler=sampler))
    return rows


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(d))
    return d


@pytest.fixture()
def plan_file(tmp_path):
    plan = plan_from_rows(make_rows(), config={"seed": 5, "classes": "tench,goldfish,x.txt"})
    path = str(tmp_path / "plan.jsonl")
    write_plan(plan, path)
    return path, plan


def inspect_json(capsys, *argv):
    capsys.readouterr()
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_text_summary_counts_settings_examples_and_unknown_time(plan_file, cache, capsys):
    path, plan = plan_file
    assert main(["inspect", path, "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: plan: 6 rows, 3 classes, hash {plan.hash[:16]}")
    assert "  c                      4\n  c_hc                   2\n" in out  # rows per recipe
    assert "n01440764 tench: 3, n01443537 goldfish: 2, label 7: 1" in out
    assert "sampler ddim; steps 20; guidance 7.5; size 128x128" in out and "master seed 5" in out
    assert "examples for c:\n  [n01440764] tench #0\n" in out
    assert "estimated time: unknown (no generate run is recorded on this machine)" in out
    assert "--dry-run" in out and "--measure" in out


def test_json_summary_matches_the_rows(plan_file, cache, capsys):
    path, plan = plan_file
    d = inspect_json(capsys, path)
    assert d["kind"] == "plan" and d["rows"] == 6 and d["hash"] == plan.hash
    assert d["recipes"] == {"c": 4, "c_hc": 2}
    assert [(c["label"], c["wnid"], c["name"], c["rows"]) for c in d["classes"]] == [
        (0, "n01440764", "tench", 3), (1, "n01443537", "goldfish", 2), (7, None, None, 1)]
    assert d["settings"]["steps"] == {"20": 6} and d["settings"]["size"] == {"128x128": 6}
    assert d["estimate"]["seconds"] is None


def test_mixed_settings_are_listed_with_their_row_counts(tmp_path, cache, capsys):
    rows = make_rows(per_class=(2, 0, 0)) + [
        PlanRow(sample_id=2, label=1, wnid="n01443537", recipe="c", prompt="goldfish",
                seed=row_seed(0, 2), guidance=2.0, steps=50, height=64, width=96,
                sampler="pndm")]
    path = str(tmp_path / "mixed.jsonl")
    write_plan(plan_from_rows(rows), path)
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "steps 20 (2 rows), 50 (1 rows)" in out
    assert "size 128x128 (2 rows), 64x96 (1 rows)" in out


def entry(ips, steps, size, model="tiny", host=None):
    return {"host": host or rates.host(), "time": "2026-01-01T00:00:00", "model": model,
            "device": "cpu", "dtype": "float32", "compile": False, "images": 10,
            "seconds": 10 / ips, "images_per_s": ips, "steps": steps, "pixels": size * size,
            "run": "/x/clone.run"}


def write_log(cache, *entries):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, rates.RATES_FILE), "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
        f.write('{"cut by a crash\n')                       # skipped, not an error


def test_estimate_scales_this_hosts_latest_rate_by_steps_and_pixels(plan_file, cache, capsys):
    path, _ = plan_file
    # measured: 2 images/s at 64x64, 10 steps; the plan: 128x128, 20 steps -> 8x the cost
    write_log(cache, entry(99.0, 10, 64, model="other"), entry(2.0, 10, 64),
              entry(1000.0, 10, 64, host="another-machine"))
    e = inspect_json(capsys, path)["estimate"]
    assert e["seconds"] == pytest.approx(6 * 8 / 2.0)
    assert e["scaled"] is True and "last generate run on this machine" in e["source"]
    e = inspect_json(capsys, path, "--model", "other")["estimate"]
    assert e["seconds"] == pytest.approx(6 * 8 / 99.0)
    e = inspect_json(capsys, path, "--model", "sd15")["estimate"]
    assert e["seconds"] is None and "with model sd15" in e["unknown"]
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "estimated time: about 24 s for 6 images at this machine's measured rate" in out
    assert "scaled to this plan's steps x pixels per row (rough)" in out


def test_estimate_from_an_earlier_run_folder(plan_file, tmp_path, cache, capsys):
    path, plan = plan_file
    run = tmp_path / "clone.run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"written": 30, "elapsed_s": 10.0}))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "generate": {"model": "tiny"}, "applied": {"device": "cpu", "dtype": "bfloat16"},
        "plan_header": {"config": {"steps": 20, "height": 128, "width": 128}}}))
    e = inspect_json(capsys, path, "--rate-from", str(run))["estimate"]
    assert e["seconds"] == pytest.approx(6 / 3.0) and e["scaled"] is False
    assert str(run) in e["source"]
    (run / "summary.json").write_text(json.dumps({"written": 0, "elapsed_s": 1.0}))
    assert main(["inspect", path, "--rate-from", str(run)]) == 2
    assert "wrote no images" in capsys.readouterr().err
    assert main(["inspect", path, "--rate-from", str(tmp_path / "nothing")]) == 2


def test_record_run_writes_a_usable_entry_and_never_fails(tmp_path, cache):
    rows = make_rows(steps=10, size=64)
    e = rates.record_run(rows, 12, 3.0, model="tiny", applied={"device": "cpu"},
                         run_dir=str(tmp_path / "a.run"))
    assert e["images_per_s"] == 4.0 and e["steps"] == 10 and e["pixels"] == 64 * 64
    r = rates.latest_rate()
    assert r.images_per_s == 4.0 and r.model == "tiny"
    assert rates.estimate_seconds(rows, r) == pytest.approx(len(rows) / 4.0)
    assert rates.record_run(rows, 0, 3.0, model="tiny", applied={}) is None  # nothing measured
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    assert rates.record_run(rows, 1, 1.0, model="tiny", applied={},
                            path=str(blocked / "rates.jsonl")) is None


def test_plan_only_and_bad_flags_are_one_line_errors(plan_file, tmp_path, capsys):
    path, _ = plan_file
    for argv, msg in ((["--grid", str(tmp_path / "s.png")], "is a plan"),
                      (["--measure"], "--measure needs --model"),
                      (["--measure", "--model", "tiny", "--rate-from", "x"], "either")):
        assert main(["inspect", path, *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "s.png")
    bad = tmp_path / "edited.jsonl"
    lines = open(path).read().splitlines()
    bad.write_text("\n".join(lines[:-1] + [lines[-1].replace("#0", "#9")]) + "\n")
    assert main(["inspect", str(bad)]) == 2
    assert "content hash mismatch" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_measure_generates_the_first_rows_now_and_records_the_rate(tmp_path, cache, capsys):
    rows = make_rows(per_class=(2, 1, 1), steps=2, size=64)
    path = str(tmp_path / "plan.jsonl")
    write_plan(plan_from_rows(rows), path)
    d = inspect_json(capsys, path, "--measure", "--model", "tiny", "--measure-rows", "2")
    e = d["estimate"]
    assert "a measurement just now: the plan's first 2 rows" in e["source"]
    assert e["scaled"] is False and e["rate"]["model"] == "tiny"
    assert e["seconds"] == pytest.approx(4 / e["rate"]["images_per_s"])
    logged = [json.loads(line) for line in open(cache / rates.RATES_FILE)]
    assert [(x["model"], x["images"]) for x in logged] == [("tiny", 2)]  # generate logged it
    assert not os.path.exists(logged[0]["run"])                        # temporary run removed
    assert inspect_json(capsys, path)["estimate"]["seconds"] is not None  # now known
