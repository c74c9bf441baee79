"""Where a run writes and whether it may: the shard's .beton, its run folder, and the run state
that decides between starting, resuming and "already complete".

    clone.beton            the finished file (clone.shard0of4.beton for shard 0 of 4)
    clone.beton.partial    while writing (+ clone.beton.journal: the commits)
    clone.run/state.json   what the output is made of: plan hash, shard, rows (checked on resume)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import UserError
from engine.generate.config import run_dir_for, shard_path
from engine.runs import RunDir

STATE = "state.json"
SUMMARY = "summary.json"


class GenerateError(UserError, RuntimeError):
    """A generation run cannot start or continue; the message says what to do."""


@dataclass
class Output:
    """The files of one shard's run."""

    beton: str
    """The .beton this shard writes."""
    run: RunDir
    """Its run folder (``clone.run/``)."""

    @classmethod
    def for_shard(cls, out: str, i: int, n: int) -> "Output":
        beton = shard_path(out, i, n)
        return cls(beton, RunDir(run_dir_for(beton)))

    @property
    def run_dir(self) -> str:
        return self.run.path

    def exists(self) -> bool:
        return os.path.exists(self.beton)

    def partial_exists(self) -> bool:
        from loaders.beton.writer import BetonWriter

        return BetonWriter.partial_exists(self.beton)


def run_identity(plan, shard, num_rows: int) -> dict:
    """What an output is made of; a resume or a relaunch must match it exactly."""
    return {"plan_hash": plan.hash, "shard": list(shard), "num_rows": num_rows}


def finished_summary(output: Output, identity: dict) -> dict | None:
    """The summary of a finished run of this very plan shard (a relaunch has nothing to do)."""
    prev = output.run.read_json(SUMMARY)
    if not prev or prev.get("status") != "done" or prev.get("plan_hash") != identity["plan_hash"] \
            or prev.get("shard") != identity["shard"]:
        return None
    return {**prev, "status": "already_complete", "resumed": prev.get("written", 0),
            "written": 0}


def check_resume(output: Output, identity: dict) -> None:
    """Refuse to resume a partial made from another plan shard."""
    prev = output.run.read_json(STATE)
    if prev is None:
        raise GenerateError(f"a partial .beton exists but {output.run.file(STATE)} does not: "
                            "cannot tell which plan it belongs to; pass --overwrite to start over")
    if prev.get("plan_hash") != identity["plan_hash"] or \
            list(prev.get("shard", [0, 1])) != identity["shard"]:
        raise GenerateError(
            f"refusing to resume: the partial output was made from plan "
            f"{str(prev.get('plan_hash', '?'))[:16]} shard {prev.get('shard')}, this run has plan "
            f"{identity['plan_hash'][:16]} shard {identity['shard']}. Use the same plan and "
            "--shard, another --out, or --overwrite to start over")


def prepare_run_dir(output: Output, resuming: bool, overwrite: bool) -> None:
    """Create the run folder: kept when resuming, emptied when starting over (ours only)."""
    path = output.run_dir
    if resuming or not os.path.isdir(path) or not os.listdir(path):
        os.makedirs(path, exist_ok=True)
        return
    if not overwrite and not os.path.exists(output.run.file(STATE)):
        raise GenerateError(f"{path} exists and is not a synthclone run folder; move it away or "
                            "choose another --out")
    RunDir.create(path, overwrite=True)
