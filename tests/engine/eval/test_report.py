"""``synthclone report`` from fixture runs: every figure is a valid PNG of its stated size, the
HTML page shows them with the tables, and inputs that are not results are refused."""
import json
import os

import pytest
from PIL import Image

from engine.cli import main

SETS = ("imagenet-val", "imagenet-v2", "imagenet-sketch", "imagenet-r", "imagenet-a")
BASELINES = [[60.0, 20.0, "a"], [70.0, 28.0, "b"], [76.0, 36.0, "c"], [80.0, 40.0, "d"]]


def fixture_run(folder, label, kind, size, accs, transfer=(80.0, 75.0)):
    """An eval output folder with the results.json ``synthclone eval`` writes (the fit and ER
    from the baseline points, as eval computes them)."""
    from engine.eval.robustness import effective_robustness, fit_logit_line

    sets = {n: {"top1": a, "top5": min(100.0, a + 15), "num_evaluated": 1000,
                "classes_evaluated": 200 if n in ("imagenet-r", "imagenet-a") else 1000,
                "restriction": "all 1000 model outputs"} for n, a in zip(SETS, accs)}
    sets["imagenet-val"]["diagnostics"] = {"sparsity_pct": 40.0, "intra_class_l2": 0.8,
                                           "redundancy": 0.12, "coding_length": 300.0}
    shifts = {}
    for shift, scale in zip(("imagenet-r", "imagenet-sketch", "imagenet-v2"), (0.5, 0.4, 0.85)):
        points = [[a, b * scale / 0.5, m] for a, b, m in BASELINES]
        fit = fit_logit_line([p[0] for p in points], [p[1] for p in points])
        ood = sets[shift]["top1"]
        shifts[shift] = {"id_set": "imagenet-val", "id_top1": accs[0], "ood_top1": ood,
                         "ag": ood - accs[0], "er": effective_robustness(accs[0], ood, fit),
                         "fit": fit.describe(), "baseline_points": points}
    results = {"schema": "synthclone.eval/1", "command": "eval",
               "run": {"label": label, "kind": kind, "synthetic_images": size},
               "sets": sets, "robustness": {"id_set": "imagenet-val", "shifts": shifts},
               "transfer": {"flowers": {"linear": {"top1": transfer[0], "C": 0.3},
                                        "knn": {"top1": transfer[1]}},
                            "average": {"linear": transfer[0], "knn": transfer[1],
                                        "sets": ["flowers"]}}}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f)
    return folder


@pytest.fixture
def runs(tmp_path):
    return [
        fixture_run(str(tmp_path / "real" / "eval"), "real-r50", "real", 0,
                    (76.1, 63.9, 24.1, 36.2, 0.5)),
        fixture_run(str(tmp_path / "syn-1x"), "sd-1x", "synthetic", 1_300_000,
                    (42.3, 38.0, 30.4, 45.1, 2.0), transfer=(78.0, 70.5)),
        fixture_run(str(tmp_path / "mix-2x"), "real+sd-2x", "mixed", 2_600_000,
                    (76.5, 64.3, 39.0, 51.5, 1.1), transfer=(81.0, 76.0)),
    ]


def test_report_pngs_and_html_from_fixture_runs(runs, tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "schema": "synthclone.eval-data/1", "command": "eval-data",
        "file": {"path": "/x/clone.beton", "num_images": 1300, "num_classes": 100},
        "clip": {"diversity": 0.26, "score_mean": 0.31, "share_below_threshold": 0.4},
        "inception": {"inception_score": {"mean": 12.0}, "fid": 20.5,
                      "fid_per_class": {"mean": 80.1}},
        "detector": {"linear": {"top1": 83.0}, "mlp": {"top1": 86.0}}}))
    out = str(tmp_path / "report")
    assert main(["report", os.path.dirname(runs[0]), runs[1], runs[2] + "/results.json",
                 str(data), "-o", out]) == 0
    expected = {  # figure sizes at 100 dpi, by hand from plots.py's figure sizes
        "performance_card.png": (800, 800),
        "effective_robustness.png": (1500, 500),       # 3 shifts: 3 panels of 5 x 5 in
        "accuracy_vs_size.png": (900, 600),
        "results_table.png": (1140, 200),               # 9 columns (1.5 + 1.1 * 9 in), 3 rows
    }
    for name, size in expected.items():
        path = os.path.join(out, name)
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == size, name
            assert len(set(im.convert("L").getdata())) > 20  # not blank
    html = open(os.path.join(out, "index.html")).read()
    for name in expected:
        assert f"src='{name}'" in html
    assert "sd-1x" in html and "clone.beton" in html and "86.00" in html
    er = json.load(open(os.path.join(runs[1], "results.json")))["robustness"]["shifts"]
    assert f"{er['imagenet-r']['er']:+.2f}" in html
    summary = json.load(open(os.path.join(out, "report.json")))
    assert summary["table"]["columns"][:2] == ["model", "data"]
    assert len(summary["table"]["rows"]) == 3 and summary["skipped"] == {}
    assert os.path.isfile(os.path.join(out, "config.yaml"))


def test_report_skips_figures_without_inputs(runs, tmp_path):
    out = str(tmp_path / "one")
    assert main(["report", runs[0], "-o", out]) == 0
    summary = json.load(open(os.path.join(out, "report.json")))
    assert "accuracy_vs_size" in summary["skipped"]
    assert "Not drawn" in open(os.path.join(out, "index.html")).read()


def test_report_refuses_non_results(tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    assert main(["report", str(tmp_path / "x.json"), "-o", str(tmp_path / "r")]) == 2
    assert "not a synthclone eval" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r")]) == 2
    assert "no results.json" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")
