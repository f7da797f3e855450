"""The evaluation runner: many samples, concurrently, resumably, within a budget.

``await run_eval(samples, agent=AgentConfig(model="openai:gpt-5"), out="runs/x", repeats=5)``:

- Every finished (sample, repeat) is appended to ``RUN/results.jsonl`` (flushed and synced) the
  moment it finishes; a killed run loses only the samples in flight.
- A failing sample (bad slide, model error) is recorded with its status; the run goes on.
- ``concurrency`` samples run at once; ``max_connections`` bounds concurrent requests to the
  model endpoint. Rate limits are retried by the model adapters and slow the run down.
- A budget (dollars, tokens, seconds) stops new samples from starting; samples in flight stop at
  their next step with a ``budget_*`` status. Such records are kept but are not *finished*, so a
  resumed run (with more budget) runs them again; Ctrl-C does the same with ``cancelled``.
- ``resume=True`` skips every (sample, repeat) with a finished record, and never runs one twice.
- ``executor="ray"`` runs samples on a Ray cluster (see :mod:`slidescout.eval.executors`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import build_agent
from slidescout.core.messages import Usage
from slidescout.errors import ConfigError
from slidescout.eval.config import EvalConfig
from slidescout.eval.executors import WorkItem, make_executor
from slidescout.eval.metrics import TaskScore, score_run
from slidescout.eval.sample_run import is_finished, record_key
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import RunDir, read_manifest
from slidescout.traces.runlock import RunLock

__all__ = ["RunSummary", "finished_records", "load_run_records", "run_eval", "run_eval_sync"]


class RunSummary(BaseModel):
    """What a run did (this invocation) and where the run stands (all invocations)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run_dir: str
    n_samples: int  # distinct samples given
    repeats: int
    n_total: int  # (sample, repeat) pairs in the run
    n_skipped: int = 0  # already finished (resume)
    n_run: int = 0  # records written by this invocation
    n_finished: int = 0  # finished pairs in the run directory (all invocations)
    n_unfinished: int = 0  # pairs not finished: budget stop, cancelled, or never started
    stopped: str | None = (
        None  # budget_usd | budget_tokens | budget_time | endpoint_failed | interrupted
    )
    stop_detail: str | None = None  # endpoint_failed: the last error
    statuses: dict[str, int] = Field(default_factory=dict)  # of this invocation's records
    cost_usd: float = 0.0  # this invocation, known costs
    n_cost_unknown: int = 0
    tokens: int = 0
    # the dollar budget (None without --budget-usd): limit, spent, most reserved at once, refusals
    budget: dict[str, Any] | None = None
    wall_s: float = 0.0
    startup_s: float | None = None  # the executor's start-up (Ray: connect, workers), not the run
    executor: dict[str, Any] = Field(default_factory=dict)  # ExecutorStats: start-up, run, workers
    scores: dict[str, TaskScore] = Field(default_factory=dict)  # over the finished records


def load_run_records(run: RunDir | str | Path) -> list[dict[str, Any]]:
    """The run's records, last line per (sample, repeat) winning (a torn last line is ignored)."""
    rd = run if isinstance(run, RunDir) else RunDir.open(run)
    return rd.results()


def finished_records(
    records: Iterable[dict[str, Any]], *, retry_errors: bool = False
) -> list[dict[str, Any]]:
    return [r for r in records if is_finished(r, retry_errors=retry_errors)]


def _check_resumable(run_path: Path, config: dict[str, Any]) -> None:
    manifest = run_path / "manifest.json"
    if not manifest.exists():
        return
    old = read_manifest(manifest).get("config", {})
    old_agent = old.get("agent", old)
    new_agent = config.get("agent", config)
    for key in ("model", "preset"):
        if old_agent.get(key) and new_agent.get(key) and old_agent.get(key) != new_agent.get(key):
            raise ConfigError(
                f"{run_path} was run with {key} {old_agent.get(key)!r}, not {new_agent.get(key)!r}; "
                f"resume it with the same {key} or choose another output folder"
            )
    old_p, new_p = old_agent.get("protocol") or {}, new_agent.get("protocol") or {}
    for key, what in (
        ("system_prompt_sha256", "system prompt"),
        ("model_settings", "reasoning settings"),
    ):
        if key in old_p and key in new_p and old_p[key] != new_p[key]:
            raise ConfigError(
                f"{run_path} was run with another {what} ({old_p[key]!r}, now {new_p[key]!r}); "
                "resume it with the same flags or choose another output folder"
            )


class _Progress:
    """Rich progress bars: samples done, elapsed and ETA first (they survive a narrow terminal),
    then the bar and the running cost, tokens and samples in flight (cut with an ellipsis)."""

    def __init__(
        self,
        enabled: bool,
        total: int,
        done: int,
        console: Any = None,
        budget: Budget | None = None,
    ) -> None:
        self.enabled = enabled and total > 0
        self.budget = budget if budget is not None and budget.usd is not None else None
        self.cost = 0.0
        self.known = 0
        self.unknown = 0
        self.tokens = 0
        self.running = 0
        self.errors = 0
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        width = (console or Console()).width
        digits = len(str(total))
        # "samples  12/200 0:01:02 eta 0:03:04 ": what a narrow terminal must still show
        fixed = 7 + 2 * digits + 1 + 7 + 3 + 7 + 6
        bar = 20 if width - fixed >= 60 else 0
        columns: list[Any] = [
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            TextColumn("eta", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
        ]
        if bar:
            columns.append(BarColumn(bar_width=bar))
        stats_width = max(8, width - fixed - (bar + 1 if bar else 0) - 1)
        columns.append(
            TextColumn(
                "{task.fields[stats]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=stats_width),
            )
        )
        self.progress = Progress(*columns, console=console, transient=False)
        self.task = self.progress.add_task("samples", total=total, completed=done, stats="")

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._refresh()
            self.progress.stop()

    def _refresh(self, advance: int = 0) -> None:
        if not self.enabled:
            return
        if self.known == 0 and self.unknown:  # no price known: $0.0000 would be a lie
            cost = "unknown"
        else:
            cost = f"${self.cost:.4f}" + (f" (+{self.unknown} unknown)" if self.unknown else "")
        stats = (f"{self.errors} failed · " if self.errors else "") + (
            f"{self.running} running · cost {cost} · {self.tokens:,} tok"
        )
        if self.budget is not None:  # spent (unknown prices at the ceiling) and held for calls
            b = self.budget
            stats += (
                f" · budget ${b.spent_usd:.4f} spent + ${b.reserved_usd:.4f} reserved of ${b.usd:g}"
            )
        self.progress.update(self.task, advance=advance, stats=stats)

    def started(self) -> None:
        self.running += 1
        self._refresh()

    def record(self, rec: dict[str, Any]) -> None:
        self.running = max(0, self.running - 1)
        if rec.get("cost_usd") is None:
            self.unknown += 1
        else:
            self.known += 1
            self.cost += float(rec["cost_usd"])
        self.tokens += int(rec.get("input_tokens") or 0) + int(rec.get("output_tokens") or 0)
        self.errors += rec.get("status") not in ("answered",)
        self._refresh(advance=1 if is_finished(rec) else 0)


async def run_eval(
    samples: list[Sample],
    *,
    out: str | Path,
    agent: AgentConfig | None = None,
    config: EvalConfig | None = None,
    agent_factory: Callable[..., Any] | None = None,
    dataset: dict[str, Any] | None = None,
    console: Any = None,
    **settings: Any,
) -> RunSummary:
    """Run ``samples`` × ``repeats`` with an agent and write a scored run directory.

    Args:
        samples: eval samples (``load_dataset``...); ids must be unique.
        out: the run directory.
        agent: how to build the agent (model id, preset, overrides). Default: ``AgentConfig()``.
        config: how to run (repeats, concurrency, budgets, resume, executor...): an
            :class:`EvalConfig`; ``settings`` are its fields as keywords, over ``config``.
        agent_factory: instead of ``agent``, ``fn(budget=, repeat=) -> Agent`` (asyncio executor only).
        dataset: what was loaded (name, source, counts), stored in the manifest.
        console: where progress bars go.
    """
    base = config or EvalConfig()
    try:
        cfg = EvalConfig.model_validate({**base.model_dump(), **settings})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
    repeats, concurrency, executor = cfg.repeats, cfg.concurrency, cfg.executor
    ids = [s.sample_id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ConfigError(f"sample id {dup!r} appears twice; sample ids must be unique")
    if agent is None and agent_factory is None:
        agent = AgentConfig()
    t_start = time.monotonic()
    budget = Budget(usd=cfg.budget_usd, tokens=cfg.budget_tokens, seconds=cfg.budget_seconds)
    if agent is not None:
        probe = build_agent(agent, budget)
    else:
        assert agent_factory is not None
        probe = agent_factory(budget=budget, repeat=0)
    try:
        agent_config = probe.config()
        prompt_hashes = probe.prompt_hashes()
    finally:
        await probe.aclose()
    manifest_config = {
        "agent": agent_config,
        "eval": {**cfg.manifest(), "n_samples": len(samples), "dataset": dataset or {}},
    }
    ex = make_executor(
        executor,
        agent,
        agent_factory=agent_factory,
        concurrency=concurrency,
        max_connections=cfg.max_connections,
        max_mpp=cfg.max_mpp,
        address=cfg.ray_address,
        **cfg.ray_options,
    )
    ex.check()  # an unreachable --address fails here, before the run directory is made
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {out}: {exc.strerror}") from None
    with RunLock(out):  # one writer per run directory
        if cfg.resume:
            _check_resumable(out, manifest_config)
        run = RunDir.create(out, manifest_config, prompt_hashes, resume=cfg.resume)

        done_keys = {
            record_key(r) for r in finished_records(run.results(), retry_errors=cfg.retry_errors)
        }
        wanted = {(s.sample_id, r) for r in range(repeats) for s in samples}
        items = [
            WorkItem(s, r)
            for r in range(repeats)
            for s in samples
            if (s.sample_id, r) not in done_keys
        ]
        n_skipped = len(wanted & done_keys)

        summary = RunSummary(
            run_dir=str(run.path),
            n_samples=len(samples),
            repeats=repeats,
            n_total=len(wanted),
            n_skipped=n_skipped,
        )
        statuses: Counter[str] = Counter()
        stop_reason: list[str] = []
        failing = _FailureStreak(cfg.stop_after_failures)

        def should_stop() -> bool:
            if (
                writer.failed is not None
            ):  # results cannot be written (a full disk): start nothing more
                return True
            if failing.tripped():
                if not stop_reason:
                    stop_reason.append("endpoint_failed")
                    summary.stop_detail = failing.last_error
                return True
            hit = budget.exceeded()
            if hit and not stop_reason:
                stop_reason.append(hit)
            return hit is not None

        writer = _Appender(run)
        with _Progress(cfg.progress, len(wanted), n_skipped, console, budget) as bar:

            def on_record(rec: dict[str, Any]) -> None:
                writer.append(
                    rec
                )  # in order, each flushed and synced before the next one is written
                if (
                    executor != "asyncio"
                ):  # workers charged their own budgets; the driver's is the run's
                    budget.charge(
                        Usage(
                            input_tokens=int(rec.get("input_tokens") or 0),
                            output_tokens=int(rec.get("output_tokens") or 0),
                            cost_usd=rec.get("cost_usd"),
                        )
                    )
                statuses[str(rec.get("status"))] += 1
                failing.record(rec)
                summary.n_run += 1
                if rec.get("cost_usd") is None:
                    summary.n_cost_unknown += 1
                else:
                    summary.cost_usd += float(rec["cost_usd"])
                summary.tokens += int(rec.get("input_tokens") or 0) + int(
                    rec.get("output_tokens") or 0
                )
                bar.record(rec)

            try:
                await ex.run(
                    items, run, budget, on_record, should_stop, on_start=lambda item: bar.started()
                )
            except (asyncio.CancelledError, KeyboardInterrupt):
                summary.stopped = "interrupted"
                raise
            finally:
                summary.executor = ex.stats.as_dict()
                summary.startup_s = summary.executor["startup_s"]
                writer.close()  # waits for the records still being written
                summary.statuses = dict(statuses)
                summary.budget = budget.report() if budget.usd is not None else None
                summary.wall_s = round(time.monotonic() - t_start, 3)
                if summary.stopped is None and stop_reason:
                    summary.stopped = stop_reason[0]
                if (
                    summary.stopped is None and failing.tripped()
                ):  # the last samples all failed to connect
                    summary.stopped, summary.stop_detail = "endpoint_failed", failing.last_error
                _finish_summary(summary, run, wanted, cfg.n_bootstrap)
        return summary


class _FailureStreak:
    """Counts samples in a row whose every model call failed (status ``error``, no tokens used,
    the error raised by the model adapter): a dead endpoint, not a hard question."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.count = 0
        self.last_error: str | None = None

    @staticmethod
    def endpoint_failed(rec: dict[str, Any]) -> bool:
        error = str(rec.get("error") or "")
        model = str(rec.get("model") or "")
        used = int(rec.get("input_tokens") or 0) + int(rec.get("output_tokens") or 0)
        return (
            rec.get("status") == "error"
            and used == 0
            and bool(model)
            and error.startswith(f"{model}:")
        )

    def record(self, rec: dict[str, Any]) -> None:
        if rec.get("status") == "cancelled":
            return
        if self.endpoint_failed(rec):
            self.count += 1
            self.last_error = str(rec.get("error") or "")[:300]
        else:
            self.count = 0

    def tripped(self) -> bool:
        return self.limit > 0 and self.count >= self.limit


class _Appender:
    """Appends records to ``results.jsonl`` from one writer thread, in the order they finished,
    so the event loop never waits for an fsync."""

    def __init__(self, run: RunDir) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.run = run
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-writer")
        self.futures: list[Any] = []
        self.failed: BaseException | None = None

    def _write(self, rec: dict[str, Any]) -> None:
        if self.failed is not None:  # never append after a failed (possibly torn) write
            raise self.failed
        try:
            self.run.append_result(rec)
        except BaseException as exc:
            self.failed = exc
            raise

    def append(self, rec: dict[str, Any]) -> None:
        self.futures = [f for f in self.futures if not f.done() or f.exception() is not None]
        self.futures.append(self.pool.submit(self._write, rec))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.failed is not None:  # a failed write (disk full...) is an error of the run
            raise self.failed


def _finish_summary(
    summary: RunSummary, run: RunDir, wanted: set[tuple[str, int]], n_bootstrap: int
) -> None:
    records = [r for r in finished_records(run.results()) if record_key(r) in wanted]
    summary.n_finished = len(records)
    summary.n_unfinished = len(wanted) - len(records)
    if records:
        summary.scores = score_run(records, n_bootstrap=n_bootstrap)
    _write_summary(run, summary)


def _write_summary(run: RunDir, summary: RunSummary) -> None:
    """``RUN/summary.json``: the last invocation, and the wall time of all invocations."""
    import json
    import os

    path = run.path / "summary.json"
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
    data = summary.model_dump(mode="json", exclude={"scores"})
    data["wall_s_total"] = round(float(previous.get("wall_s_total") or 0.0) + summary.wall_s, 3)
    data["invocations"] = int(previous.get("invocations") or 0) + 1
    tmp = path.with_name(f"summary.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def run_eval_sync(samples: list[Sample], **kwargs: Any) -> RunSummary:
    """``run_eval`` from synchronous code."""
    return asyncio.run(run_eval(samples, **kwargs))
