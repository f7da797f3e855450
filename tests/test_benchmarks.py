"""Benchmarks cannot rot: every ``benchmarks/bench_*.py`` runs in smoke mode (found by glob, so a
new script is covered without editing this file), exits 0 and prints a markdown table; and
``run_all.py`` knows every script and fills every figure block of ``docs/benchmarks.md``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))
TABLE = re.compile(r"^\|.*\|[ \t]*\n\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*$", re.M)
# a text table: three or more lines in a row, each with at least three columns apart by 2+ spaces
TEXT_ROW = re.compile(r"^\s*\S.*?\S {2,}\S.*?\S {2,}\S")


def prints_a_table(out: str) -> bool:
    """A markdown table, or an aligned text table (``run_all.py`` fences that one as text)."""
    if TABLE.search(out):
        return True
    run = 0
    for line in out.splitlines():
        run = run + 1 if TEXT_ROW.match(line) else 0
        if run >= 3:
            return True
    return False


sys.path.insert(0, str(BENCH))
import run_all  # noqa: E402


def _env(tmp_path: Path) -> dict[str, str]:
    src = str(ROOT / "src")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        "SLIDESCOUT_BENCH_DIR": str(tmp_path),  # generated inputs stay in this test's folder
        "SLIDESCOUT_BENCH_CACHE": str(tmp_path),
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-real-key",
    }


def test_scripts_are_found() -> None:
    assert {"bench_loop", "bench_eval", "bench_fetch", "bench_startup"} <= {p.stem for p in SCRIPTS}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_runs_in_smoke_mode(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert prints_a_table(proc.stdout), f"no table in:\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_run_all_plans_every_script_full_and_smoke() -> None:
    full = run_all.plan(smoke=False, only=None)
    assert {r.script for r in full} == {p.stem for p in SCRIPTS}
    smoke = run_all.plan(smoke=True, only=None)
    assert sorted(r.script for r in smoke) == sorted(p.stem for p in SCRIPTS)
    assert all(r.args == ("--smoke",) for r in smoke)
    assert len({r.key for r in full}) == len(full)
    # --only: a key selects its run alone; the smoke plan has one run per script
    assert [r.key for r in run_all.plan(False, {"bench_experts-medium"})] == [
        "bench_experts-medium"
    ]
    assert [r.key for r in run_all.plan(False, {"bench_loop"})] == ["bench_loop"]


def test_the_doc_has_a_block_for_every_run_and_no_other() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    keys = re.findall(r"<!-- run_all: ([\w-]+) -->", doc)
    ends = re.findall(r"<!-- /run_all: ([\w-]+) -->", doc)
    assert keys == ends
    assert sorted(keys) == sorted({"machine", *(r.key for r in run_all.plan(False, None))})
    for key in keys:  # each block is what run_all wrote: its command first
        start = doc.index(f"<!-- run_all: {key} -->")
        body = doc[start:].split("\n", 1)[1]
        first = body.split("\n", 1)[0]
        assert first.startswith("- **Written:**" if key == "machine" else "`python3 benchmarks/")


def test_table_detection() -> None:
    assert prints_a_table("x\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert prints_a_table("views  wall  CPU\n  ours  12.1  21.2\n  giant  128.5  128.5\n")
    assert not prints_a_table("smoke: every path ran\n")
    assert run_all.as_markdown("| a |\n|---|\n") == "| a |\n|---|"
    assert run_all.as_markdown("a  b  c\n") == "```text\na  b  c\n```"


def test_put_block_replaces_or_appends() -> None:
    doc = "# B\n\n<!-- run_all: a -->\nold\n<!-- /run_all: a -->\n\ntext after\n"
    new = run_all.put_block(doc, "a", "new $1 \\1 figures")
    assert "old" not in new and "new $1 \\1 figures" in new and new.endswith("text after\n")
    added = run_all.put_block(new, "b", "more")
    assert added.count("<!-- run_all: b -->") == 1 and "## b" in added


@pytest.mark.timeout(600)
def test_run_all_writes_a_dated_machine_described_block(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# B\n\n<!-- run_all: bench_fetch -->\nstale\n<!-- /run_all: bench_fetch -->\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--smoke", "--only", "bench_fetch"]
        + ["--doc", str(doc)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = doc.read_text()
    assert "stale" not in text
    assert re.search(r"`python3 benchmarks/bench_fetch.py --smoke`: \d{4}-\d\d-\d\d, load", text)
    assert TABLE.search(text)
    assert re.search(r"\*\*CPU:\*\* \d+ cores", text) and "load average" in text
