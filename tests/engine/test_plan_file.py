"""Plan files are checked on read (issue #9 items 12-13): format, hash (shards too), row values,
malformed files; and the plan contracts have one home (hash, shard check, sampler names)."""
import json

import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.plan import (PLAN_FORMAT, SAMPLERS, PlanConfig, PlanFileError, PlanRow, check_shard,
                         content_hash, plan_from_rows, read_plan, row_seed, write_plan)


def rows(n=4, **kw):
    d = dict(label=0, wnid="n01440764", recipe="c", prompt="tench", guidance=7.5, steps=4,
             height=64, width=64, sampler="ddim")
    d.update(kw)
    return [PlanRow(sample_id=i, seed=row_seed(0, i), **{**d, "label": i % 2}) for i in range(n)]


@pytest.fixture()
def plan_file(tmp_path):
    path = tmp_path / "plan.jsonl"
    write_plan(plan_from_rows(rows()), str(path))
    return path


def edit(path, lineno, fn):
    """Apply ``fn`` to the parsed JSON of line ``lineno`` (1-based) and write it back."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = json.dumps(fn(json.loads(lines[lineno - 1])), sort_keys=True,
                                   separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")


def test_content_hash_is_sha256_of_the_row_lines():
    import hashlib

    rs = rows()
    want = hashlib.sha256("\n".join(r.to_json() for r in rs).encode()).hexdigest()
    assert content_hash(rs) == want
    assert content_hash(rs[:-1]) != want and plan_from_rows(rs).hash == want


def test_generate_takes_its_sampler_names_from_the_plan():
    import engine.generate.schedulers as schedulers

    assert schedulers.SAMPLERS is SAMPLERS  # imported, not a second list


@pytest.mark.parametrize("bad", [(1, 1), (-1, 2), (0, 0), (True, 2), (0.5, 2)])
def test_check_shard_refuses_impossible_shards(bad):
    with pytest.raises(ConfigError, match="shard"):
        check_shard(*bad)
    assert check_shard(1, 2) == (1, 2)


def test_guidance_nan_and_inf_are_refused(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    for value in ("nan", "inf", "-inf"):
        assert main(["plan", "--classes", "tench", f"--guidance={value}", "--out", str(out)]) == 2
        assert "finite" in capsys.readouterr().err
    for value in (".nan", ".inf"):  # the same through --set (YAML spellings)
        assert main(["plan", "--classes", "tench", "--set", f"guidance={value}",
                     "--out", str(out)]) == 2
        assert "finite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="guidance"):
        PlanConfig(guidance=float("nan"))
    assert not out.exists()


def test_hand_edited_rows_of_a_shard_are_refused(tmp_path):
    shard = plan_from_rows(rows(6)).shard(1, 2)
    path = tmp_path / "shard.jsonl"
    write_plan(shard, str(path))
    assert read_plan(str(path)).rows == shard.rows
    edit(path, 2, lambda r: {**r, "prompt": "goldfish"})
    with pytest.raises(PlanFileError, match="hash mismatch"):
        read_plan(str(path))
    edit(path, 1, lambda h: {**h, "header": {k: v for k, v in h["header"].items()
                                             if k != "shard_hash"}})
    with pytest.raises(PlanFileError, match="shard_hash"):
        read_plan(str(path))


def test_a_shard_key_in_a_full_plan_does_not_skip_the_hash(plan_file):
    edit(plan_file, 1, lambda h: {**h, "header": {**h["header"], "shard": [0, 1]}})
    with pytest.raises(PlanFileError, match="shard_hash"):
        read_plan(str(plan_file))


def test_format_number_is_checked(plan_file):
    edit(plan_file, 1, lambda h: {**h, "synthclone_plan": PLAN_FORMAT + 1})
    with pytest.raises(PlanFileError, match="newer.*upgrade"):
        read_plan(str(plan_file))
    edit(plan_file, 1, lambda h: {**h, "synthclone_plan": 0})
    with pytest.raises(PlanFileError, match="format 0"):
        read_plan(str(plan_file))


def test_writer_version_must_be_recorded(plan_file):
    edit(plan_file, 1, lambda h: {**h, "header": {k: v for k, v in h["header"].items()
                                                  if k != "version"}})
    with pytest.raises(PlanFileError, match="version"):
        read_plan(str(plan_file))


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"height": 60}, "height"),
    ({"sampler": "euler"}, "sampler"), ({"guidance": -1}, "guidance"),
    ({"label": -3}, "label"), ({"prompt": 7}, "prompt"), ({"strength": 0.5}, "init_image"),
    ({"colour": "red"}, "unknown key"),
])
def test_bad_row_values_are_refused_even_without_the_hash(plan_file, change, message):
    edit(plan_file, 3, lambda r: {**r, **change})
    for check_hash in (True, False):
        with pytest.raises(PlanFileError, match=rf"plan.jsonl:3: bad plan row.*{message}"):
            read_plan(str(plan_file), check_hash=check_hash)


def test_missing_field_nan_and_duplicate_ids(plan_file):
    text = plan_file.read_text().splitlines()
    plan_file.write_text("\n".join(text[:2] + [text[2].replace('"guidance":7.5', '"guidance":NaN')]
                                   + text[3:]) + "\n")
    with pytest.raises(PlanFileError, match="NaN"):
        read_plan(str(plan_file), check_hash=False)
    edit(plan_file, 3, lambda r: {k: v for k, v in r.items() if k != "seed"} | {"guidance": 7.5})
    with pytest.raises(PlanFileError, match="missing seed"):
        read_plan(str(plan_file), check_hash=False)
    edit(plan_file, 3, lambda r: {**r, "seed": 1, "sample_id": 0})
    with pytest.raises(PlanFileError, match="sample_id 0 appears more than once"):
        read_plan(str(plan_file), check_hash=False)


@pytest.mark.parametrize("content, message", [
    ('{"synthclone_plan": 1}\n', "no \"header\""),
    ('[1, 2]\n', "not a synthclone plan file"),
    ('{"synthclone_plan": 1, "header": [1]}\n', "no \"header\""),
    ("", "not a JSON header"),
    ("\x00\xff binary", "not"),
])
def test_malformed_headers(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(PlanFileError, match=message):
        read_plan(str(path))


def test_a_row_that_is_a_json_array(plan_file):
    lines = plan_file.read_text().splitlines()
    plan_file.write_text("\n".join(lines[:2] + ["[1, 2, 3]"] + lines[3:]) + "\n")
    with pytest.raises(PlanFileError, match=":3: bad plan row.*JSON object"):
        read_plan(str(plan_file), check_hash=False)


def test_a_folder_given_as_the_plan(tmp_path):
    with pytest.raises(PlanFileError, match="is a folder"):
        read_plan(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        read_plan(str(tmp_path / "missing.jsonl"))


def test_malformed_plans_are_one_line_exit_2_in_the_cli(tmp_path, plan_file, capsys):
    """generate reads the plan before loading any model: each case is one line, exit 2."""
    edit(plan_file, 3, lambda r: {**r, "steps": 0})
    for bad in (str(plan_file), str(tmp_path)):
        assert main(["generate", bad, "--out", str(tmp_path / "x.beton")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("synthclone generate: error:") and err.count("\n") == 1
    assert not (tmp_path / "x.beton").exists()
