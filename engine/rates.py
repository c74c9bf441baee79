"""Measured generation rates on this machine: how long a plan will take to generate.

Every ``generate`` run that writes images appends one line to ``$SYNTHCLONE_CACHE/rates.jsonl``
(:func:`record_run`): host, device, dtype, model, images written, seconds, images/s, and the mean
denoising steps and pixels of its rows. ``synthclone inspect plan.jsonl`` reads it back
(:func:`latest_rate`: this host's most recent run, of ``--model`` if given) or takes a run folder
(:func:`rate_from_run`), and :func:`estimate_seconds` scales the rate to the plan's rows by
steps x pixels. That scaling is rough (the fixed cost per image, attention's growth with
size and batching are ignored), so every estimate says where its rate came from and whether it
was scaled. The log is a convenience: a cache that cannot be written never fails a run.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform

RATES_FILE = "rates.jsonl"
"""File name of the rate log under ``$SYNTHCLONE_CACHE``."""


@dataclasses.dataclass(frozen=True)
class Rate:
    """A measured generation rate and the settings it was measured at."""

    images_per_s: float
    steps: float
    """Mean denoising steps per image of the measured rows (img2img: steps x strength)."""
    pixels: float
    """Mean generated pixels (height x width) per image of the measured rows."""
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    images: int | None = None
    seconds: float | None = None
    when: str | None = None
    """ISO date and time of the run."""
    source: str = ""
    """Where the rate comes from, in words (shown with every estimate)."""
    compile: bool = False

    def settings(self) -> str:
        side = round(self.pixels ** 0.5)
        return (f"{self.images_per_s:.3g} images/s, model {self.model or '?'} on "
                f"{self.device or '?'}{' ' + self.dtype if self.dtype else ''}, "
                f"~{side}x{side} px, {self.steps:g} steps"
                + (", torch.compile" if self.compile else ""))


def row_cost(row) -> float:
    """A row's generation cost in step-pixels (img2img rows run ``steps * strength`` steps)."""
    steps = row.steps * (row.strength if row.init_image is not None and row.strength else 1.0)
    return steps * row.height * row.width


def mean_settings(rows) -> tuple[float, float]:
    """Mean denoising steps (img2img: x strength) and mean pixels of ``rows``."""
    rows = list(rows)
    if not rows:
        return 0.0, 0.0
    steps = sum(r.steps * (r.strength if r.init_image is not None and r.strength else 1.0)
                for r in rows) / len(rows)
    return steps, sum(r.height * r.width for r in rows) / len(rows)


def estimate_seconds(rows, rate: Rate) -> float:
    """Seconds to generate ``rows`` at ``rate``, scaled from the rate's settings by steps x
    pixels per row."""
    ref = rate.steps * rate.pixels
    return sum(row_cost(r) for r in rows) / ref / rate.images_per_s


def needs_scaling(rows, rate: Rate) -> bool:
    """True when ``rows`` differ from the settings ``rate`` was measured at."""
    return any(abs(row_cost(r) - rate.steps * rate.pixels) > 1e-6 * row_cost(r) for r in rows)


def rates_path() -> str:
    from engine.paths import cache_dir

    return os.path.join(cache_dir(), RATES_FILE)


def host() -> str:
    return platform.node() or "unknown-host"


def record_run(rows, written: int, seconds: float, *, model: str | None, applied: dict,
               run_dir: str | None = None, path: str | None = None) -> dict | None:
    """Append a finished (or interrupted) run's rate to the log; returns the entry, or None when
    nothing was measured or the cache cannot be written (a rate log never fails a run)."""
    if written < 1 or not seconds > 0:
        return None
    steps, pixels = mean_settings(rows)
    entry = {"host": host(), "time": datetime.datetime.now().isoformat(timespec="seconds"),
             "model": model, "device": applied.get("device"), "dtype": applied.get("dtype"),
             "compile": bool(applied.get("compile")), "images": int(written),
             "seconds": round(float(seconds), 3), "images_per_s": written / seconds,
             "steps": steps, "pixels": pixels,
             "run": os.path.abspath(run_dir) if run_dir else None}
    try:
        with open(path or rates_path(), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError:
        return None
    return entry


def rate_of(entry: dict, source: str) -> Rate:
    """A :class:`Rate` from a log entry (``images_per_s``, ``steps``, ``pixels``, ...)."""
    return Rate(images_per_s=float(entry["images_per_s"]), steps=float(entry["steps"]),
                pixels=float(entry["pixels"]), model=entry.get("model"),
                device=entry.get("device"), dtype=entry.get("dtype"),
                images=entry.get("images"), seconds=entry.get("seconds"),
                when=entry.get("time"), source=source, compile=bool(entry.get("compile")))


def _usable(e) -> bool:
    try:
        return float(e["images_per_s"]) > 0 and float(e["steps"]) > 0 and float(e["pixels"]) > 0
    except (KeyError, TypeError, ValueError):
        return False


def latest_rate(model: str | None = None, path: str | None = None) -> Rate | None:
    """This host's most recent recorded rate (of ``model`` when given), or None."""
    path = path or rates_path()
    if not os.path.exists(path):
        return None
    best = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue                      # a line cut by a crash: skip it
            if not isinstance(e, dict) or e.get("host") != host() or not _usable(e):
                continue
            if model is not None and e.get("model") != model:
                continue
            best = e                          # later lines are later runs
    if best is None:
        return None
    return rate_of(best, f"the last generate run on this machine ({best['images']} images in "
                       f"{best['seconds']:.0f} s on {best['time']}; log {path})")


def rate_from_run(path: str) -> Rate:
    """The rate of an earlier run: its run folder (``clone.run``) or its ``summary.json``."""
    from engine.errors import UserError

    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    summary_file = path if os.path.isfile(path) else os.path.join(path, "summary.json")
    try:
        with open(summary_file, encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"--rate-from {path}: no readable summary.json of a generate run "
                        f"({exc}); give a run folder such as clone.run") from None
    written, seconds = s.get("written") or 0, s.get("elapsed_s") or 0
    if written < 1 or not seconds > 0:
        raise UserError(f"--rate-from {path}: that run wrote no images, so it measured no rate")
    cfg = run_config(folder)
    gen, plan_cfg = cfg.get("generate") or {}, (cfg.get("plan_header") or {}).get("config") or {}
    applied = cfg.get("applied") or {}
    if not all(isinstance(plan_cfg.get(k), (int, float)) for k in ("steps", "height", "width")):
        raise UserError(f"--rate-from {path}: its config.yaml does not record the plan's steps "
                        "and size, so the rate cannot be scaled to another plan")
    entry = {"images_per_s": written / seconds, "steps": plan_cfg["steps"],
             "pixels": plan_cfg["height"] * plan_cfg["width"], "model": gen.get("model"),
             "device": applied.get("device"), "dtype": applied.get("dtype"),
             "compile": applied.get("compile"), "images": written,
             "seconds": round(seconds, 3)}
    return rate_of(entry, f"the run in {folder} ({written} images in {seconds:.0f} s)")


def run_config(folder: str) -> dict:
    """A run folder's ``config.yaml`` as a dict (empty when missing or unreadable)."""
    import yaml

    try:
        with open(os.path.join(folder, "config.yaml"), encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return {}
    return cfg if isinstance(cfg, dict) else {}
