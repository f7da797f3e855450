"""Python entry points: ``slidescout.run(slide, question, options, model=...)`` and ``make_agent``."""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.loop import Agent
from slidescout.agents.presets import get_preset
from slidescout.agents.sample import AgentSample, sample_for_question
from slidescout.traces.rundir import RunDir
from slidescout.traces.schema import Trace


def default_model_id() -> str:
    """``openai:gpt-5`` or ``anthropic:claude-sonnet-4-5`` when their key is set, else the offline ``expert``."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-5"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-sonnet-4-5"
    return "expert"


def default_run_dir(stem: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "run"
    return Path("runs") / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{safe}"


def make_agent(model: str | Any = None, *, preset: str = "giant", base_url: str | None = None, api: str = "auto",
               tools: str | None = None, max_steps: int | None = None, max_side: int | None = None,
               keep_images: int | None = -1, budget: Budget | None = None, seed: int | None = None,
               temperature: float | None = None, max_errors: int = 3, sample_seconds: float | None = None,
               device: str | None = None, model_options: dict[str, Any] | None = None) -> Agent:
    """Build an Agent from a model id (or a Model object), a preset name and overrides."""
    from slidescout.agents.models import resolve_model

    p = get_preset(preset)
    if model is None or isinstance(model, str):
        model_obj = resolve_model(model or default_model_id(), base_url=base_url, api=api, **(model_options or {}))
    else:
        model_obj = model
    tool_names = list(p.tools)
    if tools:
        from slidescout.tools.registry import resolve_toolset

        tool_names = resolve_toolset(tool_names, tools)
    agent = Agent(model_obj, p, tools=tool_names, max_steps=max_steps, max_side=max_side, keep_images=keep_images,
                  budget=budget, seed=seed, temperature=temperature, max_errors=max_errors,
                  sample_seconds=sample_seconds, device=device)
    agent.tool_specs()  # unknown or broken tools are a configuration error, raised before any sample runs
    return agent


@dataclass
class RunResult:
    """What ``run`` returns: the answer, its option label when options were given, and where the trace is."""

    answer: str | None
    choice: str | None
    rationale: str
    status: str
    trace: Trace
    trace_path: Path
    run_dir: Path

    @property
    def ok(self) -> bool:
        """True when the agent answered."""
        return self.status == "answered"


def result_record(trace: Trace, sample: AgentSample, latency_s: float, choice: str | None = None) -> dict[str, Any]:
    """The results.jsonl line of a finished sample."""
    return {
        "sample_id": sample.sample_id, "repeat": sample.repeat, "task": sample.task, "status": trace.status,
        "answer_text": trace.answer, "choice": choice, "truth": sample.truth.answer if sample.truth else None,
        "correct": (choice == sample.truth.answer) if sample.truth and sample.truth.answer is not None else None,
        "n_steps": trace.n_steps, "n_images": len(trace.images()),
        "input_tokens": trace.usage.input_tokens, "output_tokens": trace.usage.output_tokens,
        "cost_usd": trace.usage.cost_usd, "latency_s": round(latency_s, 3), "model": trace.model,
        "preset": trace.preset,
        "error": next((e.message for e in reversed(trace.events) if getattr(e, "kind", "") == "error"), None),
    }


def pick_option(text: str | None, options: list[str]) -> str | None:
    """The option label an answer names (``{"answer": N}``, a bare number, or the label itself)."""
    if not text or not options:
        return None
    m = re.search(r"\"?answer\"?\s*[:=]\s*\"?\s*(\d+)", text, re.I)
    if m and 1 <= int(m.group(1)) <= len(options):
        return options[int(m.group(1)) - 1]
    low = text.lower()
    hits = [o for o in options if o.lower() in low]
    return max(hits, key=len) if hits else None


async def arun(slide: str | Path, question: str, options: list[str] | None = None, *, model: str | Any = None,
               preset: str = "giant", out: str | Path | None = None, sample: AgentSample | None = None,
               budget_usd: float | None = None, **agent_options: Any) -> RunResult:
    """Ask one question about one slide; write a run directory of one sample."""
    budget = Budget(usd=budget_usd)
    agent = make_agent(model, preset=preset, budget=budget, **agent_options)
    sample = sample or sample_for_question(slide, question, options)
    if not sample.image_paths:
        from slidescout.slides import open_slide

        open_slide(sample.slide_path or slide)  # a bad file is the user's error: say so before running
    run_path = Path(out) if out else default_run_dir(Path(slide).stem)
    run = RunDir.create(run_path, agent.config(), agent.prompt_hashes(), resume=True)
    t0 = time.monotonic()
    try:
        trace = await agent.run(sample, run)
    finally:
        close = getattr(agent.model, "aclose", None)
        if close:
            await close()
    choice = pick_option(trace.answer, sample.options)
    run.append_result(result_record(trace, sample, time.monotonic() - t0, choice))
    return RunResult(answer=trace.answer, choice=choice, rationale=trace.rationale, status=trace.status,
                     trace=trace, trace_path=run.trace_path(sample.sample_id), run_dir=run.path)


def run(slide: str | Path, question: str, options: list[str] | None = None, **kwargs: Any) -> RunResult:
    """Synchronous ``arun``: ``slidescout.run("slide.svs", "What is the diagnosis?", ["A", "B"], model="expert")``.

    Inside a running event loop (a Jupyter cell) it runs ``arun`` on a worker thread's own loop and
    blocks until it ends; ``await slidescout.arun(...)`` there keeps the notebook's loop free.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(slide, question, options, **kwargs))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="slidescout-run") as pool:
        return pool.submit(lambda: asyncio.run(arun(slide, question, options, **kwargs))).result()
