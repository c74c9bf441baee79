"""The README's commands work as written (issue #15 "README statements that don't hold").

**The marker.** A fenced ``bash`` (or ``sh``/``shell``) block whose opening fence comes right
after a line ``<!-- runnable -->`` (blank lines between are allowed) is *runnable*: this test runs
its commands, every runnable block in README order, in one temporary folder, so a later block
may use what an earlier one wrote (``plan.jsonl`` -> ``generate`` -> ``inspect``). A marker that
is not followed by a shell block is an error, so a marker cannot silently stop working. To mark
a new block: put the marker above it and run ``pytest tests/engine/test_readme.py``; add a
stand-in below if the block needs one.

**Stand-ins** (so the whole README runs offline on a CPU in well under a minute):

* :data:`APPENDED` flags are added at the end of every command of that name (argparse: the last
  value wins), e.g. every ``synthclone plan`` gets 2 classes, 2 images per class, 64 px and
  2 steps, whatever the README asks for;
* :data:`FILES` are the files a reader is assumed to have (``categories_places365.txt``,
  ``my_classes.txt``), as small copies in the temporary folder;
* the suite's cache (``tests/conftest.py``: ``SYNTHCLONE_CACHE``, offline hub).

**How a command runs.** Continuation lines (``\\``) are joined and comments dropped. A plain
``synthclone ...`` command runs in this test's process through :func:`engine.cli.main` (the heavy
libraries are imported once, not once per command); anything else (pipes, redirections,
variables, other programs) runs in ``bash -eo pipefail`` with ``synthclone`` defined as a
function that calls ``python -m engine.cli`` with the same stand-ins. A command that exits
non-zero fails the test, naming its README line and showing its output.

Every shell command of the README, runnable or not, must also *parse*: its flags exist
(:func:`test_every_readme_command_parses`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "README.md")
MARKER = "<!-- runnable -->"
SHELL_FENCES = ("bash", "sh", "shell")
TINY_PLAN = ["--classes", "tench,goldfish", "--images-per-class", "2", "--steps", "2",
             "--height", "64", "--width", "64"]
APPENDED = {
    "plan": TINY_PLAN,
    "demo": ["--classes", "tench,goldfish", "--images-per-class", "2", "--steps", "2"],
    "generate": ["--no-progress"],
}
"""Flags appended to every runnable ``synthclone CMD`` (the README's values are overridden)."""
FILES = {
    "categories_places365.txt": "/a/airfield 0\n/b/bus_station/indoor 1\n/c/coast 2\n",
    "my_classes.txt": "n01440764\nsolar panel | a panel of photovoltaic cells | device\n",
}
"""Files the README assumes a reader has, as small stand-ins (the official formats)."""
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "<", ">", ">>", "(", ")", "<<", "2>", "&>"}


@dataclasses.dataclass
class Command:
    line: int           # 1-based line in the README where the command starts
    text: str           # continuation lines joined, comments kept (shlex drops them)


def runnable_blocks(text: str) -> list[tuple[int, list[str]]]:
    """``(line of the opening fence, lines)`` of every marked shell block, in order."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() != MARKER:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = lines[j].strip() if j < len(lines) else ""
        if not (fence.startswith("```") and fence[3:].strip() in SHELL_FENCES):
            raise ValueError(f"README.md:{i + 1}: {MARKER} must be followed by a ```bash block, "
                             f"found {fence or 'the end of the file'!r}")
        k = j + 1
        while k < len(lines) and lines[k].strip() != "```":
            k += 1
        if k == len(lines):
            raise ValueError(f"README.md:{j + 1}: the runnable block is never closed")
        blocks.append((j + 1, lines[j + 1:k]))
        i = k + 1
    return blocks


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Every fenced shell block, marked or not."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```") and fence[3:].strip() in SHELL_FENCES:
            k = i + 1
            while k < len(lines) and lines[k].strip() != "```":
                k += 1
            out.append((i + 1, lines[i + 1:k]))
            i = k
        i += 1
    return out


def commands(fence_line: int, lines: list[str]) -> list[Command]:
    """The commands of a block: continuations joined, blank and comment-only lines skipped."""
    out, pending, start = [], "", None
    for n, raw in enumerate(lines, fence_line + 1):
        if start is None:
            if not raw.strip() or raw.strip().startswith("#"):
                continue
            start = n
        if raw.rstrip().endswith("\\"):  # as bash does: backslash-newline is removed
            pending += raw.rstrip()[:-1]
            continue
        out.append(Command(start, (pending + raw).strip()))
        pending, start = "", None
    if start is not None:
        raise ValueError(f"README.md:{start}: a command ends in a line continuation")
    return out


def plain_argv(text: str) -> list[str] | None:
    """``synthclone``'s arguments if ``text`` is one plain synthclone command, else None."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    if not tokens or tokens[0] != "synthclone":
        return None
    if any(t in SHELL_OPERATORS or "$" in t or "`" in t for t in tokens):
        return None
    return shlex.split(text, comments=True)[1:]


def bash_prelude() -> str:
    cases = "".join(f"    {name}) set -- \"$@\" {shlex.join(flags)};;\n"
                    for name, flags in APPENDED.items())
    return (f"synthclone() {{\n  local cmd=\"$1\"; shift\n  case \"$cmd\" in\n{cases}  esac\n"
            f"  {shlex.quote(sys.executable)} -m engine.cli \"$cmd\" \"$@\"\n}}\n")


def run_in_process(argv: list[str]) -> tuple[int, str]:
    from engine.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main(argv + APPENDED.get(argv[0] if argv else "", []))
    return rc, buf.getvalue()


def run_in_bash(text: str, cwd: str) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    res = subprocess.run(["bash", "-eo", "pipefail", "-c", bash_prelude() + text], cwd=cwd,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=300)
    return res.returncode, res.stdout


# ----------------------------------------------------------------------------- the parser
SAMPLE = """# Title
<!-- runnable -->

```bash
synthclone classes tench   # a comment
# a comment line
synthclone plan --classes imagenet100 \\
    --out p.jsonl
synthclone classes imagenet1k | head -3
```

```bash
synthclone generate p.jsonl --model /models/sd --out x.beton
```
<!-- runnable -->
```bash
ls
```
"""


def test_the_parser_finds_marked_blocks_and_their_commands():
    blocks = runnable_blocks(SAMPLE)
    assert [b[0] for b in blocks] == [4, 16]
    cmds = commands(*blocks[0])
    assert [(c.line, c.text) for c in cmds] == [
        (5, "synthclone classes tench   # a comment"),
        (7, "synthclone plan --classes imagenet100     --out p.jsonl"),
        (9, "synthclone classes imagenet1k | head -3")]
    assert [plain_argv(c.text) for c in cmds] == [
        ["classes", "tench"], ["plan", "--classes", "imagenet100", "--out", "p.jsonl"], None]
    assert plain_argv("ls") is None and plain_argv("synthclone inspect x > out.txt") is None
    assert plain_argv("synthclone classes 'a|b'") == ["classes", "a|b"]  # quoted: plain
    assert len(shell_blocks(SAMPLE)) == 3
    with pytest.raises(ValueError, match="README.md:2: <!-- runnable --> must be followed"):
        runnable_blocks("text\n<!-- runnable -->\n```python\nprint(1)\n```\n")
    with pytest.raises(ValueError, match="never closed"):
        runnable_blocks("<!-- runnable -->\n```bash\nls\n")
    with pytest.raises(ValueError, match="continuation"):
        commands(1, ["synthclone plan \\"])
    joined = commands(1, ["synthclone eval --sets a=/x,\\", "b=/y --out o"])  # inside a word
    assert plain_argv(joined[0].text) == ["eval", "--sets", "a=/x,b=/y", "--out", "o"]


def test_the_readme_has_runnable_blocks_of_the_main_path():
    with open(README, encoding="utf-8") as f:
        blocks = runnable_blocks(f.read())
    names = [(plain_argv(c.text) or ["?"])[0] for b in blocks for c in commands(*b)]
    for expected in ("classes", "recipes", "plan", "generate", "merge", "inspect"):
        assert expected in names, f"no runnable README command uses synthclone {expected}"


# ----------------------------------------------------------------------------- the README
@pytest.mark.timeout(600)
def test_readme_commands_run_in_order(tmp_path, monkeypatch):
    with open(README, encoding="utf-8") as f:
        blocks = runnable_blocks(f.read())
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        for cmd in commands(*block):
            argv = plain_argv(cmd.text)
            rc, output = (run_in_process(argv) if argv is not None
                          else run_in_bash(cmd.text, str(tmp_path)))
            tail = "\n".join(output.strip().splitlines()[-15:])
            assert rc == 0, f"README.md:{cmd.line}: `{cmd.text}` exited {rc}:\n{tail}"


def _parser_of(command: str):
    """The function that builds the argparse parser of ``synthclone COMMAND``, found beside its
    main function by the names our modules use (``get_args_parser``, ``get_X_args_parser``,
    ``X_parser`` for ``X_main``), or None."""
    import importlib

    from engine.cli import COMMANDS

    module, func, _ = COMMANDS[command]
    mod = importlib.import_module(module)
    stem = func.removesuffix("_main")
    names = ("get_args_parser",) if func == "main" else (f"get_{stem}_args_parser",
                                                         f"{stem}_parser")
    return next((getattr(mod, n) for n in names if hasattr(mod, n)), None)


def test_every_readme_command_parses():
    """Flags that do not exist (renamed, never made) fail here even in blocks that cannot run."""
    from engine.cli import COMMANDS

    with open(README, encoding="utf-8") as f:
        text = f.read()
    problems, checked, unparsed = [], 0, set()
    for block in shell_blocks(text):
        for cmd in commands(*block):
            argv = plain_argv(cmd.text)
            if not argv or argv[0] not in COMMANDS or "--help" in argv:
                continue
            get = _parser_of(argv[0])
            if get is None:
                unparsed.add(argv[0])
                continue
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    get().parse_args(argv[1:])
                checked += 1
            except SystemExit:
                problems.append(f"README.md:{cmd.line}: `{cmd.text}`: {err.getvalue().strip()}")
    assert not problems, "\n".join(problems)
    assert checked >= 10
    assert not unparsed, f"commands whose parser this test cannot find: {sorted(unparsed)}"


def test_recipes_lists_only_options_the_plan_command_takes(capsys):
    from engine.cli import main
    from engine.plan_cli import get_args_parser
    from engine.prompts import accepted_options

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    flags = set(get_args_parser()._option_string_actions)
    listed = re.findall(r"^(\S+) .*?\n\s+.*; options: (.*)$", out, re.M)
    assert len(listed) >= 10
    for name, opts in listed:
        for opt in (o.strip() for o in opts.split(",") if o.strip() != "-"):
            if opt.startswith("--set recipe_options."):
                key = opt.removeprefix("--set recipe_options.").removesuffix("=VALUE")
                assert key in accepted_options(name), (name, opt)
            else:
                assert opt.split()[0] in flags, f"{name}: {opt} is not a synthclone plan flag"
