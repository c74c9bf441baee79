"""``curves.png``: training loss and accuracy per domain, and held-out top-1, against the step."""
from __future__ import annotations

import os

from engine.paths import atomic_write
from engine.train.metrics import read_jsonl


def plot_curves(metrics_path: str, png_path: str, title: str = "") -> str | None:
    """Plot ``metrics.jsonl``; returns the PNG path (None when there is nothing to plot)."""
    if not os.path.exists(metrics_path):
        return None
    recs = read_jsonl(metrics_path)
    train = [r for r in recs if r.get("kind") == "train"]
    evals = [r for r in recs if r.get("kind") == "eval" and r.get("top1") is not None]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    series = [("loss_real", "acc_real", "real", "tab:blue"),
              ("loss_syn", "acc_syn", "synthetic", "tab:orange")]
    for loss_key, acc_key, name, color in series:
        pts = [(r["step"], r[loss_key], r[acc_key]) for r in train if r.get(loss_key) is not None]
        if pts:
            steps, losses, accs = zip(*pts)
            ax_loss.plot(steps, losses, color=color, label=f"train {name}")
            ax_acc.plot(steps, [100 * a for a in accs], color=color, label=f"train {name}")
    obj = [(r["step"], r["objective"]) for r in train if r.get("objective") is not None]
    if obj and any(r.get("loss_syn") is not None for r in train):
        ax_loss.plot(*zip(*obj), color="black", lw=1, ls="--", label="objective (λ-weighted)")
    if evals:
        steps = [r["step"] for r in evals]
        ax_loss.plot(steps, [r["loss"] for r in evals], "o-", color="tab:green",
                     label="held-out")
        ax_acc.plot(steps, [100 * r["top1"] for r in evals], "o-", color="tab:green",
                    label="held-out top-1")
    ax_loss.set(xlabel="optimizer step", ylabel="cross-entropy (log scale)", title="loss",
                yscale="log")
    ax_acc.set(xlabel="optimizer step", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(png_path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return png_path
