"""The evaluation runner: many samples, concurrently, resumably, within a budget.

``await run_eval(samples, agent=AgentConfig(model="openai:gpt-5"), out="runs/x",
config=EvalConfig(repeats=5))``:

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
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import build_agent
from slidescout.core.messages import Usage
from slidescout.core.record import ResultRecord
from slidescout.errors import ConfigError
from slidescout.eval.config import EvalConfig
from slidescout.eval.executors import AgentFactory, Executor, WorkItem, make_executor
from slidescout.eval.metrics import TaskScore, score_run
from slidescout.eval.sample_run import is_finished, record_key
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import RunDir, read_manifest
from slidescout.traces.runlock import RunLock

__all__ = [
    "NullProgress",
    "RunProgress",
    "RunSummary",
    "finished_records",
    "load_run_records",
    "run_eval",
    "run_eval_sync",
]


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


class RunProgress(Protocol):
    """What a run reports as it goes (the CLI draws it; ``NullProgress`` draws nothing)."""

    def start(self, total: int, done: int, budget: Budget | None = None) -> None:
        """``total`` (sample, repeat) pairs in the run, ``done`` of them finished before; the
        run's ``budget`` (what it has spent and holds for calls in flight)."""
        ...

    def sample_started(self) -> None: ...

    def sample_finished(self, record: ResultRecord) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """No progress display."""

    def start(self, total: int, done: int, budget: Budget | None = None) -> None:
        return None

    def sample_started(self) -> None:
        return None

    def sample_finished(self, record: ResultRecord) -> None:
        return None

    def stop(self) -> None:
        return None


def _check_ids(samples: list[Sample]) -> None:
    ids = [s.sample_id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ConfigError(f"sample id {dup!r} appears twice; sample ids must be unique")


async def _agent_record(
    agent: AgentConfig | None, agent_factory: AgentFactory | None, budget: Budget
) -> tuple[dict[str, object], dict[str, str]]:
    """The agent's config and prompt hashes, as the manifest records them (from a probe agent)."""
    if agent is not None:
        probe = build_agent(agent, budget)
    else:
        assert agent_factory is not None
        probe = agent_factory(budget=budget, repeat=0)
    try:
        return probe.config(), probe.prompt_hashes()
    finally:
        await probe.aclose()


def _make_dir(out: str | Path) -> Path:
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {path}: {exc.strerror}") from None
    return path


async def run_eval(
    samples: list[Sample],
    *,
    out: str | Path,
    agent: AgentConfig | None = None,
    config: EvalConfig | None = None,
    agent_factory: AgentFactory | None = None,
    dataset: dict[str, Any] | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """Run ``samples`` × ``repeats`` with an agent and write a scored run directory.

    Args:
        samples: eval samples (``load_dataset``...); ids must be unique.
        out: the run directory.
        agent: how to build the agent (model id, preset, overrides). Default: ``AgentConfig()``.
        config: how to run (repeats, concurrency, budgets, resume, executor...).
        agent_factory: instead of ``agent``, ``fn(budget=, repeat=) -> Agent`` (asyncio executor only).
        dataset: what was loaded (name, source, counts), stored in the manifest.
        progress: where progress is reported (the CLI's bars); default: nowhere.
    """
    cfg = config or EvalConfig()
    _check_ids(samples)
    if agent is None and agent_factory is None:
        agent = AgentConfig()
    t_start = time.monotonic()
    budget = Budget(usd=cfg.budget_usd, tokens=cfg.budget_tokens, seconds=cfg.budget_seconds)
    agent_config, prompt_hashes = await _agent_record(agent, agent_factory, budget)
    manifest_config = {
        "agent": agent_config,
        "eval": {**cfg.manifest(), "n_samples": len(samples), "dataset": dataset or {}},
    }
    ex = make_executor(
        cfg.executor,
        agent,
        agent_factory=agent_factory,
        concurrency=cfg.concurrency,
        max_connections=cfg.max_connections,
        max_mpp=cfg.max_mpp,
        address=cfg.ray_address,
        **cfg.ray_options,
    )
    ex.check()  # an unreachable --address fails here, before the run directory is made
    path = _make_dir(out)
    with RunLock(path):  # one writer per run directory
        if cfg.resume:
            _check_resumable(path, manifest_config)
        run = RunDir.create(path, manifest_config, prompt_hashes, resume=cfg.resume)
        session = _Session(run, cfg, budget, samples, progress or NullProgress())
        await session.execute(ex, t_start)
        return session.summary


class _Session:
    """One invocation of a run: what to run, the records as they come, when to stop."""

    def __init__(
        self,
        run: RunDir,
        cfg: EvalConfig,
        budget: Budget,
        samples: list[Sample],
        progress: RunProgress,
    ) -> None:
        self.run, self.cfg, self.budget, self.progress = run, cfg, budget, progress
        done_keys = {r.key for r in run.records() if r.is_finished(retry_errors=cfg.retry_errors)}
        self.wanted = {(s.sample_id, r) for r in range(cfg.repeats) for s in samples}
        self.items = [
            WorkItem(s, r)
            for r in range(cfg.repeats)
            for s in samples
            if (s.sample_id, r) not in done_keys
        ]
        self.summary = RunSummary(
            run_dir=str(run.path),
            n_samples=len(samples),
            repeats=cfg.repeats,
            n_total=len(self.wanted),
            n_skipped=len(self.wanted & done_keys),
        )
        self.statuses: Counter[str] = Counter()
        self.stop_reason: list[str] = []
        self.failing = _FailureStreak(cfg.stop_after_failures)
        self.writer = _Appender(run)

    def should_stop(self) -> bool:
        if self.writer.failed is not None:  # results cannot be written (a full disk): start nothing
            return True
        if self.failing.tripped():
            if not self.stop_reason:
                self.stop_reason.append("endpoint_failed")
                self.summary.stop_detail = self.failing.last_error
            return True
        hit = self.budget.exceeded()
        if hit and not self.stop_reason:
            self.stop_reason.append(hit)
        return hit is not None

    def on_record(self, rec: ResultRecord) -> None:
        self.writer.append(rec)  # in order, each flushed and synced before the next one
        if self.cfg.executor != "asyncio":  # workers charged their own budgets; this is the run's
            self.budget.charge(
                Usage(
                    input_tokens=rec.input_tokens or 0,
                    output_tokens=rec.output_tokens or 0,
                    cost_usd=rec.cost_usd,
                )
            )
        self.statuses[rec.status] += 1
        self.failing.record(rec)
        summary = self.summary
        summary.n_run += 1
        if rec.cost_usd is None:
            summary.n_cost_unknown += 1
        else:
            summary.cost_usd += rec.cost_usd
        summary.tokens += (rec.input_tokens or 0) + (rec.output_tokens or 0)
        self.progress.sample_finished(rec)

    async def execute(self, ex: Executor, t_start: float) -> None:
        summary = self.summary
        self.progress.start(len(self.wanted), summary.n_skipped, self.budget)
        try:
            await ex.run(
                self.items,
                self.run,
                self.budget,
                self.on_record,
                self.should_stop,
                on_start=lambda item: self.progress.sample_started(),
            )
        except (asyncio.CancelledError, KeyboardInterrupt):
            summary.stopped = "interrupted"
            raise
        finally:
            try:
                self.writer.close()  # waits for the records still being written
            finally:
                self.progress.stop()
            summary.executor = ex.stats.as_dict()
            summary.startup_s = summary.executor["startup_s"]
            summary.statuses = dict(self.statuses)
            summary.budget = self.budget.report() if self.budget.usd is not None else None
            summary.wall_s = round(time.monotonic() - t_start, 3)
            if summary.stopped is None and self.stop_reason:
                summary.stopped = self.stop_reason[0]
            if summary.stopped is None and self.failing.tripped():  # the last ones all failed
                summary.stopped, summary.stop_detail = "endpoint_failed", self.failing.last_error
            _finish_summary(summary, self.run, self.wanted, self.cfg.n_bootstrap)


class _FailureStreak:
    """Counts samples in a row whose every model call failed (status ``error``, no tokens used,
    the error raised by the model adapter): a dead endpoint, not a hard question."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.count = 0
        self.last_error: str | None = None

    @staticmethod
    def endpoint_failed(rec: ResultRecord) -> bool:
        error = rec.error or ""
        model = rec.model or ""
        used = (rec.input_tokens or 0) + (rec.output_tokens or 0)
        return rec.status == "error" and used == 0 and bool(model) and error.startswith(f"{model}:")

    def record(self, rec: ResultRecord) -> None:
        if rec.status == "cancelled":
            return
        if self.endpoint_failed(rec):
            self.count += 1
            self.last_error = (rec.error or "")[:300]
        else:
            self.count = 0

    def tripped(self) -> bool:
        return self.limit > 0 and self.count >= self.limit


class _Appender:
    """Appends records to ``results.jsonl`` from one writer thread, in the order they finished,
    so the event loop never waits for an fsync."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-writer")
        self.futures: list[Future[None]] = []
        self.failed: BaseException | None = None

    def _write(self, rec: ResultRecord) -> None:
        if self.failed is not None:  # never append after a failed (possibly torn) write
            raise self.failed
        try:
            self.run.append_result(rec)
        except BaseException as exc:
            self.failed = exc
            raise

    def append(self, rec: ResultRecord) -> None:
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


def run_eval_sync(
    samples: list[Sample],
    *,
    out: str | Path,
    agent: AgentConfig | None = None,
    config: EvalConfig | None = None,
    agent_factory: AgentFactory | None = None,
    dataset: dict[str, Any] | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """``run_eval`` from synchronous code."""
    return asyncio.run(
        run_eval(
            samples,
            out=out,
            agent=agent,
            config=config,
            agent_factory=agent_factory,
            dataset=dataset,
            progress=progress,
        )
    )
