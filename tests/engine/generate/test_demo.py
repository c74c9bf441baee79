"""The README's main command: ``synthclone demo`` plans and generates a small clone with tiny."""
import os

from engine.demo import main


def test_demo_plans_and_generates(tmp_path, capsys):
    out = str(tmp_path / "demo")
    args = ["--out", out, "--classes", "tench,goldfish", "--images-per-class", "3",
            "--steps", "2", "--batch-size", "4"]
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
    for name in ("plan.jsonl", "clone.beton", os.path.join("clone.run", "contact_sheet.png")):
        assert os.path.exists(os.path.join(out, name)), name
    assert main(args) == 0                                  # a rerun finds it complete
    assert "already complete" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
