"""Where a run writes and whether it may: the shard's .beton, its run folder, and the run state
that decides between starting, resuming and "already complete".

    clone.beton            the finished file (clone.shard0of4.beton for shard 0 of 4)
    clone.beton.partial    while writing (+ clone.beton.journal: the commits)
    clone.run/state.json   what the output is made of: plan hash, shard, rows and the settings
                           that change the pixels (checked on resume and relaunch); ``status:
                           finalizing`` + ``num_samples`` is written just before the rename
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from engine.errors import UserError
from engine.generate.config import run_dir_for, shard_path
from engine.generate.fingerprint import differences
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


def run_identity(plan, shard, num_rows: int, limit: int | None = None) -> dict:
    """Which rows an output holds; a resume or a relaunch must match it exactly."""
    return {"plan_hash": plan.hash, "shard": list(shard), "limit": limit, "num_rows": num_rows}


def _same_rows(state: dict, identity: dict) -> bool:
    return (state.get("plan_hash") == identity["plan_hash"]
            and list(state.get("shard", [0, 1])) == identity["shard"]
            and state.get("limit") == identity["limit"])


def _describe(state: dict) -> str:
    limit = f" --limit {state['limit']}" if state.get("limit") else ""
    return (f"plan {str(state.get('plan_hash', '?'))[:16]} shard "
            f"{'/'.join(map(str, state.get('shard', [0, 1])))}{limit}")


def _check_settings(output: Output, state: dict, settings: dict, what: str) -> None:
    diffs = differences(state.get("settings") or {}, settings)
    if diffs:
        raise GenerateError(
            f"refusing to {what} {output.beton}: it was made with other settings that change "
            f"the images ({'; '.join(diffs)}); rerun with the original settings, or pass "
            "--overwrite to start over with these, or choose another --out")


def finished_run(output: Output, identity: dict, settings: dict) -> dict | None:
    """A relaunch of a finished run: its summary (nothing to do), after checking that the run
    matches; None when the finished file is not this run's (the caller refuses it).

    A run killed between the rename of the .beton and its summary is recognised by the
    completion marker written before the rename (``state.json`` ``status: finalizing``): the
    file is checked, the stale journal removed and the summary written now.
    """
    state = output.run.read_json(STATE)
    if state is None or not _same_rows(state, identity):
        return None
    _check_settings(output, state, settings, "reuse")
    summary = output.run.read_json(SUMMARY)
    if not (summary and summary.get("status") == "done" and _same_rows(summary, identity)):
        if state.get("status") != "finalizing":
            return None
        summary = _recover_summary(output, state)
    return {**summary, "status": "already_complete", "resumed": summary.get("written", 0),
            "written": 0}


def _recover_summary(output: Output, state: dict) -> dict:
    from loaders.beton.reader import BetonReader

    with BetonReader(output.beton) as reader:
        n, info = len(reader), reader.info
    if info is not None and info.plan_hash != state.get("plan_hash"):
        raise GenerateError(f"{output.beton} was made from plan {str(info.plan_hash)[:16]}, its "
                            f"run folder records {str(state.get('plan_hash'))[:16]}; pass "
                            "--overwrite to regenerate it")
    if n != state.get("num_samples"):
        raise GenerateError(f"{output.beton} holds {n} images, its run recorded "
                            f"{state.get('num_samples')}; pass --overwrite to regenerate it")
    journal = output.beton + ".journal"
    if os.path.exists(journal) and not os.path.exists(output.beton + ".partial"):
        os.unlink(journal)                      # the finalize that would have removed it died
    summary = {"status": "done", "recovered": True, "out": output.beton,
               "shard": state["shard"], "plan_hash": state["plan_hash"],
               "rows": state["num_rows"], "written": n, "per_class": {},
               "note": "finished file recovered after a crash between its rename and summary"}
    output.run.write_json(SUMMARY, summary)
    return summary


def foreign_output(output: Output, identity: dict) -> GenerateError:
    """The error for a finished file that is not this run's."""
    state = output.run.read_json(STATE)
    made = f"it was made from {_describe(state)}" if state else "it has no run state beside it"
    return GenerateError(f"{output.beton} exists and was not made from this plan shard ({made}; "
                         f"this run is {_describe(identity)}); pass --overwrite to regenerate "
                         "it, or another --out")


def check_resume(output: Output, identity: dict, settings: dict, prev: dict | None = None) -> None:
    """Refuse to resume a partial made from another plan shard or with other settings.

    ``prev``: the recorded run (``state.json`` unless given: the journal's job record, read
    under the writer's lock, is the authoritative copy)."""
    prev = output.run.read_json(STATE) if prev is None else prev
    if prev is None:
        raise GenerateError(f"a partial .beton exists but {output.run.file(STATE)} does not: "
                            "cannot tell which plan it belongs to; pass --overwrite to start over")
    if not _same_rows(prev, identity):
        raise GenerateError(
            f"refusing to resume: the partial output was made from {_describe(prev)}, this run "
            f"is {_describe(identity)}. Use the same plan, --shard and --limit, another --out, "
            "or --overwrite to start over")
    _check_settings(output, prev, settings, "resume")


def job_record(identity: dict, settings: dict) -> dict:
    """What the writer keeps in its journal (``BetonWriter(job=...)``), as JSON reads it back."""
    return json.loads(json.dumps({**identity, "settings": settings}))


def check_run_dir(output: Output, resuming: bool, overwrite: bool) -> None:
    """Refuse a run folder that is not ours (before anything is touched)."""
    path = output.run_dir
    if resuming or overwrite or not os.path.isdir(path) or not os.listdir(path):
        return
    if not os.path.exists(output.run.file(STATE)):
        raise GenerateError(f"{path} exists and is not a synthclone run folder; move it away or "
                            "choose another --out")


def make_run_dir(output: Output, resuming: bool) -> None:
    """Create the run folder (under the writer's lock): kept when resuming, else emptied."""
    path = output.run_dir
    if resuming or not os.path.isdir(path) or not os.listdir(path):
        os.makedirs(path, exist_ok=True)
        return
    RunDir.create(path, overwrite=True)
