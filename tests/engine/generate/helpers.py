"""Small plans built in code (no WordNet) and readers for the generate tests."""
from __future__ import annotations

from engine.plan import Plan, PlanRow, plan_from_rows, row_seed

CLASSES = [(0, "n01440764", "tench"), (1, "n01443537", "goldfish"), (2, "n01484850", "great white shark")]


def make_plan(per_class: int = 4, steps: int = 4, size: int = 64, sampler: str = "ddim",
              guidance: float = 7.5, seed: int = 0, classes=CLASSES, **row_kw) -> Plan:
    rows = []
    for label, wnid, name in classes:
        for k in range(per_class):
            sid = len(rows)
            rows.append(PlanRow(sample_id=sid, label=label, wnid=wnid, recipe="c",
                                prompt=f"a photo of a {name}" if k % 2 else name,
                                seed=row_seed(seed, sid), guidance=guidance, steps=steps,
                                height=size, width=size, sampler=sampler, **row_kw))
    return plan_from_rows(rows, config={"seed": seed}, version="test")


def read_all(path: str) -> dict:
    """sample_id -> (label, decoded image, encoded bytes, prompt) via the project's reader."""
    from loaders.beton import BetonReader

    out = {}
    with BetonReader(path) as r:
        for i in range(len(r)):
            d = r.read(i)
            out[int(d["sample_id"])] = (int(d["label"]), d["image"], bytes(r.encoded(i, "image")[0]),
                                        bytes(d["prompt"]).decode())
    return out
