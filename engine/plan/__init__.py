"""The generation plan: which image to generate, with which prompt, seed and sampler settings.

A plan is a list of rows ``(sample_id, label, wnid, recipe, prompt, seed, guidance, steps,
height, width, sampler)`` (+ optional ``negative_prompt``, ``init_image``, ``strength``) and a
header holding the resolved :class:`PlanConfig`, the package version and a content hash.

    rows.py   PlanRow, SAMPLERS, check_row, derive_seed / row_seed (a row's seed depends only
              on (master seed, sample_id), so any shard regenerates exactly its images)
    file.py   Plan (header + rows, counts, shards), content_hash, check_shard, plan_from_rows,
              read_plan / write_plan (format number, hash and every row checked on read)
    build.py  PlanConfig and build_plan: class sizes, the split of each class among the
              recipes (split_classes), the recipes' prompts (make_recipes)

Everything public is importable from ``engine.plan`` (``from engine.plan import PlanConfig,
build_plan, read_plan, write_plan``). Determinism: the same config gives a byte-identical plan
file.
"""
from engine.plan.build import (NOTE_ONLY_OPTIONS, CountsRequired, PlanConfig, build_plan,
                               make_recipes, split_classes)
from engine.plan.file import (PLAN_FORMAT, Plan, PlanFileError, check_shard, content_hash,
                              is_plan_file, plan_from_rows, read_plan, write_plan)
from engine.plan.rows import SAMPLERS, SEED_BITS, PlanRow, check_row, derive_seed, row_seed

__all__ = ["PLAN_FORMAT", "SAMPLERS", "SEED_BITS", "NOTE_ONLY_OPTIONS", "Plan", "PlanRow",
           "PlanConfig", "PlanFileError", "CountsRequired", "build_plan", "check_row",
           "check_shard", "content_hash", "derive_seed", "is_plan_file", "make_recipes",
           "plan_from_rows", "read_plan", "row_seed", "split_classes", "write_plan"]
