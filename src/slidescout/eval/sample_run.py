"""Running one (sample, repeat) and turning its trace into a result record: the one path from a
question to its ``results.jsonl`` line, shared by ``slidescout ask``, the asyncio executor and the
Ray workers, so a record has the same shape wherever it came from.

- :func:`truth_regions`: ground-truth regions of a sample (SynthPath lesions, or given).
- :func:`run_sample`: run the agent, parse the answer, score the trace (steps, images, area seen,
  grounding) and return the record with the trace.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.conversation import Conversation
from slidescout.agents.live import ObservedRecorder, RunControl, TraceObserver
from slidescout.agents.loop import Agent
from slidescout.core.answer_formats import ParseMode, answer_label, parse_reply
from slidescout.core.record import FINAL_STATUSES, ResultRecord
from slidescout.core.sample import Sample
from slidescout.core.trace import Status, Trace
from slidescout.eval.grounding import DEFAULT_MAX_MPP, score_trace
from slidescout.traces.rundir import BlobStore, RunDir, disk_full, trace_file

__all__ = [
    "FINAL_STATUSES",
    "SampleOutcome",
    "build_record",
    "cancelled_record",
    "failed_record",
    "is_finished",
    "record_key",
    "run_sample",
    "truth_regions",
]


# ---- samples --------------------------------------------------------------------------------


def truth_regions(sample: Sample) -> list[dict[str, Any]]:
    """Ground-truth regions of a sample: SynthPath lesions from ``meta['truth_path']``, or
    ``meta['regions']`` as given. Each ``{"id", "label", "box": [x, y, w, h]}`` in level-0 px."""
    if sample.meta.get("regions"):
        return [dict(r) for r in sample.meta["regions"]]
    path = sample.meta.get("truth_path")
    if not path:
        return []
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_suffix(".json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for i, les in enumerate(data.get("lesions") or []):
        box = les.get("box")
        if box and len(box) == 4:
            out.append(
                {
                    "id": str(les.get("id") or f"lesion{i + 1}"),
                    "label": str(les.get("class") or les.get("cls") or ""),
                    "box": [int(v) for v in box],
                }
            )
    return out


# ---- records --------------------------------------------------------------------------------


def record_key(rec: ResultRecord | Mapping[str, Any]) -> tuple[str, int]:
    if isinstance(rec, ResultRecord):
        return rec.key
    return str(rec.get("sample_id")), int(rec.get("repeat", 0) or 0)


def is_finished(rec: ResultRecord | Mapping[str, Any], *, retry_errors: bool = False) -> bool:
    """Whether a record ends its (sample, repeat) for good (a resumed run skips it)."""
    if isinstance(rec, ResultRecord):
        return rec.is_finished(retry_errors=retry_errors)
    finished = rec.get("finished")
    if finished is None:
        finished = rec.get("status", "answered") in FINAL_STATUSES
    if finished and retry_errors and rec.get("status") == "error":
        return False
    return bool(finished)


def build_record(
    sample: Sample,
    trace: Trace,
    *,
    repeat: int = 0,
    latency_s: float = 0.0,
    blobs: BlobStore | None = None,
    max_mpp: float = DEFAULT_MAX_MPP,
    run_budget_hit: str | None = None,
    trace_name: str | None = None,
) -> ResultRecord:
    """The ``results.jsonl`` line of a sample's trace: parsed answer, status, usage, trace scores.

    ``run_budget_hit`` is the run-wide budget found exceeded when the sample ended: a sample stopped
    by it is not finished (a resumed run with more budget runs it again), while ``budget_time``
    from the per-sample time limit alone is final.
    """
    mode: ParseMode = (
        "medframeqa"
        if (trace.config.get("protocol") or {}).get("parser") == "medframeqa"
        else "default"
    )
    parsed = parse_reply(trace.answer, sample, mode) if trace.answer is not None else None
    status = trace.status
    finished = status in FINAL_STATUSES or (status == "budget_time" and run_budget_hit is None)
    fields: dict[str, Any] = {
        "status": status,
        "finished": finished,
        "n_steps": trace.n_steps,
        "input_tokens": trace.usage.input_tokens,
        "output_tokens": trace.usage.output_tokens,
        "cost_usd": trace.usage.cost_usd,
        "cached_input_tokens": trace.usage.cached_input_tokens,
        "cache_write_tokens": trace.usage.cache_write_tokens,
        "cache_read_usd": trace.usage.cache_read_usd if trace.usage.cost_usd is not None else None,
        "cache_write_usd": trace.usage.cache_write_usd
        if trace.usage.cost_usd is not None
        else None,
        "uncached_usd": trace.usage.uncached_usd if trace.usage.cost_usd is not None else None,
        "estimated_input_tokens": trace.usage.estimated_input_tokens,
        "latency_s": round(latency_s, 3),
        "error": trace.error if trace.status != "answered" else None,
        "model": trace.model,
        "preset": trace.preset,
        "answer_text": None if trace.answer is None else trace.answer[-4000:],
        "trace": f"traces/{trace_name or trace_file(sample.sample_id, repeat)}",
        "answer_label": answer_label(sample, parsed),
        "dataset": sample.meta.get("dataset"),
    }
    try:
        fields.update(score_trace(trace, blobs, max_mpp=max_mpp, answer_label=sample.answer_label))
    except Exception as exc:  # scoring must never lose a finished sample
        fields["scoring_error"] = f"{type(exc).__name__}: {exc}"
    if fields["error"] is None:
        del fields["error"]  # from_answer then records the parse error, if any
    return ResultRecord.from_answer(sample, parsed, repeat=repeat, **fields)


def failed_record(
    sample: Sample, repeat: int, status: Status, message: str, latency_s: float = 0.0
) -> ResultRecord:
    """A record for a sample whose run ended without a trace (an unexpected bug, a lost worker)."""
    rec = ResultRecord.from_answer(
        sample,
        None,
        repeat=repeat,
        status=status,
        finished=status in FINAL_STATUSES,
        error=message[:500],
        latency_s=round(latency_s, 3),
        dataset=sample.meta.get("dataset"),
        trace=f"traces/{trace_file(sample.sample_id, repeat)}",
    )
    return rec


def cancelled_record(sample: Sample, repeat: int, latency_s: float = 0.0) -> ResultRecord:
    """The record of a sample the run was interrupted in (not finished: a resume runs it again)."""
    return failed_record(sample, repeat, "cancelled", "the run was interrupted", latency_s)


@dataclass
class SampleOutcome:
    """A finished (sample, repeat): its ``results.jsonl`` record and, when the loop ran, its trace."""

    record: ResultRecord
    trace: Trace | None = None


async def run_sample(
    agent: Agent,
    sample: Sample,
    repeat: int,
    run: RunDir,
    *,
    max_mpp: float = DEFAULT_MAX_MPP,
    budget: Budget | None = None,
    live_interval: float = 2.0,
    observer: TraceObserver | None = None,
    control: RunControl | None = None,
    history: Conversation | None = None,
) -> SampleOutcome:
    """Run one (sample, repeat) with ``agent`` and return its record (and trace). Never raises for a
    failing sample (a bad slide, a model error); cancellation propagates after the trace is written.

    Live use (``slidescout studio``, ``chat``): ``observer`` gets each event as it is recorded;
    ``control.stop()`` ends the run at once and keeps its trace with status ``stopped`` (returned
    like any other outcome); ``history`` makes the sample a follow-up of an earlier turn.

    A full disk is not the sample's failure: its ``OSError`` is raised (no record), so the run
    stops and the sample stays unfinished for ``--resume``."""
    t0 = time.monotonic()
    if not sample.regions:
        regions = truth_regions(sample)
        if regions:
            sample = sample.model_copy(update={"regions": regions})
    stored = run.recorder(repeat, live_interval=live_interval)  # remembers a full disk
    recorder = ObservedRecorder(stored, observer)
    try:
        trace = await _run_agent(agent, sample, recorder, run, repeat, control, history)
    except asyncio.CancelledError:
        raise
    except _Stopped:
        return _stopped_outcome(sample, repeat, recorder, control, time.monotonic() - t0, run)
    except Exception as exc:  # the loop records sample failures itself; this is a bug somewhere
        full = stored.disk_error or disk_full(exc)
        if full is not None:
            raise full from None
        return SampleOutcome(
            failed_record(
                sample, repeat, "error", f"{type(exc).__name__}: {exc}", time.monotonic() - t0
            )
        )
    if stored.disk_error is not None:  # recorded as a tool or sample error by the loop
        raise stored.disk_error
    latency = time.monotonic() - t0
    hit = budget.exceeded() if budget is not None else None
    # built right here (a few ms), so a sample whose trace is complete cannot be cancelled before
    # its record exists
    record = build_record(
        sample,
        trace,
        repeat=repeat,
        latency_s=latency,
        blobs=run.blobs,
        max_mpp=max_mpp,
        run_budget_hit=hit,
    )
    return SampleOutcome(record, trace)


class _Stopped(Exception):
    """The run was stopped through its ``RunControl``."""


async def _run_agent(
    agent: Agent,
    sample: Sample,
    recorder: ObservedRecorder,
    run: RunDir,
    repeat: int,
    control: RunControl | None,
    history: Conversation | None,
) -> Trace:
    """``agent.run`` in a task of its own, so that ``control.stop()`` cancels the run and nothing
    above it; an outside cancellation still propagates."""
    coro = agent.run(sample, recorder, run_id=run.path.name, repeat=repeat, history=history)
    if control is None:
        return await coro
    task = asyncio.ensure_future(coro)
    control.attach(task)
    try:
        return await task
    except asyncio.CancelledError:
        outer = asyncio.current_task()
        if not control.stop_requested or (outer is not None and _cancelling(outer)):
            task.cancel()
            raise
        raise _Stopped() from None
    finally:
        control.detach()


def _cancelling(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` itself is being cancelled (Python 3.11+; before that: never known)."""
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _stopped_outcome(
    sample: Sample,
    repeat: int,
    recorder: ObservedRecorder,
    control: RunControl | None,
    latency: float,
    run: RunDir,
) -> SampleOutcome:
    """The record of a stopped run: its trace as last written, with status ``stopped``."""
    reason = control.reason if control is not None else "stopped"
    trace = recorder.last_trace
    if trace is None:  # stopped before the agent wrote anything
        return SampleOutcome(failed_record(sample, repeat, "stopped", reason, latency))
    trace.status = "stopped"
    trace.error = f"{reason} after {trace.n_steps} step{'s' if trace.n_steps != 1 else ''}"
    recorder.write_trace(trace)
    record = build_record(
        sample, trace, repeat=repeat, latency_s=latency, blobs=run.blobs, max_mpp=DEFAULT_MAX_MPP
    )
    return SampleOutcome(record, trace)
