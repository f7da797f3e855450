"""Runs side by side: ``slidescout compare runs/a runs/b ...``.

One row per task, one column group per run (score with its interval, majority vote, n, cost), and
the difference of each run from the first on the samples both finished (paired, so a run that
finished fewer samples is not compared on different questions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from slidescout.errors import SlidescoutError
from slidescout.eval.metrics import score_run
from slidescout.eval.report import RunReport, fmt_ci, fmt_cost, fmt_pct, load_run, write_plots
from slidescout.eval.sample_run import record_key
from slidescout.eval.textfit import print_table

__all__ = ["compare_data", "compare_table", "load_runs", "paired_delta", "print_compare"]


def load_runs(paths: list[str | Path], *, n_bootstrap: int = 1000) -> list[RunReport]:
    if len(paths) < 1:
        raise SlidescoutError("give at least one run directory to compare")
    return [load_run(p, n_bootstrap=n_bootstrap) for p in paths]


def paired_delta(base: RunReport, other: RunReport, task: str) -> tuple[float | None, int]:
    """Score of ``other`` minus ``base`` on the (sample, repeat) pairs both finished for ``task``."""
    a = {record_key(r): r for r in base.finished if r.get("task") == task}
    b = {record_key(r): r for r in other.finished if r.get("task") == task}
    common = a.keys() & b.keys()
    if not common:
        return None, 0
    sa = score_run([a[k] for k in common], n_bootstrap=0).get(task)
    sb = score_run([b[k] for k in common], n_bootstrap=0).get(task)
    if sa is None or sb is None:
        return None, 0
    return sb.value - sa.value, len({k[0] for k in common})


def compare_table(reports: list[RunReport]) -> Any:
    from rich.table import Table

    t = Table(title="Runs side by side (score %, task metric)", title_justify="left")
    t.add_column("task")
    for i, rep in enumerate(reports):
        t.add_column(escape(rep.label), justify="right")
        if i:
            t.add_column(f"Δ vs {reports[0].name}", justify="right")
    tasks = list(dict.fromkeys(task for r in reports for task in r.scores))
    for task in tasks:
        row = [task]
        for i, rep in enumerate(reports):
            s = rep.scores.get(task)
            if s is None:
                row.append("-")
            else:
                maj = f" maj {fmt_pct(s.majority_vote)}" if s.majority_vote is not None else ""
                row.append(
                    f"{fmt_pct(s.value)} {fmt_ci(s.ci_low, s.ci_high)}{maj}\n"
                    f"n={s.n} · {fmt_cost(s.cost_usd, s.n_cost_unknown, s.n_records)}"
                )
            if i:
                d, n = paired_delta(reports[0], rep, task)
                row.append("-" if d is None else f"{100 * d:+.1f} (n={n})")
        t.add_row(*row)
    return t


def compare_data(reports: list[RunReport]) -> dict[str, Any]:
    tasks = list(dict.fromkeys(task for r in reports for task in r.scores))
    out: dict[str, Any] = {
        "runs": [{"run": str(r.path), "agent": r.agent} for r in reports],
        "tasks": {},
    }
    for task in tasks:
        out["tasks"][task] = []
        for i, rep in enumerate(reports):
            s = rep.scores.get(task)
            entry: dict[str, Any] = {
                "run": str(rep.path),
                "score": None if s is None else s.model_dump(mode="json"),
            }
            if i:
                d, n = paired_delta(reports[0], rep, task)
                entry["delta_vs_first"] = d
                entry["n_paired"] = n
            out["tasks"][task].append(entry)
    return out


def print_compare(
    paths: list[str | Path], console: Any = None, *, plots: str | Path | None = None
) -> list[RunReport]:
    from rich.console import Console

    console = console or Console()
    reports = load_runs(paths)
    print_table(console, compare_table(reports))
    if plots:
        for p in write_plots(reports, plots):
            console.print(f"plot: {p}", highlight=False)
    return reports
