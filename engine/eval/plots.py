"""The report's figures (matplotlib, Agg backend, fixed sizes so a PNG's pixel size is known).

Every function takes plain data (what :mod:`engine.eval.report` extracts from results.json
files), writes one PNG atomically and returns its path. Colours say what a model was trained
on: real (blue), synthetic (orange), real + synthetic (green), unknown (grey).
"""
from __future__ import annotations

import math
import os

import numpy as np

DPI = 100
SPIDER_SIZE = (8.0, 8.0)
SCATTER_PANEL = (5.0, 5.0)
SIZE_PLOT = (9.0, 6.0)
HIST_SIZE = (8.0, 5.0)
KIND_COLORS = {"real": "#1f77b4", "synthetic": "#ff7f0e", "mixed": "#2ca02c",
               "unknown": "#7f7f7f"}
KIND_NAMES = {"real": "real", "synthetic": "synthetic", "mixed": "real + synthetic",
              "unknown": "unknown data"}
LINESTYLES = ("-", "--", "-.", ":")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    from engine.paths import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    _pyplot().close(fig)
    return path


def png_size(figsize) -> tuple[int, int]:
    """(width, height) in pixels of a figure saved by :func:`_save`."""
    return int(round(figsize[0] * DPI)), int(round(figsize[1] * DPI))


def _styles(runs):
    """Colour by kind; a different line style for each run of the same kind."""
    seen: dict[str, int] = {}
    out = []
    for r in runs:
        k = r["kind"] if r["kind"] in KIND_COLORS else "unknown"
        i = seen.get(k, 0)
        seen[k] = i + 1
        out.append((KIND_COLORS[k], LINESTYLES[i % len(LINESTYLES)]))
    return out


def spider(runs, axes, path: str,
           title: str = "Performance card (top-1 %; transfer: linear-probe average)") -> str:
    """The papers' performance card: one polygon per run over ``axes`` [(key, label)];
    ``runs``: [{"label", "kind", "values": {key: top1}}]. Missing values are drawn at 0 and
    marked "n/a" in the legend."""
    plt = _pyplot()
    n = len(axes)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False).tolist()
    top = max([v for r in runs for v in r["values"].values() if v is not None] + [1.0])
    step = 20.0 if top > 40 else 10.0 if top > 20 else 5.0
    rmax = min(100.0, step * math.ceil(top / step + 1e-9))
    fig = plt.figure(figsize=SPIDER_SIZE)
    ax = fig.add_axes([0.14, 0.22, 0.72, 0.64], polar=True)
    ax.set_theta_offset(np.pi / 2)   # first axis at the top, clockwise
    ax.set_theta_direction(-1)
    for r, (color, ls) in zip(runs, _styles(runs)):
        vals = [r["values"].get(k) for k, _ in axes]
        missing = [lbl for (k, lbl), v in zip(axes, vals) if v is None]
        vals = [0.0 if v is None else v for v in vals]
        label = f"{r['label']} ({KIND_NAMES.get(r['kind'], r['kind'])})"
        if missing:
            label += f" — n/a: {', '.join(missing)}"
        ax.plot(angles + angles[:1], vals + vals[:1], color=color, linestyle=ls, linewidth=2,
                marker="o", label=label)
        ax.fill(angles + angles[:1], vals + vals[:1], color=color, alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels([lbl for _, lbl in axes], fontsize=12)
    ax.tick_params(axis="x", pad=14)
    ax.set_ylim(0, rmax)
    ticks = np.arange(step, rmax + 1e-9, step)
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}%" for t in ticks], fontsize=9, color="#555555")
    ax.set_rlabel_position(180 / n)
    fig.suptitle(title, fontsize=15, y=0.97)
    fig.legend(loc="lower center", bbox_to_anchor=(0.5, 0.01), fontsize=10, frameon=False,
               ncol=1)
    return _save(fig, path)


def er_scatter(panels, path: str) -> str:
    """Effective robustness: per shift, baseline (ID, OOD) top-1 on logit axes, the fitted line
    β, y = x, and each run. ``panels``: [{"shift", "id_set", "fit": {slope, intercept},
    "baselines": [(id, ood)], "runs": [{"label", "kind", "id", "ood", "er"}]}]."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    from engine.eval.robustness import logit, sigmoid_percent

    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(SCATTER_PANEL[0] * cols,
                                                 SCATTER_PANEL[1] * rows), squeeze=False)
    pct = FuncFormatter(lambda v, _: f"{100 * v:g}%")
    for ax, p in zip(axs.flat, panels):
        pts = np.asarray(p["baselines"], dtype=float).reshape(-1, 2)
        xs = np.concatenate([pts[:, 0], [r["id"] for r in p["runs"]]])
        ys = np.concatenate([pts[:, 1], [r["ood"] for r in p["runs"]]])
        lo = max(0.5, min(xs.min(), ys.min()) * 0.7)
        hi = min(99.5, max(xs.max(), ys.max()) * 1.1 + 1)
        grid = np.linspace(logit(lo), logit(hi), 200)
        line = sigmoid_percent(p["fit"]["slope"] * grid + p["fit"]["intercept"]) / 100
        ax.set_xscale("logit")
        ax.set_yscale("logit")
        ax.plot(sigmoid_percent(grid) / 100, sigmoid_percent(grid) / 100, color="#bbbbbb",
                linestyle=":", label="y = x")
        ax.plot(sigmoid_percent(grid) / 100, line, color="black", linewidth=1.5,
                label=f"baseline fit β (slope {p['fit']['slope']:.2f})")
        ax.scatter(pts[:, 0] / 100, pts[:, 1] / 100, color="#999999", s=25,
                   label=f"baselines ({len(pts)})")
        for r, (color, _) in zip(p["runs"], _styles(p["runs"])):
            ax.scatter([r["id"] / 100], [r["ood"] / 100], color=color, marker="*", s=220,
                       edgecolor="black", linewidth=0.6, zorder=5,
                       label=f"{r['label']}: ER {r['er']:+.1f}")
        ax.set_xlim(lo / 100, hi / 100)
        ax.set_ylim(lo / 100, hi / 100)
        ax.xaxis.set_major_formatter(pct)
        ax.yaxis.set_major_formatter(pct)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel(f"{p['id_set']} top-1 (logit scale)")
        ax.set_ylabel(f"{p['shift']} top-1 (logit scale)")
        ax.set_title(f"Effective robustness: {p['shift']}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    for ax in list(axs.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def accuracy_vs_size(series, path: str) -> str:
    """Top-1 against the number of synthetic training images. ``series``: {set label:
    [(size, top1, run label, kind)]}. One colour per set; runs trained on synthetic data only
    are joined by a dashed line, runs with real data (real-only at size 0, real + synthetic)
    by a solid one."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=SIZE_PLOT)
    sizes = [p[0] for pts in series.values() for p in pts]
    use_log = min(sizes) > 0 and max(sizes) / min(sizes) >= 10
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for (name, pts), color, marker in zip(sorted(series.items()), colors * 3, "osD^v<>ph*" * 3):
        for family, ls in (("with real", "-"), ("synthetic only", "--")):
            fam = sorted(p for p in pts if (p[3] == "synthetic") == (family == "synthetic only"))
            if fam:
                ax.plot([p[0] for p in fam], [p[1] for p in fam], color=color, linestyle=ls,
                        marker=marker, linewidth=2, markersize=7)
        handles.append(Line2D([], [], color=color, marker=marker, linewidth=2, label=name))
    handles += [Line2D([], [], color="black", linestyle="-", label="real (+ synthetic) data"),
                Line2D([], [], color="black", linestyle="--", label="synthetic data only")]
    if use_log:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    ax.set_xlabel("synthetic training images" + (" (log scale)" if use_log else ""))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy vs synthetic-set size")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="test set / data")
    fig.tight_layout()
    return _save(fig, path)


def _human(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def table_png(columns, rows, path: str, title: str = "All results (top-1 %)") -> str:
    """A table image: ``columns`` header strings (``\n`` allowed), ``rows`` [[cell, ...]].
    Column widths follow the longest text in each column."""
    plt = _pyplot()
    size = table_size(len(columns), len(rows))
    fig = plt.figure(figsize=size)
    top = 1 - 0.55 / size[1]                       # room for the title
    ax = fig.add_axes([0.02, 0.04, 0.96, top - 0.04])
    ax.axis("off")
    lengths = [max([len(line) for line in str(c).split("\n")] +
                   [len(str(r[i])) for r in rows]) + 2 for i, c in enumerate(columns)]
    widths = [n / sum(lengths) for n in lengths]
    t = ax.table(cellText=rows, colLabels=columns, cellLoc="center", colWidths=widths,
                 bbox=[0, 0, 1, 1])
    t.auto_set_font_size(False)
    t.set_fontsize(9)
    for (r, _), cell in t.get_celld().items():
        if r == 0:
            cell.set_facecolor("#e8e8e8")
            cell.set_text_props(weight="bold")
    fig.suptitle(title, fontsize=13, y=1 - 0.15 / size[1], va="top")
    return _save(fig, path)


def table_size(n_columns: int, n_rows: int) -> tuple[float, float]:
    """Figure size of :func:`table_png` (inches): ~1.1 in per column, 0.3 in per row, a
    two-line header and the title."""
    return (max(6.0, 1.5 + 1.1 * n_columns), 1.1 + 0.3 * n_rows)


def histogram(values, threshold: float, path: str, title: str) -> str:
    """CLIP scores with the threshold line (seed 004 §4.5)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=HIST_SIZE)
    values = np.asarray(values, dtype=float)
    ax.hist(values, bins=40, color="#4c72b0", alpha=0.85)
    ax.axvline(threshold, color="#c44e52", linewidth=2,
               label=f"threshold {threshold:g}: {np.mean(values < threshold):.1%} below")
    ax.set_xlabel('CLIP score: cosine to "a photo of a {class}."')
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
