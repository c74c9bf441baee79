"""The README's main command: ``synthclone demo`` plans and generates a small clone with tiny."""
import os

from engine.demo import main


def test_demo_plans_and_generates(tmp_path, capsys):
    out = str(tmp_path / "demo")
    args = ["--out", out, "--classes", "tench,goldfish", "--images-per-class", "3",
            "--steps", "2", "--batch-size", "4"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "n01440764: 3" in text and "n01443537: 3" in text
    for name in ("plan.jsonl", "clone.beton", os.path.join("clone.run", "contact_sheet.png")):
        assert os.path.exists(os.path.join(out, name)), name
    assert main(args) == 0                                  # a rerun finds it complete
    assert "already complete" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
