"""A plan is the same bytes in every process (issue #10 item 1): built in subprocesses under
several PYTHONHASHSEED values, for every recipe, the plan files must be identical.

The class list holds ImageNet classes with two hypernyms (nltk keeps a synset's pointers in a
set, so "c, h_c" once followed string hashing), an ambiguous name resolved by meanings, and the
LLM-backed ``cd`` goes through the loopback chat server (the parse of its answers must not
depend on the process either)."""
import json
import os
import subprocess
import sys

import pytest

from .prompts.servers import FakeChatServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# accordion, bakery, baseball, computer keyboard, jean: two hypernyms each; crane (the bird).
CLASSES = "n02672831,n02776631,n02799071,n03085013,n03594734,n02012849"

CHILD = r"""
import json, os, sys
from engine.plan import PlanConfig, build_plan, write_plan
from engine.prompts import accepted_options, recipe_names

out, options = sys.argv[1], json.loads(sys.argv[2])
plans = {name: {name: 1.0} for name in recipe_names()}
plans["cd+sd"] = {"cd": 1.0, "sd": 1.0}
plans["c_hc+c_dc+multiple"] = {"c_hc": 1.0, "c_dc": 2.0, "multiple": 1.0}
for tag, recipes in plans.items():
    taken = set().union(*(accepted_options(n) for n in recipes))
    opts = {k: v for k, v in options.items() if k in taken}
    cfg = PlanConfig(classes=options["classes"], recipes=recipes, images_per_class=5, steps=2,
                     height=64, width=64, recipe_options=opts, seed=11)
    write_plan(build_plan(cfg), os.path.join(out, tag + ".jsonl"))
llm = options["llm"]
cfg = PlanConfig(classes=options["classes"], recipes={"cd": 1.0}, images_per_class=25,
                 steps=2, height=64, width=64, recipe_options=llm, seed=11)
write_plan(build_plan(cfg), os.path.join(out, "cd_llm.jsonl"))
"""


def _recipe_options(tmp_path, places365_file):
    meanings = tmp_path / "meanings.json"
    wnids = CLASSES.split(",")
    meanings.write_text(json.dumps({w: f"meaning of {w}" for w in wnids}))
    return {"classes": CLASSES, "backgrounds": places365_file, "template": "a {c} in snow",
            "meanings": str(meanings)}


@pytest.mark.timeout(600)
def test_plans_are_identical_under_different_string_hash_seeds(tmp_path, places365_file,
                                                               monkeypatch):
    options = _recipe_options(tmp_path, places365_file)
    cache = tmp_path / "cache"
    outputs = {}
    with FakeChatServer("markdown_mix") as server:
        options["llm"] = {"llm_url": server.url, "llm_model": "m", "meanings": options["meanings"]}
        for hash_seed in ("0", "3", "101"):
            out = tmp_path / f"hash{hash_seed}"
            out.mkdir()
            env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=ROOT,
                       SYNTHCLONE_CACHE=str(cache))
            subprocess.run([sys.executable, "-c", CHILD, str(out), json.dumps(options)],
                           cwd=ROOT, env=env, check=True, timeout=500)
            outputs[hash_seed] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    from engine.prompts import recipe_names

    first = outputs["0"]
    assert set(first) == {f"{n}.jsonl" for n in recipe_names()} | {
        "cd+sd.jsonl", "c_hc+c_dc+multiple.jsonl", "cd_llm.jsonl"}
    for hash_seed, files in outputs.items():
        for name, data in files.items():
            assert data == first[name], f"{name} differs between PYTHONHASHSEED=0 and {hash_seed}"
    # the classes with two hypernyms really put both into c_hc (what used to vary)
    rows = [json.loads(ln) for ln in first["c_hc.jsonl"].decode().splitlines()[1:]]
    keyboard = {r["prompt"] for r in rows if r["wnid"] == "n03085013"}
    assert keyboard == {"computer keyboard, keypad, data input device, keyboard"}
