"""Optional LLM-judge scoring of a trace's rationale, with any model adapter.

``await judge_trace(trace, model="openai:gpt-5")`` asks the judge model to grade the agent's final
rationale (1-5) given the question, the correct answer and the regions the agent viewed; the
prompt is ``eval/templates/judge.md``. ``judge_run`` grades every finished record of a run and
writes ``RUN/judge.jsonl`` (one line per (sample, repeat); resumable like the run itself).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from slidescout.agents.models import Model, resolve_model, resolve_settings
from slidescout.agents.models.registry import ApiChoice
from slidescout.core.messages import ModelRequest, SystemMessage, TextPart, UserMessage
from slidescout.core.model_settings import ModelSettings
from slidescout.core.parsing import extract_json_objects
from slidescout.core.trace import Trace, load_trace
from slidescout.errors import ModelError
from slidescout.eval.grounding import trace_views
from slidescout.eval.sample_run import is_finished, record_key
from slidescout.eval.samples import fill_template, load_template
from slidescout.traces.rundir import RunDir

__all__ = ["JudgeScore", "judge_prompt", "judge_run", "judge_trace"]


class JudgeScore(BaseModel):
    score: float | None = None  # 1-5; None when the judge's reply could not be read
    answer_correct: bool | None = None
    comment: str = ""
    raw: str = ""
    judge: str = ""  # model id
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


def judge_prompt(trace: Trace, truth: str | None = None, *, max_views: int = 30) -> str:
    """The judge's prompt for one trace (``truth`` defaults to the trace's ground truth)."""
    truth = truth if truth is not None else (trace.truth.answer if trace.truth else None)
    views = []
    for v in trace_views(trace)[:max_views]:
        if v.box is None:
            continue
        res = f"{v.mpp:.2f} µm/px" if v.mpp else "resolution unknown"
        views.append(f"- step {v.step}: {v.kind} {tuple(v.box)} at {res}")
    rationale = (trace.answer or "").strip() or "(no answer)"
    return fill_template(
        load_template("judge"),
        question=trace.question.strip(),
        truth=str(truth or "unknown"),
        rationale=rationale[-6000:],
        views="\n".join(views) or "(none)",
    )


def _read(text: str) -> tuple[float | None, bool | None, str, str | None]:
    for obj, _ in reversed(extract_json_objects(text)):
        if "score" not in obj:
            continue
        try:
            score = float(obj["score"])
        except (TypeError, ValueError):
            continue
        if not 1 <= score <= 5:
            return None, None, "", f"score {score} is outside 1-5"
        correct = obj.get("answer_correct")
        if isinstance(correct, str):
            correct = correct.strip().lower() in ("true", "yes", "1")
        return (
            score,
            correct if isinstance(correct, bool) else None,
            str(obj.get("comment") or ""),
            None,
        )
    return None, None, "", "no JSON object with a score in the judge's reply"


async def judge_trace(
    trace: Trace,
    model: str | Model,
    *,
    truth: str | None = None,
    base_url: str | None = None,
    api: ApiChoice = "auto",
    temperature: float | None = 0.0,
) -> JudgeScore:
    """Grade one trace's rationale. ``model`` is a model id (``resolve_model``) or a Model object."""

    own = isinstance(model, str)
    model_obj: Model
    if isinstance(model, str):
        model_obj = resolve_model(model, base_url=base_url, api=api)
    else:
        model_obj = model
    # the judge's temperature is a default: a reasoning model, which takes none, is sent none
    wanted = ModelSettings(temperature=temperature)
    settings = resolve_settings(model_obj.profile, preset=wanted, model=model_obj.settings)
    req = ModelRequest(
        messages=[
            SystemMessage(
                content="You grade the reasoning of AI assistants. Reply with JSON only."
            ),
            UserMessage(parts=[TextPart(text=judge_prompt(trace, truth))]),
        ],
        tools=[],
        tool_choice="none",
        settings=settings.settings,
    )
    out = JudgeScore(judge=model_obj.name)
    try:
        resp = await model_obj.request(req)
    except ModelError as exc:
        out.error = str(exc)
        return out
    finally:
        if own:
            await model_obj.aclose()
    text = resp.message.text
    out.raw = text[-2000:]
    out.score, out.answer_correct, out.comment, out.error = _read(text)
    out.input_tokens, out.output_tokens, out.cost_usd = (
        resp.usage.input_tokens,
        resp.usage.output_tokens,
        resp.usage.cost_usd,
    )
    return out


async def judge_run(
    run_path: str | Path,
    model: str,
    *,
    base_url: str | None = None,
    api: ApiChoice = "auto",
    concurrency: int = 8,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Grade every finished record of a run that is not graded yet; append to ``RUN/judge.jsonl``."""
    import json

    run = RunDir.open(run_path)
    out_path = run.path / "judge.jsonl"
    done: set[tuple[str, int]] = set()
    if out_path.exists():
        for line in out_path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(record_key(json.loads(line)))
            except ValueError:
                continue
    todo = [
        r
        for r in run.results()
        if is_finished(r) and r.get("answer_text") and record_key(r) not in done
    ]
    if limit is not None:
        todo = todo[:limit]
    model_obj = resolve_model(model, base_url=base_url, api=api)
    sem = asyncio.Semaphore(max(1, concurrency))
    written: list[dict[str, Any]] = []

    async def one(rec: dict[str, Any]) -> None:
        trace_rel = rec.get("trace")
        path = run.path / trace_rel if trace_rel else run.trace_path(str(rec["sample_id"]))
        try:
            trace = load_trace(path)
        except Exception as exc:
            score = JudgeScore(judge=model_obj.name, error=f"trace not readable: {exc}")
        else:
            async with sem:
                score = await judge_trace(trace, model_obj, truth=rec.get("truth_label"))
        line = {
            "sample_id": rec["sample_id"],
            "repeat": rec.get("repeat", 0),
            "task": rec.get("task"),
            **score.model_dump(mode="json"),
        }
        with open(out_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
        written.append(line)

    try:
        await asyncio.gather(*(one(r) for r in todo))
    finally:
        await model_obj.aclose()
    return written
