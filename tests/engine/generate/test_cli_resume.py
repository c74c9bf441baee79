"""The CLI: a SIGKILL in the middle of generation, then the same command resumes; bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.generate.setup_model import cpu_has_bf16
from engine.plan import write_plan
from tests.engine.generate.helpers import make_plan, read_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _cmd(plan_path, out, *extra):
    return [sys.executable, "-m", "engine.cli", "generate", plan_path, "--out", out,
            "--model", "tiny", "--batch-size", "2", "--no-progress", "--no-durable",
            "--writer-workers", "1", *extra]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _committed(out):
    from loaders.beton import format as fmt
    from loaders.beton.journal import read_journal

    try:
        header, _, _ = read_journal(out + ".journal")
        mdtype = fmt.metadata_type([fmt.field_from_spec(s) for _, s in header["fields"]])
        _, commits, _ = read_journal(out + ".journal", mdtype)
    except (OSError, ValueError):
        return 0
    return sum(len(c[1]) for c in commits)


def test_kill_in_the_middle_then_resume(tmp_path):
    plan = make_plan(per_class=10, steps=20, size=64)               # 30 rows, 15 batches
    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(plan, plan_path)
    proc = subprocess.Popen(_cmd(plan_path, out), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and _committed(out) < 4:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _committed(out)
    assert 4 <= done < 30 and not os.path.exists(out)

    # a resume with settings that change the pixels is refused, naming every difference
    res = subprocess.run(_cmd(plan_path, out, "--dtype", "fp32", "--jpeg-quality", "30"),
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "jpeg_quality 90 -> 30" in errors[0] and "--overwrite" in errors[0]
    if cpu_has_bf16():                                # --dtype auto was bf16 on this CPU
        assert "dtype bfloat16 -> float32" in errors[0]
    assert _committed(out) == done                    # nothing was touched

    res = subprocess.run(_cmd(plan_path, out), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"({done} resumed)" in res.stdout
    stored = read_all(out)
    assert sorted(stored) == list(range(30))
    assert all(stored[r.sample_id][0] == r.label for r in plan.rows)

    # resuming with another plan is refused before any work
    other = make_plan(per_class=10, steps=8, size=64, seed=3)
    other_path = str(tmp_path / "other.jsonl")
    write_plan(other, other_path)
    res = subprocess.run(_cmd(other_path, out), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "not made from this plan" in res.stderr


@pytest.mark.parametrize("model,needle", [
    ("/nonexistent/model", "does not exist"),
    ("no-such-org/no-such-model", "no model hub access"),
])
def test_bad_model_is_a_clear_error_before_any_output(tmp_path, model, needle):
    from engine.cli import main

    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(make_plan(per_class=1), plan_path)
    assert main(["generate", plan_path, "--out", out, "--model", model, "--no-progress"]) == 2
    assert sorted(os.listdir(tmp_path)) == ["plan.jsonl"]


def test_cli_error_messages(tmp_path, capsys):
    from engine.cli import main

    plan_path = str(tmp_path / "plan.jsonl")
    write_plan(make_plan(per_class=1), plan_path)
    assert main(["generate", plan_path, "--out", str(tmp_path / "x.beton"), "--model", "tiny",
                 "--shard", "3/2"]) == 2
    assert "0 <= i < n" in capsys.readouterr().err
    assert main(["generate", plan_path, "--out", str(tmp_path / "x.beton"), "--model", "tiny",
                 "--dtype", "fp16", "--device", "cpu"]) == 2
    assert "needs CUDA" in capsys.readouterr().err


def _fault(tmp_path, mode, plan_path, out, *extra):
    report = str(tmp_path / f"report-{mode.replace(':', '')}.json")
    cmd = [sys.executable, "-m", "tests.engine.generate.fault_child", mode, report,
           plan_path, "--out", out, "--model", "tiny", "--batch-size", "2", "--no-progress",
           "--no-durable", "--workers", "1", *extra]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    with open(report, encoding="utf-8") as f:
        text = f.read()
    return res, (json.loads(text) if text else None)


def test_kill_right_after_the_rename_is_recognised_as_finished(tmp_path):
    """Issue #9 item 9: killed between the .beton's rename and its summary."""
    plan = make_plan(per_class=2, steps=2, size=32)                # 6 rows
    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(plan, plan_path)
    res, _ = _fault(tmp_path, "kill-after-rename", plan_path, out)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    run = tmp_path / "clone.run"
    assert os.path.exists(out) and os.path.exists(out + ".journal")
    assert not (run / "summary.json").exists()
    res = subprocess.run(_cmd(plan_path, out), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "already complete (6 images" in res.stdout
    assert not os.path.exists(out + ".journal")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["recovered"] and summary["written"] == 6
    assert sorted(read_all(out)) == list(range(6))


def test_disk_full_is_one_line_and_writes_nothing_more(tmp_path):
    """Issue #9 item 12: ENOSPC from the writer: exit 2, one line, no summary on the full
    disk, no write attempted after it; the committed images resume once there is space."""
    plan = make_plan(per_class=2, steps=2, size=32)                # 6 rows, 3 batches
    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(plan, plan_path)
    res, attempts = _fault(tmp_path, "enospc:3", plan_path, out)   # the 2nd batch's commit
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln.lower()]
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and len(errors) == 1, res.stderr[-3000:]
    assert errors[0].startswith("synthclone generate: error: the disk is full")
    assert attempts == [], attempts
    assert not (tmp_path / "clone.run" / "summary.json").exists()
    assert _committed(out) == 2 and not os.path.exists(out)
    res = subprocess.run(_cmd(plan_path, out), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "(2 resumed)" in res.stdout, res.stderr[-2000:]
    assert sorted(read_all(out)) == list(range(6))
