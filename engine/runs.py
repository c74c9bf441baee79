"""Run folders: every command that writes an output folder records what made it.

    run = RunDir.create("runs/train-r18", overwrite=False)   # refuses a non-empty folder
    run.write_config({"train": to_dict(cfg)})                 # config.yaml + version + git commit
    run.write_json("metrics.json", {...})                     # atomic
    run.append_jsonl("metrics.jsonl", {"step": 10, ...})      # one line per event

``config.yaml`` holds the resolved config, the package version and the git commit (DESIGN.md
"Runs"). Files are written atomically (temp file + rename), readable by the group.
"""
from __future__ import annotations

import json
import os
import subprocess

from engine.errors import UserError
from engine.paths import atomic_write


class RunDirError(UserError):
    """A run folder that exists and holds another run (pass --overwrite or --resume)."""


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty``), or None outside a git checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def write_run_config(out_dir: str, config: dict) -> str:
    """Write ``config.yaml`` (resolved config + version + git commit) into a run folder."""
    import yaml

    from engine import __version__

    path = os.path.join(out_dir, "config.yaml")
    record = {"synthclone_version": __version__, "git_commit": git_commit(), **config}
    with atomic_write(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(record, f, sort_keys=False)
    return path


class RunDir:
    """A run's output folder and the few ways we write into it."""

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def create(cls, path: str, *, overwrite: bool = False, resume: bool = False) -> "RunDir":
        """Make ``path``. An existing non-empty folder is an error unless ``resume`` (keep it)
        or ``overwrite`` (empty it first)."""
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunDirError(f"{path} exists and is not a folder; choose another --out")
        if os.path.isdir(path) and os.listdir(path) and not resume:
            if not overwrite:
                raise RunDirError(f"{path} already holds a run; pass --resume to continue it or "
                                  "--overwrite to replace it")
            import shutil

            shutil.rmtree(path)
        os.makedirs(path, exist_ok=True)
        return cls(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write_config(self, config: dict) -> str:
        return write_run_config(self.path, config)

    def write_json(self, name: str, obj) -> str:
        path = self.file(name)
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        return path

    def read_json(self, name: str, default=None):
        path = self.file(name)
        if not os.path.exists(path):
            return default
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def append_jsonl(self, name: str, record: dict) -> None:
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
