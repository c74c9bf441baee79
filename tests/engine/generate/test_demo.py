"""The README's main command: ``synthclone demo`` plans and generates a small clone with tiny,
draws and packs the toy real domain, trains the tiny recipe dual-domain and reports top-1."""
import json
import os

from engine.demo import main


def test_demo_plans_and_generates(tmp_path, capsys):
    out = str(tmp_path / "demo")
    args = ["--out", out, "--classes", "tench,goldfish", "--images-per-class", "3",
            "--steps", "2", "--batch-size", "4", "--real-per-class", "8",
            "--heldout-per-class", "2", "--epochs", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "n01440764 tench: 3" in text and "n01443537 goldfish: 3" in text
    from engine.config import load_section
    from engine.demo import DEFAULT_CONFIG
    from engine.plan import read_plan

    demo_yaml = load_section(DEFAULT_CONFIG, "plan")        # what the flags did not override
    rows = read_plan(os.path.join(out, "plan.jsonl")).rows
    assert {(r.steps, r.sampler, r.height) for r in rows} == {
        (2, demo_yaml["sampler"], demo_yaml["height"])}
    for name in ("plan.jsonl", "clone.beton", os.path.join("clone.run", "contact_sheet.png"),
                 "real.beton", "heldout.beton", "metrics.json", "curves.png",
                 "contact_sheet.png", "real_sheet.png", os.path.join("train", "model_real.pt"),
                 os.path.join("eval", "results.json")):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.json")) as f:
        record = json.load(f)
    # 16 drawn real rows, batch 32 = 16 real + 16 synthetic: one step per epoch
    assert record["train"]["steps"] == 1 and record["train"]["synthetic_share"] == 0.5
    assert record["heldout_images"] == 4 and 0 <= record["heldout_top1"] <= 1
    assert 0 <= record["trainer_heldout_top1"] <= 1  # the trainer's own check (FFCV decode)
    assert "not photographs" in record["real_domain"] and record["synthetic_images"] == 6
    assert "held-out top-1" in text and "says nothing about the method" in text
    assert main(args) == 0                                  # a rerun finds it complete
    text = capsys.readouterr().out
    assert "already complete" in text and "reused the finished training:" in text
    assert main(args + ["--overwrite"]) == 0
