"""Progress of slide generation: one line per slide with counts and an ETA when piped; bars on a TTY."""

from __future__ import annotations

import io
from types import SimpleNamespace

from cli_helpers import all_commands
from rich.console import Console

from slidescout.cli.progress import EvalProgress, fmt_clock, slide_progress
from slidescout.core.record import ResultRecord


def _truth(i: int) -> SimpleNamespace:
    return SimpleNamespace(slide_id=f"synth-{i:03d}")


def test_piped_prints_one_line_per_slide_with_counts_and_eta(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr("slidescout.cli.progress.time.monotonic", lambda: now[0])
    buf = io.StringIO()
    con = Console(file=buf, width=80, color_system=None)
    with slide_progress(con, 3, "3 slides 100x100") as prog:
        prog.on_done(_truth(0))  # kept from an earlier run: costs nothing, no ETA yet
        now[0] = 2.0
        assert prog.on_slide(1, "synth-001") is None
        now[0] = 12.0
        prog.on_done(SimpleNamespace(truth=_truth(1)))  # written in 10 s
        prog.on_slide(2, "synth-002")
        now[0] = 22.0
        prog.on_done(SimpleNamespace(truth=_truth(2)))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "3 slides 100x100:"
    assert lines[1] == "[1/3] synth-000 kept (already there) · elapsed 0:00"
    assert lines[2] == "[2/3] synth-001 written in 10.0 s · elapsed 0:12 · ETA 0:10"
    assert lines[3] == "[3/3] synth-002 written in 10.0 s · elapsed 0:22"
    assert prog.done == 3


def test_terminal_shows_bars_with_eta() -> None:
    buf = io.StringIO()
    con = Console(file=buf, width=100, force_terminal=True, color_system=None)
    with slide_progress(con, 2, "2 slides") as prog:
        step = prog.on_slide(0, "synth-000")
        assert step is not None
        step(0.5)
        prog.on_done(SimpleNamespace(truth=_truth(0)))
        prog.on_slide(1, "synth-001")
        prog.on_done(SimpleNamespace(truth=_truth(1)))
    out = buf.getvalue()
    assert "2 slides" in out and "2/2" in out and "ETA" in out


def test_fmt_clock() -> None:
    assert [fmt_clock(s) for s in (0, 37, 725, 3729)] == ["0:00", "0:37", "12:05", "1:02:09"]


def test_synth_and_eval_synth_share_one_default_size() -> None:
    commands = all_commands()
    synth = next(p for p in commands["synth"].params if p.name == "size")
    eval_synth = next(p for p in commands["eval synth"].params if p.name == "size")
    assert synth.default == eval_synth.default == "16000x12000"


def _eval_progress_line(width: int, records: list[dict]) -> str:
    """The last line the eval progress bar draws on a terminal ``width`` columns wide."""
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=True, color_system=None)
    bar = EvalProgress(con)
    bar.start(200, 0)
    for rec in records:
        bar.sample_started()
        bar.sample_finished(ResultRecord(sample_id="s", task="t", **rec))
    bar.stop()
    return buf.getvalue().split("\r")[-1]


def test_eval_progress_at_80_columns_keeps_count_elapsed_and_eta_first() -> None:
    recs = [{"status": "error", "cost_usd": None, "input_tokens": 123456}] * 6
    line = _eval_progress_line(80, recs)
    assert "6/200" in line and "eta" in line and "0:00:" in line
    assert line.index("6/200") < line.index("eta") < line.index("failed") < line.index("cost")
    assert "6 failed" in line


def test_eval_progress_says_unknown_cost_when_no_price_is_known() -> None:
    unknown = [{"status": "answered", "cost_usd": None, "input_tokens": 10}] * 3
    line = _eval_progress_line(160, unknown)
    assert "cost unknown" in line and "$0.0000" not in line
    mixed = [{"status": "answered", "cost_usd": 0.5, "input_tokens": 10}, *unknown]
    assert "cost $0.5000 (+3 unknown)" in _eval_progress_line(160, mixed)
