"""One question about one slide: ``slidescout.run(slide, question, options, model=...)``.

``ask`` is an evaluation of one sample: the same :class:`~slidescout.core.sample.Sample`, the
same :func:`~slidescout.eval.sample_run.run_sample`, the same record and ``results.jsonl`` line
as ``slidescout eval``.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import build_agent
from slidescout.agents.models import Model
from slidescout.core.parsing import split_reply
from slidescout.core.record import ResultRecord
from slidescout.core.sample import Sample
from slidescout.core.trace import Status, Trace
from slidescout.errors import ConfigError
from slidescout.eval.sample_run import run_sample
from slidescout.slides import open_slide
from slidescout.traces.rundir import RunDir

__all__ = ["RunResult", "arun", "default_run_dir", "format_question", "question_sample", "run"]


def default_run_dir(stem: str) -> Path:
    """``runs/<timestamp>-<stem>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "run"
    return Path("runs") / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{safe}"


def format_question(question: str, options: list[str]) -> str:
    """A question with numbered options, asking for MultiPathQA's JSON answer format."""
    if not options:
        return question.strip()
    lines = "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1))
    return (
        f"{question.strip()}\n\nSelect from the following options:\n{lines}\n\n"
        "Please choose the number of the correct option and respond in the following JSON format:\n"
        '```json\n{"answer": YOUR_ANSWER}\n```'
    )


def question_sample(
    slide: str | Path,
    question: str,
    options: list[str] | None = None,
    *,
    sample_id: str | None = None,
    answer: str | None = None,
) -> Sample:
    """The :class:`Sample` of a question asked on the command line (options answered by number).

    ``answer``, when known, is an option's text (or its 1-based number)."""
    options = [str(o) for o in (options or [])]
    if not question.strip():
        raise ConfigError("the question is empty; give the question to answer")
    if len(options) == 1:
        raise ConfigError(
            f"one option ({options[0]!r}) leaves nothing to choose; give two or more (--option), "
            "or none for a free-text answer"
        )
    if any(not o.strip() for o in options):
        raise ConfigError("an option is empty")
    if len({o.strip().lower() for o in options}) != len(options):
        raise ConfigError("the options repeat; give each answer once")
    truth: int | None = None
    if answer is not None and options:
        truth = (
            int(answer)
            if answer.isdigit()
            else (options.index(answer) + 1 if answer in options else None)
        )
        if truth is None or not 1 <= truth <= len(options):
            raise ConfigError(f"the answer {answer!r} is not one of the options")
    return Sample(
        sample_id=sample_id or Path(slide).stem,
        question=format_question(question, options),
        options=options,
        image_path=str(slide),
        image_paths=[str(slide)],
        answer_format="index" if options else "free",
        answer=truth,
        answer_label=options[truth - 1] if truth else None,
        answer_index=truth,
    )


@dataclass
class RunResult:
    """What ``run`` returns: the answer, the option it names, the record and where the trace is."""

    answer: str | None  # the final answer part of the reply (its <response> block when it has one)
    choice: str | None  # the option the parsed answer names
    rationale: str  # the reasoning part (its <report> block, or the reply without the answer JSON)
    status: Status
    error: str | None
    record: ResultRecord
    trace: Trace | None
    trace_path: Path
    run_dir: Path

    @property
    def ok(self) -> bool:
        """True when the agent answered."""
        return self.status == "answered"


async def arun(
    slide: str | Path,
    question: str,
    options: list[str] | None = None,
    *,
    model: str | Model | None = None,
    config: AgentConfig | None = None,
    out: str | Path | None = None,
    sample: Sample | None = None,
    budget: Budget | None = None,
    budget_usd: float | None = None,
    **settings: Any,
) -> RunResult:
    """Ask one question about one slide and write a run directory of one sample.

    ``settings`` are :class:`AgentConfig` fields (``preset``, ``max_steps``...) over ``config``."""
    base = config or AgentConfig()
    cfg = base.model_validate(
        {**base.model_dump(), **settings, **({"model": model} if isinstance(model, str) else {})}
    )
    sample = sample or question_sample(slide, question, options)
    if not sample.is_image_set:
        open_slide(sample.image_path)  # a bad file is the user's error: say so before running
    agent = build_agent(
        cfg,
        budget or Budget(usd=budget_usd),
        model=model if model is not None and not isinstance(model, str) else None,
    )
    run_dir = RunDir.create(
        Path(out) if out else default_run_dir(Path(slide).stem),
        {"agent": agent.config()},
        agent.prompt_hashes(),
        resume=True,
    )
    try:
        outcome = await run_sample(
            agent, sample, 0, run_dir, budget=agent.budget, live_interval=0.0
        )
    finally:
        await agent.aclose()
    run_dir.append_result(outcome.record)
    rec, trace = outcome.record, outcome.trace
    return RunResult(
        answer=split_reply(trace.answer)[0] if trace and trace.answer is not None else None,
        choice=rec.answer_label,
        rationale=trace.rationale if trace else "",
        status=rec.status,
        error=rec.error,
        record=rec,
        trace=trace,
        trace_path=run_dir.path / str(rec.trace),
        run_dir=run_dir.path,
    )


def run(
    slide: str | Path, question: str, options: list[str] | None = None, **kwargs: Any
) -> RunResult:
    """Synchronous :func:`arun`: ``slidescout.run("slide.svs", "Diagnosis?", ["A", "B"], model="expert")``.

    Inside a running event loop (a Jupyter cell) it runs ``arun`` on a worker thread's own loop and
    blocks until it ends; ``await slidescout.arun(...)`` there keeps the notebook's loop free.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(slide, question, options, **kwargs))
    with ThreadPoolExecutor(1, thread_name_prefix="slidescout-run") as pool:
        return pool.submit(lambda: asyncio.run(arun(slide, question, options, **kwargs))).result()
