"""engine/config.py: flags from a dataclass, resolution order, sections, 'none', one validation."""
import dataclasses

import pytest

from engine.config import (ArgumentParser, add_config_args, add_config_file_args,
                           config_from_args, load_config)
from engine.errors import ConfigError


@dataclasses.dataclass
class Toy:
    steps: int = 50
    """Denoising steps."""
    size: int | None = 256
    """Longest side; None keeps it."""
    rate: float = 0.5
    """A rate in (0, 1]."""
    progress: bool = False
    """Show a progress bar."""

    def __post_init__(self):
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")


@dataclasses.dataclass
class Other:
    model: str = "tiny"
    """Which model."""


def parser(**kw):
    p = ArgumentParser(prog="toy")
    add_config_file_args(p, "toy")
    add_config_args(p, Toy, **kw)
    return p


def test_resolution_order_file_set_flags(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("toy:\n  steps: 7\n  rate: 0.25\n  size: 64\nother:\n  model: big\n")
    args = parser().parse_args(["--config", str(y), "--set", "steps=8", "--set", "size=32",
                                "--size", "16"])
    cfg = config_from_args(Toy, args, section="toy")
    assert (cfg.steps, cfg.size, cfg.rate) == (8, 16, 0.25)   # --set > file, flag > --set


def test_command_defaults_apply_before_the_file_and_show_in_help(tmp_path, capsys):
    p = parser(defaults={"progress": True})
    assert config_from_args(Toy, p.parse_args([]), section="toy").progress is True
    assert config_from_args(Toy, p.parse_args(["--no-progress"]), section="toy").progress is False
    y = tmp_path / "c.yaml"
    y.write_text("toy:\n  progress: false\n")
    assert config_from_args(Toy, p.parse_args(["--config", str(y)]), section="toy").progress \
        is False
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    assert "Show a progress bar. [default: True]" in " ".join(capsys.readouterr().out.split())


def test_none_sets_an_optional_number_to_none():
    cfg = config_from_args(Toy, parser().parse_args(["--size", "none"]), section="toy")
    assert cfg.size is None
    assert config_from_args(Toy, parser().parse_args([]), section="toy").size == 256


def test_one_validation_after_all_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("toy:\n  rate: 5\n")       # invalid alone, fixed by the flag: accepted
    args = parser().parse_args(["--config", str(y), "--rate", "0.5"])
    assert config_from_args(Toy, args, section="toy").rate == 0.5
    with pytest.raises(ConfigError, match="rate must be in"):
        config_from_args(Toy, parser().parse_args(["--config", str(y)]), section="toy")


def test_errors_are_config_errors(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("steps: 3\n")
    with pytest.raises(ConfigError, match="no 'toy:' section"):
        load_config(Toy, str(y), section="toy")
    y.write_text("toy:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="stepz.*valid: steps, size, rate, progress"):
        load_config(Toy, str(y), section="toy")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config_from_args(Toy, parser().parse_args(["--set", "steps"]), section="toy")
    with pytest.raises(ConfigError, match="directory"):
        load_config(Toy, str(tmp_path), section="toy")


def test_two_configs_in_one_command_read_only_their_flags():
    p = ArgumentParser(prog="two")
    add_config_args(p, Toy, section="toy")
    add_config_args(p, Other, section="other")
    args = p.parse_args(["--steps", "3", "--model", "big"])
    assert config_from_args(Toy, args, section="toy").steps == 3
    assert config_from_args(Other, args, section="other").model == "big"


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--rate", "nan"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "finite" in err and "toy --help" in err


@pytest.mark.parametrize("argv, message", [
    (["classes", "--limit", "-1"], "argument --limit: must be >= 0 (0 shows all), got -1"),
    (["classes", "--limit", "2.5"], "argument --limit: expected a whole number, got '2.5'"),
    (["inspect", "x.beton", "--grid-rows", "0"], "argument --grid-rows: must be >= 1, got 0"),
    (["inspect", "plan.jsonl", "--examples", "-1"], "argument --examples: must be >= 0, got -1"),
    (["plan", "--examples", "-2"], "argument --examples: must be >= 0, got -2"),
])
def test_whole_number_flags_share_one_parser_and_message(argv, message, capsys):
    """int_at_least / positive_int: every count flag refuses bad values the same way."""
    from engine.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"synthclone {argv[0]}: error: {message}" in err
