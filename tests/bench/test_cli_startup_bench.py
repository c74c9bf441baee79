"""``python -m bench cli_startup`` runs and reports the issue's two figures (never asserted)."""
import math

from bench import cli_startup


def test_cli_startup_bench_runs_and_reports():
    res = cli_startup.main(["--quick", "--min-seconds", "0.01"])
    for key in ("help_s", "plan_help_s", "help_vs_python_floor", "plan_help_vs_python_floor"):
        assert res[key] > 0 and math.isfinite(res[key]), key
    assert set(res["methods"]) == {cli_startup.PYTHON_FLOOR, cli_startup.HELP,
                                   cli_startup.PLAN_HELP}
    assert isinstance(res["stable"], bool)


def test_every_command_is_measured_without_quick():
    from engine.cli import COMMANDS

    names = cli_startup.methods()
    assert all(f"synthclone {c} --help" in names for c in COMMANDS)
