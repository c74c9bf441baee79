"""``engine/env.py`` lists every environment variable the tree reads; product code reads them
only through it; the README's table shows the same list."""
import os
import re

import pytest

from engine import env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READS = re.compile(r"""(?:environ\.get|environ\.setdefault|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
                   r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
                   r"""|dict\(os\.environ,\s*([A-Z][A-Z0-9_]*)=""")
INTERPRETER = {"PYTHONPATH", "PYTHONHASHSEED", "PATH", "HOME"}
"""The interpreter's and the shell's own variables, which tests set for child processes."""
PRODUCT_READ = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|in os\.environ")


def _python_files(*tops):
    for top in tops:
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            yield path
            continue
        for d, dirs, files in os.walk(path):
            dirs[:] = [x for x in dirs if not x.startswith(".") and x != "__pycache__"]
            yield from (os.path.join(d, f) for f in files if f.endswith(".py"))


def test_every_variable_the_tree_names_is_listed():
    listed = {v.name for v in env.VARS} | INTERPRETER
    found = {}
    for path in _python_files("engine", "loaders", "bench", "tests", "setup.py"):
        with open(path, encoding="utf-8") as f:
            for m in READS.finditer(f.read()):
                found.setdefault(next(g for g in m.groups() if g), os.path.relpath(path, ROOT))
    assert found, "the scan found nothing: the pattern is broken"
    missing = {name: where for name, where in found.items() if name not in listed}
    assert not missing, f"add these to engine/env.py VARS: {missing}"


def test_product_code_reads_the_environment_only_through_env_py():
    """``engine`` reads through env.py; ``loaders`` cannot import it (its reads are listed)."""
    offenders = []
    for path in _python_files("engine"):
        if path.endswith(os.path.join("engine", "env.py")):
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if PRODUCT_READ.search(line):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{n}")
    assert not offenders, f"read these through engine/env.py: {offenders}"


def test_readme_table_lists_every_variable():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, flags=re.M)
    assert rows == [v.name for v in env.VARS]
    assert "engine/env.py" in readme


def test_typed_accessors(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path))
    assert env.cache_root() == str(tmp_path)
    monkeypatch.setenv("SYNTHCLONE_CACHE", "")
    assert env.cache_root() == os.path.join(os.path.expanduser("~"), ".cache", "synthclone")
    monkeypatch.setenv("SYNTHCLONE_NO_EXT", "0")
    assert env.no_ext() is False
    monkeypatch.setenv("SYNTHCLONE_NO_EXT", "1")
    assert env.no_ext() is True
    monkeypatch.setenv("MY_KEY", "s3cret")
    assert env.secret("MY_KEY") == "s3cret"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert env.local_rank() == 3
    monkeypatch.setenv("LOCAL_RANK", "three")
    with pytest.raises(ValueError, match="LOCAL_RANK='three' is not an integer"):
        env.local_rank()
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(tmp_path))
    assert env.use_project_inductor_cache() == os.path.join(str(tmp_path), "inductor")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == os.path.join(str(tmp_path), "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/else")
    assert env.use_project_inductor_cache() == "/somewhere/else"
