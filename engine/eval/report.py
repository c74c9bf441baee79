"""``synthclone report``: compare evaluations in plots and one HTML page.

Inputs are ``results.json`` files or folders holding one (an eval output folder, or a run
folder with ``eval/results.json``). Outputs, in ``--out``:

* ``performance_card.png`` — the papers' spider plot: top-1 on ImageNet val / V2 / Sketch /
  R / A and the transfer average, one polygon per model, coloured by training data;
* ``effective_robustness.png`` — per shifted set with a baseline fit: baselines, the logit-space
  line β, y = x, and each model with its ER;
* ``accuracy_vs_size.png`` — top-1 per set against the synthetic training-set size (models
  whose size is known, at least two);
* ``results_table.png`` and ``index.html`` (every figure and every number in tables);
* ``report.json`` — the rows of the tables, for scripts.

A figure that lacks its inputs is skipped; the page says why.
"""
from __future__ import annotations

import html
import json
import os

from engine.errors import UserError
from engine.eval import plots

CARD_AXES = (("imagenet-val", "ImageNet val"), ("imagenet-v2", "ImageNet-V2"),
             ("imagenet-sketch", "Sketch"), ("imagenet-r", "ImageNet-R"),
             ("imagenet-a", "ImageNet-A"), ("transfer", "Transfer avg"))


class ReportError(UserError):
    """An input that is not an evaluation's results."""


def find_results(path: str) -> str:
    for candidate in (path, os.path.join(path, "results.json"),
                      os.path.join(path, "eval", "results.json")):
        if os.path.isfile(candidate):
            return candidate
    raise ReportError(f"{path}: no results.json (give an eval output folder, a run folder with "
                      "eval/results.json, or the file)")


def load_results(paths) -> list[dict]:
    out = []
    for p in paths:
        f = find_results(p)
        try:
            with open(f, encoding="utf-8") as fh:
                data = json.load(fh)
        except ValueError as exc:
            raise ReportError(f"{f}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(
                ("synthclone.eval/", "synthclone.eval-data/")):
            raise ReportError(f"{f}: not a synthclone eval/eval-data results.json")
        data["_path"] = f
        out.append(data)
    labels = [_label(r) for r in out]
    for r in out:  # unique labels
        lbl = _label(r)
        if labels.count(lbl) > 1:
            where = os.path.basename(os.path.dirname(r["_path"]))
            r.setdefault("run", {})["label"] = f"{lbl} [{where}]"
    return out


def _label(r: dict) -> str:
    if r.get("command") == "eval-data":
        return os.path.basename(r["file"]["path"])
    return (r.get("run") or {}).get("label") or os.path.dirname(r["_path"])


def _kind(r: dict) -> str:
    return (r.get("run") or {}).get("kind") or "unknown"


def _top1(r: dict, key: str):
    if key == "transfer":
        avg = (r.get("transfer") or {}).get("average") or {}
        return avg.get("linear", avg.get("knn"))
    return ((r.get("sets") or {}).get(key) or {}).get("top1")


def card_data(evals):
    axes = [(k, lbl) for k, lbl in CARD_AXES if any(_top1(r, k) is not None for r in evals)]
    runs = [{"label": _label(r), "kind": _kind(r),
             "values": {k: _top1(r, k) for k, _ in axes}} for r in evals]
    return axes, runs


def er_panels(evals):
    panels = {}
    for r in evals:
        rob = r.get("robustness") or {}
        for shift, e in (rob.get("shifts") or {}).items():
            if "fit" not in e:
                continue
            p = panels.setdefault(shift, {"shift": shift, "id_set": e["id_set"], "fit": e["fit"],
                                          "baselines": [b[:2] for b in e["baseline_points"]],
                                          "runs": []})
            p["runs"].append({"label": _label(r), "kind": _kind(r), "id": e["id_top1"],
                              "ood": e["ood_top1"], "er": e["er"]})
    return [panels[k] for k in sorted(panels)]


def size_series(evals):
    sized = [r for r in evals if (r.get("run") or {}).get("synthetic_images") is not None]
    series: dict[str, list] = {}
    for r in sized:
        for name, s in (r.get("sets") or {}).items():
            if s.get("top1") is not None:
                series.setdefault(name, []).append((r["run"]["synthetic_images"], s["top1"],
                                                    _label(r), _kind(r)))
    return {k: v for k, v in series.items() if len({p[0] for p in v}) >= 2}


SHORT_NAMES = {"imagenet-val": "IN val", "imagenet-v2": "IN-V2", "imagenet-sketch": "Sketch",
               "imagenet-r": "IN-R", "imagenet-a": "IN-A", "objectnet": "ObjectNet",
               "imagenet-c": "IN-C"}
"""Table headers of the known sets (others keep their names)."""


def ordered_sets(evals) -> list[str]:
    """Set names of all evaluations: the card's order first, then the rest sorted."""
    names = {n for r in evals for n in (r.get("sets") or {})}
    known = [k for k, _ in CARD_AXES if k in names] + [k for k in ("objectnet", "imagenet-c")
                                                       if k in names]
    return known + sorted(names - set(known))


def table_rows(evals):
    """``(columns, rows)``: one row per evaluation, top-1 per set and transfer averages."""
    set_names = ordered_sets(evals)
    probes = [p for p in ("linear", "knn")
              if any(p in ((r.get("transfer") or {}).get("average") or {}) for r in evals)]
    columns = (["model", "data"] + [SHORT_NAMES.get(n, n) for n in set_names]
               + [f"transfer\n{'linear' if p == 'linear' else 'k-NN'}" for p in probes])
    rows = []
    for r in evals:
        avg = (r.get("transfer") or {}).get("average") or {}
        rows.append([_label(r), _kind(r)] + [_fmt(_top1(r, n)) for n in set_names]
                    + [_fmt(avg.get(p)) for p in probes])
    return columns, rows


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def make_report(paths, out: str) -> dict:
    """Write the figures and ``index.html`` into ``out``; returns what was made."""
    results = load_results(paths)
    evals = [r for r in results if r.get("command") == "eval"]
    data_evals = [r for r in results if r.get("command") == "eval-data"]
    plots.ensure_dir(out)
    made, skipped = {}, {}

    axes, runs = card_data(evals)
    if len(axes) >= 3:
        made["performance_card"] = plots.spider(runs, axes, os.path.join(out,
                                                                         "performance_card.png"))
    else:
        names = ", ".join(lbl for _, lbl in CARD_AXES)
        skipped["performance_card"] = f"needs top-1 on at least 3 of {names} (have {len(axes)})"
    panels = er_panels(evals)
    if panels:
        made["effective_robustness"] = plots.er_scatter(
            panels, os.path.join(out, "effective_robustness.png"))
    else:
        skipped["effective_robustness"] = "no evaluation has a baseline fit (eval --baselines CSV)"
    series = size_series(evals)
    if series:
        made["accuracy_vs_size"] = plots.accuracy_vs_size(
            series, os.path.join(out, "accuracy_vs_size.png"))
    else:
        skipped["accuracy_vs_size"] = ("needs at least two models with different synthetic-set "
                                       "sizes (eval --synthetic-images N, or the run's config)")
    columns, rows = table_rows(evals)
    if evals:
        made["results_table"] = plots.table_png(columns, rows,
                                                os.path.join(out, "results_table.png"))
    summary = {"inputs": [r["_path"] for r in results], "figures": made, "skipped": skipped,
               "table": {"columns": columns, "rows": rows}}
    _write(os.path.join(out, "report.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _write(os.path.join(out, "index.html"), render_html(evals, data_evals, made, skipped, out))
    return summary


def _write(path: str, text: str) -> None:
    from engine.paths import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


# ----------------------------------------------------------------------------- HTML

def _table(columns, rows) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _set_rows(evals):
    rows = []
    for r in evals:
        for name, s in sorted((r.get("sets") or {}).items()):
            rows.append([_label(r), name, _fmt(s.get("top1")), _fmt(s.get("top5")),
                         s.get("num_evaluated", "—"), s.get("classes_evaluated", "—"),
                         s.get("restriction") or s.get("note", "")])
    return rows


def _robust_rows(evals):
    rows = []
    for r in evals:
        for shift, e in sorted(((r.get("robustness") or {}).get("shifts") or {}).items()):
            fit = e.get("fit") or {}
            rows.append([_label(r), shift, _fmt(e["id_top1"]), _fmt(e["ood_top1"]),
                         f"{e['ag']:+.2f}", f"{e['er']:+.2f}" if "er" in e else "—",
                         f"{fit['slope']:.3f} / {fit['intercept']:.3f}" if fit else "—"])
    return rows


def _transfer_rows(evals):
    rows = []
    for r in evals:
        for name, t in sorted((r.get("transfer") or {}).items()):
            if name == "average":
                continue
            lin, knn = t.get("linear") or {}, t.get("knn") or {}
            rows.append([_label(r), name, _fmt(lin.get("top1")),
                         f"{lin['C']:.3g}" if "C" in lin else "—", _fmt(knn.get("top1"))])
    return rows


def _diag_rows(evals):
    rows = []
    for r in evals:
        for name, s in sorted((r.get("sets") or {}).items()):
            d = s.get("diagnostics")
            if d:
                rows.append([_label(r), name, f"{d['sparsity_pct']:.2f}",
                             f"{d['intra_class_l2']:.4f}", f"{d['redundancy']:.4f}",
                             f"{d['coding_length']:.2f}"])
    return rows


def _data_rows(data_evals):
    rows = []
    for r in data_evals:
        clip, inc, det = r.get("clip") or {}, r.get("inception") or {}, r.get("detector") or {}
        rows.append([_label(r), r["file"]["num_images"], r["file"]["num_classes"],
                     _num(clip.get("diversity")), _num(clip.get("score_mean")),
                     _pct(clip.get("share_below_threshold")),
                     _num((inc.get("inception_score") or {}).get("mean")), _num(inc.get("fid")),
                     _num((inc.get("fid_per_class") or {}).get("mean")),
                     _fmt((det.get("linear") or {}).get("top1")),
                     _fmt((det.get("mlp") or {}).get("top1"))])
    return rows


def _num(v) -> str:
    return "—" if v is None else f"{v:.4g}"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def render_html(evals, data_evals, made, skipped, out) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>synthclone report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:right}th{background:#eee}td:first-child,"
             "td:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #ddd}"
             ".skip{color:#a33}</style></head><body><h1>synthclone report</h1>",
             "<p>Accuracies are top-1/top-5 in percent. Colours: real (blue), synthetic "
             "(orange), real + synthetic (green), unknown (grey).</p>"]
    titles = {"performance_card": "Performance card", "effective_robustness":
              "Effective robustness", "accuracy_vs_size": "Accuracy vs synthetic-set size",
              "results_table": "All results"}
    for key, title in titles.items():
        parts.append(f"<h2>{title}</h2>")
        if key in made:
            parts.append(f"<img src='{html.escape(os.path.relpath(made[key], out))}' "
                         f"alt='{title}'>")
        elif key in skipped:
            parts.append(f"<p class='skip'>Not drawn: {html.escape(skipped[key])}.</p>")
    if evals:
        parts += ["<h2>Test sets</h2>", _table(["model", "set", "top-1", "top-5", "images",
                                                 "classes", "classes used"], _set_rows(evals))]
    rob = _robust_rows(evals)
    if rob:
        parts += ["<h2>Robustness (seed 004 Eqs. 1-2)</h2>",
                  _table(["model", "shift", "ID top-1", "OOD top-1", "AG", "ER",
                          "fit slope / intercept (logit)"], rob)]
    tr = _transfer_rows(evals)
    if tr:
        parts += ["<h2>Transfer</h2>", _table(["model", "set", "linear top-1", "C",
                                                "k-NN top-1"], tr)]
    dg = _diag_rows(evals)
    if dg:
        parts += ["<h2>Feature diagnostics (seed 001 §3.3)</h2>",
                  _table(["model", "set", "sparsity %", "intra-class ℓ2", "redundancy",
                          "coding length"], dg)]
    if data_evals:
        parts += ["<h2>Datasets</h2>", _table(
            ["file", "images", "classes", "CLIP diversity", "CLIP score", "< threshold", "IS",
             "FID", "per-class FID", "detector linear", "detector MLP"], _data_rows(data_evals))]
    parts.append("</body></html>\n")
    return "\n".join(parts)
