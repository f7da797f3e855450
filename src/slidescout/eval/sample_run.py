"""Running one (sample, repeat) and turning its trace into a result record.

Shared by the executors: the in-process asyncio executor and the Ray workers call
:func:`run_sample` the same way, so a record is the same wherever the sample ran.

- :class:`AgentSpec`: everything needed to build an agent, picklable (it travels to Ray workers,
  which build their own model client).
- :func:`agent_sample`: an eval :class:`Sample` as the loop's :class:`AgentSample` (question,
  options, slide or images, truth answer and, for SynthPath, the lesion regions).
- :func:`run_sample`: run the agent, parse the answer, score the trace (steps, images, area seen,
  grounding) and return the ``results.jsonl`` line.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slidescout.eval.grounding import DEFAULT_MAX_MPP, score_trace
from slidescout.eval.metrics import ResultRecord
from slidescout.eval.parsing import parse_answer
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import RunDir, safe_name
from slidescout.traces.schema import ErrorEvent, GroundTruth, NoteEvent, Trace

__all__ = ["FINAL_STATUSES", "AgentSpec", "SampleRunDir", "agent_sample", "build_record", "is_finished",
           "record_key", "run_sample", "trace_file", "truth_regions"]

# statuses that end a sample for good; the others (budget_*, cancelled) are run again on resume
FINAL_STATUSES = frozenset({"answered", "error", "max_steps"})


@dataclass
class AgentSpec:
    """How to build the agent of a run (model, preset and overrides). Picklable."""

    model: str | None = None  # provider:model; None: by the keys available, else the offline expert
    preset: str = "scout"
    base_url: str | None = None
    api: str = "auto"
    tools: str | None = None
    max_steps: int | None = None
    max_side: int | None = None
    keep_images: int | None = -1
    seed: int | None = None
    temperature: float | None = None
    max_errors: int = 3
    sample_seconds: float | None = None
    device: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None  # a prompt file used instead of the preset's prompt

    @property
    def model_id(self) -> str:
        if self.model:
            return self.model
        from slidescout.agents.api import default_model_id

        return default_model_id()

    @property
    def endpoint(self) -> str:
        """The key of the model endpoint whose connections are limited together."""
        provider = self.model_id.split(":", 1)[0]
        return f"{provider}@{self.base_url}" if self.base_url else provider

    def resolve_model(self) -> Any:
        from slidescout.agents.models import resolve_model

        return resolve_model(self.model_id, base_url=self.base_url, api=self.api,  # type: ignore[arg-type]
                             **self.model_options)

    def build(self, budget: Any = None, *, repeat: int = 0, wrap_model: Callable[[Any], Any] | None = None) -> Any:
        """An ``Agent``; with a seed, repeat *r* uses ``seed + r`` so repeats are not copies."""
        from slidescout.agents.api import make_agent

        model = self.resolve_model()
        if wrap_model is not None:
            model = wrap_model(model)
        agent = make_agent(model, preset=self.preset, tools=self.tools, max_steps=self.max_steps,
                           max_side=self.max_side, keep_images=self.keep_images, budget=budget,
                           seed=None if self.seed is None else self.seed + repeat, temperature=self.temperature,
                           max_errors=self.max_errors, sample_seconds=self.sample_seconds, device=self.device,
                           system_prompt=self.system_prompt)
        return agent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            out.append({"id": str(les.get("id") or f"lesion{i + 1}"), "label": str(les.get("class") or les.get("cls") or ""),
                        "box": [int(v) for v in box]})
    return out


def agent_sample(sample: Sample, repeat: int = 0) -> Any:
    """The loop's ``AgentSample`` for an eval sample: a slide, or an image set (MedFrameQA)."""
    from slidescout.agents.sample import AgentSample

    multi = len(sample.image_paths) > 1 or sample.meta.get("dataset") == "medframeqa"
    images = list(sample.image_paths or [sample.image_path]) if multi else []
    return AgentSample(
        sample_id=sample.sample_id, question=sample.question, options=list(sample.options),
        slide_path=None if multi else sample.image_path, image_paths=images, task=sample.task,
        answer_format=sample.answer_format, repeat=repeat,
        truth=GroundTruth(answer=str(sample.answer_label), regions=truth_regions(sample)),
        meta={"answer": sample.answer, "answer_index": sample.answer_index, "metric": sample.metric,
              **{k: v for k, v in sample.meta.items() if isinstance(v, (str, int, float, bool)) or v is None}},
    )


# ---- where a repeat's trace goes --------------------------------------------------------------

def trace_file(sample_id: str, repeat: int = 0) -> str:
    """``traces/`` file name of a (sample, repeat): ``<id>.json``, ``<id>.r01.json`` for repeat 1..."""
    stem = safe_name(sample_id)
    return f"{stem}.json" if repeat == 0 else f"{stem}.r{repeat:02d}.json"


class SampleRunDir:
    """The run directory as one (sample, repeat) sees it: its trace goes to :func:`trace_file`,
    so the repeats of a sample keep separate traces. Everything else is the run's.

    The loop rewrites a running sample's trace after every step so the viewer can follow it; in a
    run of many samples that is throttled to one write per ``live_interval`` seconds per sample
    (the final trace is always written).
    """

    def __init__(self, run: RunDir, repeat: int, *, live_interval: float = 2.0) -> None:
        self._run = run
        self.repeat = repeat
        self.path = run.path
        self.blobs = run.blobs
        self.traces_dir = run.traces_dir
        self.live_interval = live_interval
        self._last_write = -math.inf

    def trace_path(self, sample_id: str) -> Path:
        return self.traces_dir / trace_file(sample_id, self.repeat)

    def write_trace(self, trace: Trace) -> Path:
        path = self.trace_path(trace.sample_id)
        now = time.monotonic()
        if trace.status == "running" and now - self._last_write < self.live_interval:
            return path
        self._last_write = now
        tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(trace.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)


# ---- records --------------------------------------------------------------------------------

def record_key(rec: dict[str, Any]) -> tuple[str, int]:
    return str(rec.get("sample_id")), int(rec.get("repeat", 0) or 0)


def is_finished(rec: dict[str, Any], *, retry_errors: bool = False) -> bool:
    """Whether a record ends its (sample, repeat) for good (a resumed run skips it)."""
    finished = rec.get("finished")
    if finished is None:
        finished = rec.get("status", "answered") in FINAL_STATUSES
    if finished and retry_errors and rec.get("status") == "error":
        return False
    return bool(finished)


def _run_error(trace: Trace) -> str | None:
    for ev in reversed(trace.events):
        if isinstance(ev, ErrorEvent) and (ev.fatal or trace.status == "error"):
            return ev.message[:500]
    if trace.status.startswith("budget") or trace.status == "cancelled":
        note = next((ev.message for ev in reversed(trace.events) if isinstance(ev, NoteEvent)), None)
        return (note or trace.status)[:500]
    return None


def build_record(sample: Sample, trace: Trace, *, repeat: int = 0, latency_s: float = 0.0, blobs: Any = None,
                 max_mpp: float = DEFAULT_MAX_MPP, run_budget_hit: str | None = None,
                 trace_name: str | None = None) -> dict[str, Any]:
    """The ``results.jsonl`` line of a sample's trace: parsed answer, status, usage, trace scores.

    ``run_budget_hit`` is the run-wide budget found exceeded when the sample ended: a sample stopped
    by it is not finished (a resumed run with more budget runs it again), while ``budget_time``
    from the per-sample time limit alone is final.
    """
    mode = str((trace.config.get("protocol") or {}).get("parser") or "default")
    parsed = parse_answer(trace.answer, sample, mode=mode) if trace.answer is not None else None  # type: ignore[arg-type]
    status = trace.status
    finished = status in FINAL_STATUSES or (status == "budget_time" and run_budget_hit is None)
    fields: dict[str, Any] = {
        "status": status, "finished": finished, "n_steps": trace.n_steps,
        "input_tokens": trace.usage.input_tokens, "output_tokens": trace.usage.output_tokens,
        "cost_usd": trace.usage.cost_usd, "latency_s": round(latency_s, 3), "error": _run_error(trace),
        "model": trace.model, "preset": trace.preset,
        "answer_text": None if trace.answer is None else trace.answer[-4000:],
        "trace": f"traces/{trace_name or trace_file(sample.sample_id, repeat)}",
        "dataset": sample.meta.get("dataset"),
    }
    try:
        fields.update(score_trace(trace, blobs, max_mpp=max_mpp, answer_label=sample.answer_label))
    except Exception as exc:  # scoring must never lose a finished sample
        fields["scoring_error"] = f"{type(exc).__name__}: {exc}"
    if fields["error"] is None:
        del fields["error"]  # from_answer then records the parse error, if any
    rec = ResultRecord.from_answer(sample, parsed, repeat=repeat, **fields)
    return rec.model_dump(mode="json")


def failed_record(sample: Sample, repeat: int, status: str, message: str, latency_s: float = 0.0) -> dict[str, Any]:
    """A record for a sample whose run ended without a trace (an unexpected bug, a lost worker)."""
    rec = ResultRecord.from_answer(sample, None, repeat=repeat, status=status,
                                   finished=status in FINAL_STATUSES, error=message[:500],
                                   latency_s=round(latency_s, 3), dataset=sample.meta.get("dataset"),
                                   trace=f"traces/{trace_file(sample.sample_id, repeat)}")
    return rec.model_dump(mode="json")


async def run_sample(agent: Any, sample: Sample, repeat: int, run: RunDir, *, max_mpp: float = DEFAULT_MAX_MPP,
                     budget: Any = None) -> dict[str, Any]:
    """Run one (sample, repeat) with ``agent`` and return its record. Never raises for a failing
    sample (a bad slide, a model error); cancellation propagates after the trace is written."""
    import asyncio

    t0 = time.monotonic()
    srun = SampleRunDir(run, repeat)
    try:
        trace = await agent.run(agent_sample(sample, repeat), srun)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the loop records sample failures itself; this is a bug somewhere
        return failed_record(sample, repeat, "error", f"{type(exc).__name__}: {exc}", time.monotonic() - t0)
    latency = time.monotonic() - t0
    hit = budget.exceeded() if budget is not None else None
    # built right here (a few ms), so a sample whose trace is complete cannot be cancelled before
    # its record exists
    return build_record(sample, trace, repeat=repeat, latency_s=latency, blobs=run.blobs, max_mpp=max_mpp,
                        run_budget_hit=hit)
