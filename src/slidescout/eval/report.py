"""Reports of a run: per-task score tables, trace and grounding summaries, and plots.

- :func:`load_run`: a run directory's manifest and records, scored (finished records only).
- :func:`score_table`, :func:`trace_table`, :func:`grounding_table`: rich tables.
- :func:`print_report`: all tables, as ``slidescout report RUN`` prints them.
- :func:`write_plots`: matplotlib figures (accuracy per task with its interval, accuracy against
  steps used, cost per correct answer), imported lazily with the Agg backend.

Numbers: the task's metric (accuracy or balanced accuracy) as the mean of runs with a
percentile-bootstrap CI over samples, beside it the bootstrap mean ± std (how the GIANT paper
reports), the majority vote over repeats (the paper's "×5") with its bootstrap mean ± std, n
samples, unparsed answers and failed samples (both counted wrong), tokens, cost (``unknown`` when a
model has no price) and time per sample. Under the table: PANDA replies scored ISUP 0 because they
named no grade, and accuracy with empty replies left out (MedFrameQA's official score).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from slidescout.errors import SlidescoutError
from slidescout.eval.costs import cost_summary, cost_table
from slidescout.eval.metrics import ResultRecord, TaskScore, score_run
from slidescout.eval.sample_run import is_finished
from slidescout.eval.textfit import print_table
from slidescout.traces.rundir import RunDir

__all__ = [
    "RunReport",
    "fmt_cost",
    "fmt_pct",
    "grounding_table",
    "failure_line",
    "load_run",
    "print_report",
    "report_data",
    "score_table",
    "trace_table",
    "write_plots",
]


@dataclass
class RunReport:
    """A run directory, read and scored."""

    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]  # every record (last per key)
    finished: list[dict[str, Any]]
    scores: dict[str, TaskScore]
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json, if the runner wrote one

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def agent(self) -> dict[str, Any]:
        cfg = self.manifest.get("config", {})
        return cfg.get("agent", cfg)

    @property
    def label(self) -> str:
        a = self.agent
        bits = [str(a.get("model") or "?"), str(a.get("preset") or "")]
        return f"{self.name} ({' · '.join(b for b in bits if b)})"

    @property
    def unfinished(self) -> list[dict[str, Any]]:
        return [r for r in self.records if not is_finished(r)]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Finished records whose sample failed (status ``error``): scored as wrong answers."""
        return [r for r in self.finished if r.get("status") == "error"]


def failure_line(rep: RunReport) -> str | None:
    """One line on the failed samples and their most common error, or None when none failed."""
    failed = rep.failed
    if not failed:
        return None
    errors = Counter(str(r.get("error") or "no message")[:160] for r in failed)
    top, n = errors.most_common(1)[0]
    more = f" ({len(errors) - 1} other messages)" if len(errors) > 1 else ""
    return (
        f"{len(failed)} of {len(rep.finished)} finished samples failed (status error); "
        f"most common error ({n}x): {top}{more}"
    )


def _no_records_reason(path: Path) -> str:
    """Why a run has no records: no file, an empty file, or lines that are not records."""
    if not path.exists():
        return f"{path.parent} has no results yet (no results.jsonl)"
    lines = [
        ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
    ]
    if not lines:
        return f"{path.parent} has no results yet (results.jsonl is empty)"
    return (
        f"{path} is malformed: none of its {len(lines)} lines is a JSON record "
        f"(line 1 starts {lines[0][:60]!r})"
    )


def load_run(path: str | Path, *, n_bootstrap: int = 1000) -> RunReport:
    p = Path(path)
    if p.is_file() and p.name == "results.jsonl":
        p = p.parent
    run = RunDir.open(p)
    manifest = run.manifest  # a damaged manifest says so first
    records = run.results()
    if not records:
        raise SlidescoutError(_no_records_reason(p / "results.jsonl"))
    finished = [r for r in records if is_finished(r)]
    scores = score_run(finished, n_bootstrap=n_bootstrap) if finished else {}
    summary: dict[str, Any] = {}
    sp = p / "summary.json"
    if sp.exists():
        try:
            summary = json.loads(sp.read_text(encoding="utf-8"))
        except ValueError:
            summary = {}
    return RunReport(
        path=p,
        manifest=manifest,
        records=records,
        finished=finished,
        scores=scores,
        summary=summary,
    )


# ---- formatting -----------------------------------------------------------------------------


def fmt_pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return ""
    return f"[{fmt_pct(lo)}–{fmt_pct(hi)}]"


def fmt_cost(known: float, n_unknown: int, n_total: int) -> str:
    """``$1.2345``; ``unknown`` when no record has a price; ``$1.23 + 4 unknown`` when some lack one."""
    if n_total and (n_unknown >= n_total or (n_unknown and known == 0)):
        return "unknown"
    text = f"${known:.4f}" if known < 10 else f"${known:,.2f}"
    return text + (f" + {n_unknown} unknown" if n_unknown else "")


def fmt_tokens(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1e6:.0f}M"
    if n >= 100_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def _by_task(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r.get("task")), []).append(r)
    return out


# ---- tables ---------------------------------------------------------------------------------


def score_table(
    scores: dict[str, TaskScore],
    records: list[dict[str, Any]] | None = None,
    *,
    title: str = "Scores",
) -> Any:
    """Per task: metric, mean of runs [CI], majority vote, n, unparsed answers, failed samples, tokens,
    cost and time. Unparsed answers and failed samples both count as wrong."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in (
        "task",
        "metric",
        "score % [95% CI]",
        "boot mean ± std",
        "majority % (± std)",
        "n",
        "unparsed",
        "errors",
        "tokens",
        "cost",
        "s/sample",
    ):
        t.add_column(col, justify="left" if col in ("task", "metric") else "right")
    by_task = _by_task(records or [])
    for task, s in scores.items():
        recs = by_task.get(task, [])
        maj = f"{fmt_pct(s.majority_vote)}" if s.majority_vote is not None else "-"
        if s.majority_vote is not None and s.majority_boot_std is not None:
            maj += f" (±{100 * s.majority_boot_std:.1f})"
        lats = [r["latency_s"] for r in recs if r.get("latency_s") is not None]
        lat = statistics.fmean(lats) if lats else s.mean_latency_s
        n = f"{s.n}×{s.repeats}" if s.repeats > 1 else str(s.n)
        t.add_row(
            task,
            "bal.acc" if s.metric == "balanced_accuracy" else "acc",
            f"{fmt_pct(s.value)} {fmt_ci(s.ci_low, s.ci_high)}".strip(),
            fmt_mean_std(s.boot_mean, s.boot_std),
            maj,
            n,
            str(_unparsed(s, recs)),
            str(s.n_errors),
            fmt_tokens(s.input_tokens + s.output_tokens),
            fmt_cost(s.cost_usd, s.n_cost_unknown, s.n_records),
            f"{lat:.1f}" if lat is not None else "-",
        )
    if len(scores) > 1:
        allr = list(scores.values())
        n_rec = sum(s.n_records for s in allr)
        vals = [s.value for s in allr if not math.isnan(s.value)]
        t.add_section()
        t.add_row(
            "all (macro)",
            "",
            fmt_pct(statistics.fmean(vals) if vals else None),
            "",
            "",
            str(sum(s.n for s in allr)),
            str(sum(_unparsed(s, by_task.get(t, [])) for t, s in scores.items())),
            str(sum(s.n_errors for s in allr)),
            fmt_tokens(sum(s.input_tokens + s.output_tokens for s in allr)),
            fmt_cost(sum(s.cost_usd for s in allr), sum(s.n_cost_unknown for s in allr), n_rec),
            "",
        )
    return t


def fmt_mean_std(mean: float | None, std: float | None) -> str:
    return "-" if mean is None or std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def protocol_notes(scores: dict[str, TaskScore]) -> list[str]:
    """Lines under the score table: ISUP 0 from replies naming no grade; the official MedFrameQA score."""
    out = []
    for task, s in scores.items():
        if s.n_isup0_null:
            out.append(
                f"{task}: {s.n_isup0_null} replies named no grade (null, N/A, Benign, no cancer) and "
                "were scored as ISUP 0"
            )
        if s.n_empty:
            official = (
                fmt_pct(s.value_excluding_empty) if s.value_excluding_empty is not None else "-"
            )
            out.append(
                f"{task}: {s.n_empty} empty replies; score with them left out (MedFrameQA's official "
                f"rule) {official}%, counted wrong {fmt_pct(s.value)}%"
            )
    return out


def _unparsed(score: TaskScore, records: list[dict[str, Any]]) -> int:
    """Answers given but not parseable (failed samples are counted under errors instead)."""
    if not records:
        return score.n_unparsed
    return sum(1 for r in records if r.get("status") == "answered" and not r.get("parsed_ok"))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def trace_table(records: list[dict[str, Any]], *, title: str = "Traces (mean per sample)") -> Any:
    """Per task: steps, images, views, tokens, model latency and slide area seen per magnification."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in (
        "task",
        "steps",
        "images",
        "views",
        "tokens",
        "model s",
        "area seen mm² by magnification",
        "statuses",
    ):
        t.add_column(
            col,
            justify="left"
            if col in ("task", "area seen mm² by magnification", "statuses")
            else "right",
        )
    for task, recs in _by_task(records).items():
        area: dict[str, list[float]] = {}
        for r in recs:
            for k, v in (r.get("viewed_mm2") or {}).items():
                area.setdefault(k, []).append(float(v))
        area_text = ", ".join(f"{k} {sum(v) / len(recs):.3g}" for k, v in area.items()) or "-"
        statuses = Counter(str(r.get("status")) for r in recs)

        def m(key: str, recs: list[dict[str, Any]] = recs) -> str:
            v = _mean([float(r[key]) for r in recs if r.get(key) is not None])
            return "-" if v is None else f"{v:.1f}"

        tok = _mean(
            [float((r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)) for r in recs]
        )
        t.add_row(
            task,
            m("n_steps"),
            m("n_images"),
            m("n_views"),
            fmt_tokens(int(tok or 0)),
            m("model_latency_s"),
            area_text,
            ", ".join(f"{k} {v}" for k, v in statuses.most_common()),
        )
    return t


def grounding_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task, over records with ground-truth regions: lesions seen, first step, views on lesions."""
    out: dict[str, dict[str, Any]] = {}
    for task, recs in _by_task(records).items():
        gs = [r["grounding"] for r in recs if isinstance(r.get("grounding"), dict)]
        if not gs:
            continue
        n_les = sum(g.get("n_lesions", 0) for g in gs)
        n_seen = sum(g.get("n_seen", 0) for g in gs)
        firsts = [g["first_step"] for g in gs if g.get("first_step") is not None]
        views = sum(g.get("n_views", 0) for g in gs)
        on = sum(g.get("n_views_on_lesion", 0) for g in gs)
        ans = [g["answer_lesion_seen"] for g in gs if g.get("answer_lesion_seen") is not None]
        correct_seen = [
            bool(_correct(r))
            for r in recs
            if isinstance(r.get("grounding"), dict) and r["grounding"].get("answer_lesion_seen")
        ]
        out[task] = {
            "n": len(gs),
            "n_lesions": n_les,
            "n_seen": n_seen,
            "fraction_seen": n_seen / n_les if n_les else None,
            "samples_all_seen": sum(
                1 for g in gs if g.get("n_lesions") and g.get("n_seen") == g.get("n_lesions")
            ),
            "median_first_step": statistics.median(firsts) if firsts else None,
            "fraction_views_on_lesion": on / views if views else None,
            "answer_lesion_seen": sum(ans) / len(ans) if ans else None,
            "accuracy_when_answer_lesion_seen": sum(correct_seen) / len(correct_seen)
            if correct_seen
            else None,
            "max_mpp": gs[0].get("max_mpp"),
        }
    return out


def _correct(r: dict[str, Any]) -> bool:
    try:
        return bool(ResultRecord.model_validate(r).correct)
    except Exception:
        return False


def grounding_table(records: list[dict[str, Any]], *, title: str | None = None) -> Any | None:
    """Grounding per task (None when no record has ground-truth regions)."""
    summ = grounding_summary(records)
    if not summ:
        return None
    from rich.table import Table

    max_mpp = next(iter(summ.values())).get("max_mpp")
    t = Table(
        title=title
        or f"Grounding (a lesion counts as seen in a view at ≤ {max_mpp} µm/px overlapping it)",
        title_justify="left",
    )
    for col in (
        "task",
        "samples",
        "lesions seen",
        "all seen",
        "first step (median)",
        "views on a lesion",
        "answer's lesion seen",
        "acc when seen",
    ):
        t.add_column(col, justify="left" if col == "task" else "right")
    for task, g in summ.items():
        t.add_row(
            task,
            str(g["n"]),
            f"{g['n_seen']}/{g['n_lesions']} ({fmt_pct(g['fraction_seen'], 0)}%)",
            f"{g['samples_all_seen']}/{g['n']}",
            "-" if g["median_first_step"] is None else f"{g['median_first_step']:g}",
            _pct(g["fraction_views_on_lesion"]),
            _pct(g["answer_lesion_seen"]),
            _pct(g["accuracy_when_answer_lesion_seen"]),
        )
    return t


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{fmt_pct(value, 0)}%"


def judge_summary(path: Path) -> dict[str, dict[str, float]]:
    """Mean judge score per task from ``RUN/judge.jsonl`` (written by ``slidescout judge``)."""
    p = path / "judge.jsonl"
    if not p.exists():
        return {}
    by: dict[str, list[float]] = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("score") is not None:
            by.setdefault(str(rec.get("task")), []).append(float(rec["score"]))
    return {t: {"n": len(v), "mean_score": statistics.fmean(v)} for t, v in by.items()}


def print_report(
    path: str | Path | RunReport, console: Any = None, *, n_bootstrap: int = 1000
) -> RunReport:
    """Print every table of a run (what ``slidescout report RUN`` shows)."""
    from rich.console import Console

    rep = path if isinstance(path, RunReport) else load_run(path, n_bootstrap=n_bootstrap)
    console = console or Console()
    a = rep.agent
    failed = failure_line(rep)
    if failed is not None:  # failures first: a table of zeros must not look like a result
        console.print(f"[bold red]{escape(failed)}[/]", highlight=False)
    console.print(
        f"[bold]{escape(str(rep.path))}[/]: model {escape(str(a.get('model', '?')))} · "
        f"preset {escape(str(a.get('preset', '?')))} · "
        f"{len(rep.finished)} finished records" + (f", {len(rep.failed)} failed" if failed else ""),
        highlight=False,
    )
    if rep.scores:
        print_table(console, score_table(rep.scores, rep.finished))
        for line in protocol_notes(rep.scores):
            console.print(line, highlight=False)
    if rep.unfinished:
        kinds = Counter(str(r.get("status")) for r in rep.unfinished)
        console.print(
            f"[yellow]{len(rep.unfinished)} not finished[/] ({', '.join(f'{k} {v}' for k, v in kinds.items())}); "
            f"`slidescout eval ... --resume {rep.path}` runs them",
            highlight=False,
        )
    if rep.finished:
        costs = cost_table(rep.finished)
        if costs is not None:
            print_table(console, costs)
        print_table(console, trace_table(rep.finished))
    g = grounding_table(rep.finished)
    if g is not None:
        print_table(console, g)
    js = judge_summary(rep.path)
    if js:
        console.print(
            "judge: " + ", ".join(f"{t} {v['mean_score']:.2f} (n={v['n']})" for t, v in js.items()),
            highlight=False,
        )
    if rep.summary.get("wall_s_total") is not None:
        console.print(
            f"wall time {fmt_seconds(rep.summary['wall_s_total'])}{_startup_note(rep.summary)}",
            highlight=False,
        )
    spent = budget_line(rep.summary.get("budget"))
    if spent:
        console.print(spent, highlight=False, markup=False)
    return rep


def budget_line(budget: Any) -> str | None:
    """The dollar budget of the last invocation (summary.json), in one line; None without one."""
    if not isinstance(budget, dict) or budget.get("usd") is None:
        return None
    text = (
        f"budget: ${budget.get('spent_usd') or 0:.4f} spent of ${budget['usd']:g}; at most "
        f"${budget.get('peak_reserved_usd') or 0:.4f} reserved at once for calls in flight"
    )
    if budget.get("estimated_usd"):
        text += f" (${budget['estimated_usd']:.4f} of the spending at the highest list price)"
    if budget.get("refused_calls"):
        text += f"; {budget['refused_calls']} call(s) not sent: their worst case did not fit"
    return text


def _startup_note(summary: dict[str, Any]) -> str:
    """The last invocation's executor start-up, apart from its run (Ray: connect and workers)."""
    ex = summary.get("executor") or {}
    if ex.get("executor") != "ray":
        return ""
    workers = ex.get("workers_ready")
    reused = ex.get("workers_reused") or 0
    who = f", {workers} Ray workers ({reused} reused)" if workers is not None else ""
    return (
        f" (last run: start-up {fmt_seconds(ex.get('startup_s'))}{who}, "
        f"samples {fmt_seconds(ex.get('run_s'))})"
    )


def report_data(rep: RunReport) -> dict[str, Any]:
    """Everything the tables show, as JSON-able data (``slidescout report --json``)."""
    return {
        "run": str(rep.path),
        "agent": rep.agent,
        "n_records": len(rep.records),
        "n_finished": len(rep.finished),
        "n_failed": len(rep.failed),
        "unfinished": dict(Counter(str(r.get("status")) for r in rep.unfinished)),
        "scores": {t: s.model_dump(mode="json") for t, s in rep.scores.items()},
        "grounding": grounding_summary(rep.finished),
        "costs": cost_summary(rep.finished),
        "judge": judge_summary(rep.path),
        "summary": rep.summary,
    }


# ---- plots ----------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SlidescoutError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_scores(reports: list[RunReport], out: Path) -> Path:
    """Grouped bars: each task's score per run, with its bootstrap interval."""
    plt = _pyplot()
    tasks = list(dict.fromkeys(t for r in reports for t in r.scores))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(tasks) * max(1, len(reports)) + 2), 4))
    width = 0.8 / max(1, len(reports))
    for k, rep in enumerate(reports):
        xs, ys, lo, hi = [], [], [], []
        for i, t in enumerate(tasks):
            s = rep.scores.get(t)
            if s is None or math.isnan(s.value):
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(100 * s.value)
            lo.append(100 * (s.value - (s.ci_low if not math.isnan(s.ci_low) else s.value)))
            hi.append(100 * ((s.ci_high if not math.isnan(s.ci_high) else s.value) - s.value))
        bars = ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=rep.label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=20, ha="right")
    ax.set_ylabel("score % (task metric, 95% CI)")
    ax.set_ylim(0, 100)
    ax.set_title("Score per task")
    if len(reports) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_steps(reports: list[RunReport], out: Path) -> Path:
    """Accuracy against the number of model calls a sample used (binned), per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for rep in reports:
        by: dict[int, list[bool]] = {}
        for r in rep.finished:
            if r.get("n_steps") is not None:
                by.setdefault(int(r["n_steps"]), []).append(_correct(r))
        if not by:
            continue
        xs = sorted(by)
        ax.plot(xs, [100 * sum(by[x]) / len(by[x]) for x in xs], marker="o", label=rep.label)
        for x in xs:
            ax.annotate(
                str(len(by[x])),
                (x, 100 * sum(by[x]) / len(by[x])),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("steps used (model calls)")
    ax.set_ylabel("accuracy % (labels: n)")
    ax.set_ylim(-2, 102)
    ax.set_title("Accuracy against steps used")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def cost_per_correct(rep: RunReport) -> dict[str, float | None]:
    """Dollars spent per correct answer, per task (None when a cost is unknown or nothing is correct)."""
    out: dict[str, float | None] = {}
    for t, s in rep.scores.items():
        out[t] = s.cost_usd / s.n_correct if s.n_correct and not s.n_cost_unknown else None
    return out


def plot_cost(reports: list[RunReport], out: Path) -> Path:
    plt = _pyplot()
    tasks = list(dict.fromkeys(t for r in reports for t in r.scores))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(tasks) * max(1, len(reports)) + 2), 4))
    width = 0.8 / max(1, len(reports))
    notes = []
    drawn = 0
    for k, rep in enumerate(reports):
        cpc = cost_per_correct(rep)
        xs = [i - 0.4 + width * (k + 0.5) for i, t in enumerate(tasks) if cpc.get(t) is not None]
        ys = [cpc[t] for t in tasks if cpc.get(t) is not None]
        drawn += len(ys)
        bars = ax.bar(xs, ys, width=width, label=rep.label)
        if ys:
            ax.bar_label(bars, fmt="$%.3g", fontsize=7, padding=2)
        missing = [t for t in tasks if t in rep.scores and cpc.get(t) is None]
        if missing:
            notes.append(
                f"{rep.name}: n/a for {', '.join(missing)} (unknown cost or no correct answer)"
            )
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=20, ha="right")
    ax.set_ylabel("USD per correct answer")
    ax.set_title("Cost per correct answer")
    if drawn:
        ax.set_ylim(bottom=0)
    else:
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "no cost per correct answer to show:\nthe cost is unknown (a model without a price)\n"
            "or no answer was correct",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
        )
    if notes:
        fig.text(0.01, 0.01, "; ".join(notes)[:200], fontsize=7)
    if len(reports) > 1 and drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_plots(
    reports: RunReport | list[RunReport] | str | Path, out_dir: str | Path
) -> list[Path]:
    """``scores.png``, ``accuracy_vs_steps.png``, ``cost_per_correct.png`` in ``out_dir``."""
    if isinstance(reports, (str, Path)):
        reports = [load_run(reports)]
    elif isinstance(reports, RunReport):
        reports = [reports]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_scores(reports, out / "scores.png"),
        plot_steps(reports, out / "accuracy_vs_steps.png"),
        plot_cost(reports, out / "cost_per_correct.png"),
    ]
