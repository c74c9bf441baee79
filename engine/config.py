"""Config plumbing: YAML file -> dataclass defaults -> command-line overrides; run records."""
from __future__ import annotations

import dataclasses
import os
import subprocess

import yaml

from engine.paths import atomic_write


def load_yaml(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option: value")
    return data


def resolve(cls, yaml_path: str | None = None, overrides: dict | None = None, section: str | None = None):
    """Build dataclass ``cls`` from defaults, then a YAML file (optionally one section of it),
    then ``overrides`` (entries that are None are ignored).  Unknown keys are an error."""
    values: dict = {}
    if yaml_path:
        data = load_yaml(yaml_path)
        if section is not None:
            data = data.get(section, {})
        values.update(data)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**values)


def git_commit() -> str | None:
    """The checkout's commit (with '-dirty'), or None outside a git checkout."""
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
    from engine import __version__

    path = os.path.join(out_dir, "config.yaml")
    record = {"synthclone_version": __version__, "git_commit": git_commit(), **config}
    with atomic_write(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(record, f, sort_keys=False)
    return path
