"""The worker side of the Ray executor: what runs inside Ray's processes.

- :class:`RayJob`: everything a worker needs to run samples of one run (the agent's config, the
  run directory, the budget's limits). It holds no key and no client: workers read API keys from
  their own environment and build their own clients, and the providers refuse to be pickled.
- :class:`SampleWorker`: an async actor that runs many samples' agent loops at once, for any
  number of runs, one after the other or side by side (``job.key`` keeps them apart). Its
  imports (slidescout, the provider SDK, the preset's tools) happen once, when it starts or first
  sees a job, so a pool of them kept on a cluster starts the next run with no import at all.
- :func:`run_task`: one sample as one Ray task (``mode="tasks"``).

Every sample's trace and images are written into the run directory by the worker; the record
goes back to the driver, which appends it to ``results.jsonl``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import slidescout
from slidescout.agents.budget import BudgetStatus
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import build_agent
from slidescout.agents.models import Model
from slidescout.core.record import ResultRecord
from slidescout.eval.executor_base import LimitedModel, StopBudget, close_agent, connect_model
from slidescout.eval.grounding import DEFAULT_MAX_MPP
from slidescout.eval.sample_run import run_sample
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import RunDir

__all__ = ["Limits", "RayJob", "SampleWorker", "code_key", "run_task"]


@cache
def code_key() -> str:
    """A digest of slidescout's version and source files: a pool of workers kept on a cluster is
    reused only by a driver running the same code (a changed checkout starts a new pool)."""
    root = Path(slidescout.__file__).resolve().parent
    h = hashlib.sha256(slidescout.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        try:
            h.update(path.read_bytes())
        except OSError:  # a file removed while we read: the key still differs from a full tree
            h.update(b"?")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Limits:
    """The run's budget as a worker enforces it (the driver's budget stays the run's)."""

    usd: float | None = None
    tokens: int | None = None
    seconds: float | None = None  # what is left of the run's time budget

    def budget(self) -> StopBudget:
        return StopBudget(usd=self.usd, tokens=self.tokens, seconds=self.seconds)


@dataclass(frozen=True)
class RayJob:
    """One run as the workers see it. Sent with every call, so a restarted worker (or one that
    joins late) needs no set-up message to take part."""

    key: str  # unique per run invocation
    spec: AgentConfig
    run_path: str
    limits: Limits = field(default_factory=Limits)
    max_mpp: float = DEFAULT_MAX_MPP
    max_connections: int = 16  # model requests in flight at once, per worker


@dataclass
class _JobState:
    job: RayJob
    run: RunDir
    budget: StopBudget
    limiter: asyncio.Semaphore
    agents: dict[int, Any] = field(default_factory=dict)
    cpu0: float = field(default_factory=time.process_time)  # this process's CPU at the start

    def agent(self, repeat: int) -> Any:
        if repeat not in self.agents:
            limiter = self.limiter

            def wrap(model: Model) -> Model:
                connect_model(model)  # its SDK imported here, not inside the first request
                return LimitedModel(model, limiter)

            self.agents[repeat] = build_agent(
                self.job.spec, self.budget, repeat=repeat, wrap_model=wrap
            )
        return self.agents[repeat]


class SampleWorker:
    """A Ray actor running samples' agent loops on its own event loop (many at once)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.code = code_key()
        self.jobs: dict[str, _JobState] = {}
        self.served = 0  # runs this worker has taken part in

    def _state(self, job: RayJob) -> _JobState:
        state = self.jobs.get(job.key)
        if state is None:
            state = _JobState(
                job=job,
                run=RunDir(job.run_path),
                budget=job.limits.budget(),
                limiter=asyncio.Semaphore(max(1, job.max_connections)),
            )
            self.jobs[job.key] = state
            self.served += 1
        return state

    async def ready(self, job: RayJob) -> dict[str, Any]:
        """Take part in ``job``: build its first agent (the SDK and the preset's tools are imported
        here, once per worker). Returns who this worker is and whether it had served a run before."""
        t0 = time.monotonic()
        reused = self.served > 0 and job.key not in self.jobs
        self._state(job).agent(0)
        return {
            "pid": self.pid,
            "code": self.code,
            "reused": reused,
            "ready_s": round(time.monotonic() - t0, 3),
        }

    async def run_sample(self, job: RayJob, sample: Sample, repeat: int) -> ResultRecord:
        state = self._state(job)
        outcome = await run_sample(
            state.agent(repeat),
            sample,
            repeat,
            state.run,
            max_mpp=job.max_mpp,
            budget=state.budget,
        )
        return outcome.record

    def stop(self, key: str, kind: BudgetStatus) -> None:
        """Stop the samples of run ``key`` at their next step (the run's budget is spent)."""
        state = self.jobs.get(key)
        if state is not None:
            state.budget.force(kind)

    async def finish(self, key: str) -> dict[str, Any]:
        """Close run ``key``'s clients and forget it (the worker stays up for the next run).
        Returns the CPU time this worker process used since it joined the run (all its runs'
        if several overlapped)."""
        state = self.jobs.pop(key, None)
        if state is None:
            return {"pid": self.pid, "cpu_s": 0.0}
        for agent in state.agents.values():
            await close_agent(agent)
        return {"pid": self.pid, "cpu_s": round(time.process_time() - state.cpu0, 3)}


def run_task(job: RayJob, sample: Sample, repeat: int) -> ResultRecord:
    """One sample as one Ray task: build the agent, run its loop with ``asyncio.run``."""

    async def go() -> ResultRecord:
        budget = job.limits.budget()
        agent = build_agent(job.spec, budget, repeat=repeat)
        try:
            outcome = await run_sample(
                agent, sample, repeat, RunDir(job.run_path), max_mpp=job.max_mpp, budget=budget
            )
            return outcome.record
        finally:
            await close_agent(agent)

    return asyncio.run(go())
