"""Every ``synthclone`` command works one way (issue #8 items 2-3): one bad input is one line on
stderr and exit code 2 (no traceback); flags that mean one thing have one name and one meaning
in every command's ``--help``; piping into ``head`` ends quietly."""
import os
import re
import subprocess
import sys

import pytest

from engine.cli import COMMANDS, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One bad input per command (a missing file or a bad value); {tmp} is a fresh folder.
BAD_INPUT = {
    "classes": ["classes", "{tmp}/missing/classes.txt"],
    "plan": ["plan", "--classes", "tench", "--steps", "0", "--out", "{tmp}/plan.jsonl"],
    "generate": ["generate", "{tmp}/missing.jsonl", "--out", "{tmp}/clone.beton"],
    "pack": ["pack", "{tmp}/missing_folder", "--out", "{tmp}/real.beton"],
    "merge": ["merge", "{tmp}/a.beton", "{tmp}/b.beton", "--out", "{tmp}/m.beton"],
    "inspect": ["inspect", "{tmp}/missing.beton"],
    "export": ["export", "{tmp}/missing.beton", "--out", "{tmp}/images"],
    "recipes": ["recipes", "--limit", "3"],
    "meanings": ["meanings", "--classes", "tench", "--images", "{tmp}/missing",
                 "--clip-pretrained", "w.bin", "--out", "{tmp}/m.json"],
    "demo": ["demo", "--out", "{tmp}/demo", "--images-per-class", "0"],
    "eval": ["eval", "{tmp}/missing.pt", "--sets", "imagenet-val={tmp}/val", "--out", "{tmp}/e"],
    "eval-data": ["eval-data", "{tmp}/missing.beton", "--out", "{tmp}/d"],
    "report": ["report", "{tmp}/missing", "--out", "{tmp}/r"],
    "train": ["train", "{tmp}/missing.yaml", "--out", "{tmp}/run"],
}


def run(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300, **kw)


def assert_one_line_exit_2(res, name):
    assert res.returncode == 2, (name, res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"synthclone {name}: error: "), lines


def test_every_command_has_a_bad_input_case():
    missing = sorted(set(COMMANDS) - set(BAD_INPUT))
    assert not missing, f"add a bad-input case for {missing} to BAD_INPUT"


@pytest.mark.timeout(600)
def test_one_bad_input_is_one_line_and_exit_2(tmp_path):
    """All commands in parallel subprocesses (the real entry point, the real stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {}
    for name in COMMANDS:
        args = [a.format(tmp=tmp_path / name) for a in BAD_INPUT[name]]
        procs[name] = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=ROOT,
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=500)
        assert_one_line_exit_2(subprocess.CompletedProcess([], proc.returncode, "", err), name)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unknown_flag_is_one_line_and_exit_2(name, capsys):
    assert main([name, "--no-such-flag"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"synthclone {name}: error: ")


@pytest.mark.parametrize("error", ["engine.catalog.wordnet:WordNetUnavailable",
                                   "engine.prompts.ambiguity:AmbiguityError",
                                   "engine.prompts.llm:LLMError", "engine.clip:ClipLoadError",
                                   "loaders.files:ImageFolderError"])
def test_user_errors_from_deep_inside_are_one_line(error, monkeypatch, capsys):
    import importlib

    module, cls = error.split(":")
    exc = getattr(importlib.import_module(module), cls)

    def fail(*a, **k):
        raise exc("what was wrong;\nwhat to do")

    monkeypatch.setattr("engine.catalog.classes.get_class_set", fail)
    assert main(["classes", "imagenet100"]) == 2
    err = capsys.readouterr().err
    assert err == "synthclone classes: error: what was wrong; what to do\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(*a, **k):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr("engine.catalog.classes.get_class_set", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["classes", "imagenet100"])


def test_piping_into_head_exits_quietly():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "classes", "imagenet1k",
                             "--limit", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()                      # what `| head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and first.startswith(b"imagenet1k: 1000 classes")
    assert err == "", err


# ----------------------------------------------------------------------------- --help


def parse_help(text: str) -> dict:
    """``{flag: (names, takes_value, help)}`` from an argparse ``--help`` text."""
    flags, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (-{1,2}\S.*?)(?:\s{2,}(\S.*))?$", line)
        if m:
            names, takes_value = set(), False
            for part in m.group(1).split(", "):
                name, _, metavar = part.partition(" ")
                names.add(name)
                takes_value |= bool(metavar)
            current = [names, takes_value, m.group(2) or ""]
            for name in names:
                if name.startswith("--") and not name.startswith("--no-"):
                    flags[name] = current
        elif current is not None and line.startswith("    ") and line.strip():
            current[2] += " " + line.strip()
        else:
            current = None
    return {k: (frozenset(v[0]), v[1], " ".join(v[2].split())) for k, v in flags.items()}


@pytest.fixture(scope="module")
def helps():
    """Every command's --help, parsed (wide columns: one line per option where it fits)."""
    import contextlib
    import io

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "200")
        for name in COMMANDS:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main([name, "--help"]) == 0
            out[name] = parse_help(buf.getvalue())
    return out


# Shared flags whose help is worded per command: the words each help must contain.
SHARED = {
    "--out": ({"--out", "-o"}, True, "output"),
    "--overwrite": ({"--overwrite"}, False, "replace"),
    "--progress": ({"--progress", "--no-progress"}, False, "progress bar"),
    "--config": ({"--config"}, True, "yaml"),
    "--set": ({"--set"}, True, "option"),
    "--workers": ({"--workers"}, True, "thread"),
    "--store-size": ({"--store-size"}, True, "longest side"),
    "--seed": ({"--seed"}, True, "seed"),
    "--device": ({"--device"}, True, "cuda"),
    "--batch-size": ({"--batch-size"}, True, "batch"),
    "--classes": ({"--classes"}, True, "imagenet100"),
    "--clip-model": ({"--clip-model"}, True, "open_clip"),
    "--clip-pretrained": ({"--clip-pretrained"}, True, "weights file"),
    "--llm-url": ({"--llm-url"}, True, "server"),
    "--llm-model": ({"--llm-model"}, True, "model"),
    "--llm-retries": ({"--llm-retries"}, True, "attempts"),
    "--llm-timeout": ({"--llm-timeout"}, True, "seconds"),
    "--images-per-class": ({"--images-per-class"}, True, "images"),
    "--compact-labels": ({"--compact-labels", "--no-compact-labels"}, False,
                         "instead of keeping imagenet-1k"),
    "--json": ({"--json"}, False, "json"),
    "--jpeg-quality": ({"--jpeg-quality"}, True, "jpeg quality"),
    "--limit": ({"--limit"}, True, "0 = all"),
}
HIDDEN_OLD_SPELLINGS = ("--quiet", "--max-resolution", "--clip-checkpoint", "--writer-workers",
                        "--multiplier", "--max-classes", "--per-class")


def _without_default(text: str) -> str:
    return re.sub(r"\s*\[default:[^\]]*\]", "", text).strip()


def test_shared_flags_have_one_name_and_one_meaning(helps):
    where: dict = {}
    for cmd, flags in helps.items():
        for flag, info in flags.items():
            where.setdefault(flag, {})[cmd] = info
    assert where["--out"].keys() >= {"plan", "generate", "pack", "merge", "meanings", "demo"}
    problems = []
    for flag, by_cmd in where.items():
        if len(by_cmd) < 2:
            continue
        if flag in SHARED:
            names, takes_value, word = SHARED[flag]
            for cmd, (got_names, got_value, help_) in by_cmd.items():
                if got_names != names or got_value != takes_value or word not in help_.lower():
                    problems.append(f"{cmd} {flag}: {sorted(got_names)} value={got_value} "
                                    f"{help_!r} (want {sorted(names)} value={takes_value}, "
                                    f"help saying {word!r})")
        else:  # not worded per command: the same flag, the same help (defaults aside)
            variants = {(n, v, _without_default(h)) for n, v, h in by_cmd.values()}
            if len(variants) != 1:
                problems.append(f"{flag} differs between {sorted(by_cmd)}: {variants}")
    assert not problems, "\n".join(problems)


def test_old_spellings_are_hidden(helps):
    for cmd, flags in helps.items():
        shown = set().union(*(names for names, _, _ in flags.values())) if flags else set()
        assert not shown & set(HIDDEN_OLD_SPELLINGS), (cmd, shown & set(HIDDEN_OLD_SPELLINGS))
    assert "--images-per-class" not in helps["meanings"]   # renamed there (images scored)
    assert "--descriptions-per-class" in helps["plan"] and "--grid-columns" in helps["inspect"]


def test_llm_flag_defaults_in_the_help_are_llmconfig_defaults(helps):
    from engine.prompts.llm import LLMConfig

    cfg = LLMConfig(url="http://x", model="m")
    for cmd in ("plan", "meanings"):
        assert f"[default: {cfg.retries}]" in helps[cmd]["--llm-retries"][2]
        assert f"[default: {cfg.timeout_s:g}]" in helps[cmd]["--llm-timeout"][2]


def test_command_modules_import_no_heavy_library():
    """Fast --help: heavy libraries are imported inside main, after parsing (issue #15)."""
    import json

    modules = sorted({module for module, _, _ in COMMANDS.values()})
    heavy = ("torch", "diffusers", "transformers", "open_clip", "ffcv", "cv2", "numba", "timm")
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, check=True, timeout=120)
    assert json.loads(out.stdout) == []
