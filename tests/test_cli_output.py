"""Output that fits: tables at 80 and 100 columns, the ask panel, ``--version``, help on every option."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import all_commands, run_cli
from rich.console import Console
from rich.table import Table

from slidescout.cli.app import console as cli_console
from slidescout.core.record import ResultRecord
from slidescout.eval.metrics import TaskScore
from slidescout.eval.report import score_table
from slidescout.eval.textfit import print_table, wrap_pairs

TASKS = ["tcga_expert_vqa", "synth_diagnosis_of_a_rather_long_task_name", "gtex"]


def _scores() -> dict[str, TaskScore]:
    return {
        t: TaskScore(
            task=t,
            metric="balanced_accuracy",
            n=12,
            n_records=24,
            repeats=2,
            value=0.5 + i / 10,
            ci_low=0.25,
            ci_high=1.0,
            majority_vote=0.5,
            input_tokens=123_456,
            output_tokens=7890,
            cost_usd=1.2345,
            n_cost_unknown=1 if i == 1 else 0,
            mean_latency_s=12.3,
        )
        for i, t in enumerate(TASKS)
    }


def _render(table: Table, width: int, terminal: bool = False) -> str:
    buf = io.StringIO()
    con = Console(
        file=buf, width=width, force_terminal=terminal, color_system=None, soft_wrap=True
    )  # as the CLI
    print_table(con, table)
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_score_table_never_cuts_a_cell(width: int) -> None:
    out = _render(score_table(_scores()), width)
    assert "…" not in out
    assert all(len(line.rstrip()) <= width for line in out.splitlines())
    for task in TASKS:
        assert task in out  # every task name whole, on one line
    assert out.count("[25.0–100.0]") == 3  # every interval whole
    assert "$1.2345 + 1 unknown" in out and "$3.7035 + 1 unknown" in out


def test_wide_table_is_kept_when_it_fits_and_stacked_when_not() -> None:
    wide = _render(score_table(_scores()), 200)
    assert "┏" in wide and "score % [95% CI]" in wide  # the boxed table at its natural width
    narrow = _render(score_table(_scores()), 80)
    assert "┏" not in narrow
    assert (
        "\ntcga_expert_vqa\n" in narrow
        and "  metric: bal.acc · score % [95% CI]: 50.0 [25.0–100.0]" in narrow
    )


def test_long_text_column_wraps_at_words() -> None:
    t = Table(title="tools")
    for c in ("name", "source", "description"):
        t.add_column(c)
    desc = (
        "Segment and measure the nuclei in a region (colour deconvolution, thresholding, watershed) "
        * 2
    )
    t.add_row("nuclei_morphometry", "builtin", desc)
    out = _render(t, 80)
    assert "nuclei_morphometry" in out and "…" not in out and "watershed)" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_wrap_pairs_keeps_pairs_whole() -> None:
    lines = wrap_pairs(["a: 1", "bb: 22", "c: " + "x" * 30], 20)
    assert lines[0] == "  a: 1 · bb: 22" and all(len(line) <= 20 for line in lines)


def test_version(monkeypatch, capsys) -> None:
    from slidescout import __version__

    code, out, _ = run_cli(capsys, "--version", width=80)
    assert code == 0 and out.strip() == f"slidescout {__version__}"


def test_every_option_of_every_command_has_help() -> None:
    commands = all_commands()  # every command, its module loaded
    missing = [
        f"slidescout {path} {p.name}"
        for path, cmd in commands.items()
        for p in cmd.params
        if not (getattr(p, "help", None) or "").strip()
    ]
    assert len(commands) > 30
    assert missing == []


def test_tools_list_piped_is_one_line_per_tool(monkeypatch, capsys) -> None:
    code, out, _ = run_cli(capsys, "tools", "list", width=80)
    assert code == 0
    lines = out.splitlines()
    assert "slide_zoom  (builtin)" in lines and all(len(line) <= 80 for line in lines)
    assert "┃" not in out


def test_ask_panel_wraps_long_replies_and_keeps_brackets(monkeypatch, capsys) -> None:
    from slidescout.cli.agent_cmd import _print_result

    reply = (
        "Findings: "
        + "tumour cells in sheets " * 20
        + "[bold]not markup[/] openai:x: "
        + "/a/" * 40
        + "END"
    )
    record = ResultRecord(
        sample_id="s", task="ask", n_steps=3, input_tokens=10, output_tokens=5, cost_usd=None
    )
    res = SimpleNamespace(
        choice="Lung squamous cell carcinoma",
        answer=reply,
        status="answered",
        rationale="",
        error=None,
        record=record,
        trace_path=Path("runs/x/traces/s.json"),
        run_dir=Path("runs/x"),
    )
    monkeypatch.setattr(cli_console, "width", 80)
    _print_result(res, False)
    out = capsys.readouterr().out
    flat = "".join(line.strip("│ ") for line in out.splitlines())
    assert "[bold]not markup[/]" in out and "openai:x:" in out and "END" in flat
    assert "Lung squamous cell carcinoma" in out and all(
        len(line) <= 80 for line in out.splitlines()
    )
