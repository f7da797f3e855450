"""What a preset switches around one agent run: the system prompt (or a user's prompt file), the
model settings it implies (reasoning, thinking, output tokens), the opening message, and GIANT's
reruns of a trajectory that overran its step budget.

Kept apart from the loop so the loop reads a preset's fields in a few places only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from slidescout import prompts
from slidescout.agents.environment import Environment, ImageSetEnvironment, SlideEnvironment
from slidescout.agents.models import Model
from slidescout.agents.presets import Preset
from slidescout.core.messages import ImagePart, TextPart, Usage, UserMessage
from slidescout.core.trace import NoteEvent, Status
from slidescout.errors import ConfigError
from slidescout.tools.knowledge.criteria import criteria_card, load_cards

if TYPE_CHECKING:
    from slidescout.agents.loop import Agent
    from slidescout.agents.state import SampleState

# settings a user may set as flags (``--reasoning-effort`` ...); presets give defaults
MODEL_SETTINGS = ("reasoning_effort", "reasoning_summary", "thinking_budget", "max_output_tokens")
_OPENAI_ONLY = ("reasoning_effort", "reasoning_summary")
_ANTHROPIC_ONLY = ("thinking_budget",)
ONE_CALL_NOTE = (
    "Make exactly one tool call per turn: only the first call of a turn is run, and any "
    "further calls in that turn are rejected."
)


# ---- model settings -----------------------------------------------------------------------------


def check_model_settings(model_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that were set, or a one-line ``ConfigError`` when the provider cannot take one."""
    given = {k: v for k, v in settings.items() if v is not None}
    provider = (model_id or "").split(":", 1)[0].lower()
    if provider == "anthropic":
        bad = [k for k in _OPENAI_ONLY if k in given]
        if bad:
            raise ConfigError(
                f"--{bad[0].replace('_', '-')} applies to OpenAI reasoning models; for Claude "
                "use --thinking-budget"
            )
    elif provider == "openai":
        if "thinking_budget" in given:
            raise ConfigError(
                "--thinking-budget applies to Claude (anthropic:) models; for OpenAI reasoning "
                "models use --reasoning-effort"
            )
    elif given and provider in ("expert", "replay"):
        raise ConfigError(
            f"{', '.join('--' + k.replace('_', '-') for k in given)} apply to OpenAI and Claude "
            f"models, not to {provider}"
        )
    return given


def apply_model_defaults(model: Model, defaults: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Set a preset's settings on an adapter where the user left them unset; returns what was set.

    ``defaults`` maps an adapter's ``api`` to settings (``GIANT_MODEL_DEFAULTS``). Settings a
    model cannot take (reasoning on a non-reasoning model) are skipped."""
    wanted = defaults.get(getattr(model, "api", ""), {})
    applied: dict[str, Any] = {}
    for key, value in wanted.items():
        if key in ("reasoning_effort", "reasoning_summary"):
            if getattr(model, "reasoning", True) and getattr(model, key, None) is None:
                setattr(model, key, value)
                applied[key] = value
        elif key == "thinking_budget":
            if getattr(model, "thinking", "absent") is None:
                model.thinking = {"type": "enabled", "budget_tokens": int(value)}  # type: ignore[attr-defined]
                applied[key] = value
        elif hasattr(model, key) and getattr(model, key) is None:
            setattr(model, key, value)
            applied[key] = value
    return applied


def model_settings(model: Model) -> dict[str, Any]:
    """What the adapter sends for reasoning, thinking and output tokens (for the manifest)."""
    thinking = getattr(model, "thinking", None)
    out = {
        "reasoning_effort": getattr(model, "reasoning_effort", None),
        "reasoning_summary": getattr(model, "reasoning_summary", None),
        "thinking_budget": (thinking or {}).get("budget_tokens")
        if isinstance(thinking, dict)
        else None,
        "max_output_tokens": getattr(model, "max_output_tokens", None),
        "tool_result_images": getattr(model, "tool_result_images", None),
    }
    return {k: v for k, v in out.items() if v is not None}


# ---- prompts ------------------------------------------------------------------------------------


def read_prompt_file(path: str | Path) -> str:
    """A user's system prompt file (e.g. GIANT's exact text), or a one-line ``ConfigError``."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--system-prompt {path}: cannot read it ({type(exc).__name__}); give a UTF-8 text file"
        ) from None
    if not text.strip():
        raise ConfigError(f"--system-prompt {path}: the file is empty")
    return text


def prompt_template(preset: Preset) -> tuple[str, str]:
    """(name, template text) of a preset's system prompt: the user's file, else the packaged one."""
    if preset.prompt_file:
        text = (
            preset.prompt_text
            if preset.prompt_text is not None
            else read_prompt_file(preset.prompt_file)
        )
        return f"file:{Path(preset.prompt_file).name}", text
    if not preset.system_prompt:
        return "", ""
    return preset.system_prompt, prompts.load(preset.system_prompt)


def render_template(text: str, **values: object) -> str:
    return Template(text).safe_substitute({k: str(v) for k, v in values.items()}).strip()


def slide_system_prompt(agent: Agent, env: Environment) -> str:
    """The system prompt of a slide question under ``agent.preset`` ("" : none)."""
    name, text = prompt_template(agent.preset)
    if not text:
        return ""
    w, h = env.size
    mpp = env.mpp if agent.preset.show_mpp else None
    mpp_note = ""
    if mpp:
        mag = 10.0 / mpp
        mpp_note = f", at {mpp:.3f} µm per pixel (about {mag:.0f}x objective magnification)"
    return render_template(
        text,
        width=w,
        height=h,
        max_side=agent.max_side,
        max_steps=agent.max_steps,
        max_tool_steps=max(0, agent.max_steps - 1),
        mpp_note=mpp_note,
        patch_size=agent.preset.patch_size,
        one_call_note=ONE_CALL_NOTE if agent.one_call else "",
    )


def with_criteria_card(preset: Preset, system: str, task: str) -> str:
    """``system`` with the task's criteria card appended, under a preset with ``criteria_card``
    (not to a user's prompt file, nor where there is no system prompt)."""
    if not (preset.criteria_card and system) or preset.prompt_file:
        return system
    card = criteria_card(task)
    return f"{system}\n\n{card}" if card else system


def imageset_baseline_prompt(agent: Agent, env: ImageSetEnvironment) -> str:
    """The system prompt of a one-call image-set question (``thumbnail``: none; ``medframeqa``: the
    official instruction in our words, or the user's file)."""
    _, text = prompt_template(agent.preset)
    return render_template(text, n_images=len(env.imageset)) if text else ""


def prompt_hashes(agent: Agent) -> dict[str, str]:
    """sha256 of every prompt the run may send; a prompt file is hashed as read."""
    name, text = prompt_template(agent.preset)
    out = {n: prompts.sha256(n) for n in ("final_step", "imageset_system", "rethink_block")}
    if name:
        out[name] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if agent.preset.criteria_card and not agent.preset.prompt_file:
        for task in load_cards():
            card = criteria_card(task) or ""
            out[f"criteria_card:{task}"] = hashlib.sha256(card.encode("utf-8")).hexdigest()
    return out


def protocol_config(agent: Agent) -> dict[str, Any]:
    """The protocol part of a run's config (manifest and trace)."""
    p = agent.preset
    name, text = prompt_template(p)
    return {
        "protocol": {
            "forced_answer": p.forced_answer,
            "reruns": p.reruns,
            "one_tool_call_per_turn": agent.one_call,
            "show_mpp": p.show_mpp,
            "level_rule": p.level_rule,
            "guide_style": p.guide_style,
            "jpeg_quality": agent.jpeg_quality,
            "overview_detail": p.overview_detail,
            "parser": p.parser,
            "answer_tag": p.answer_tag,
            "system_prompt": name or None,
            "system_prompt_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()
            if text
            else None,
            "model_settings": model_settings(agent.model),
        }
    }


# ---- the opening message --------------------------------------------------------------------------


async def opening_message(agent: Agent, state: SampleState) -> UserMessage:
    """The question and what the model sees first: the slide's overview, or for an image set every
    frame as its own image (``imageset_start="frames"``) or the GIANT-era montage."""
    p, env = agent.preset, state.env
    parts: list[TextPart | ImagePart] = [TextPart(text=state.sample.question)]
    if isinstance(env, ImageSetEnvironment) and p.imageset_start == "frames":
        n = len(env.imageset)
        parts.append(
            TextPart(
                text=f"The {n} images, each shown whole (up to {agent.max_side} px on its long side):"
            )
        )
        for i in range(n):
            view = await asyncio.to_thread(env.imageset.view, i + 1, agent.max_side)
            view.meta.setdefault("source", f"image:{i + 1}")
            part = await asyncio.to_thread(
                agent.show, state, view, purpose="overview", label=f"image {i + 1}"
            )
            w, h = env.imageset.get(i + 1).dimensions
            parts += [TextPart(text=f"Image {i + 1} ({w} x {h} px):"), part]
        return UserMessage(parts=parts)
    side = p.overview_side or agent.max_side
    if isinstance(env, SlideEnvironment):
        overview = await asyncio.to_thread(
            env.overview, side, agent.guides, p.level_rule, p.guide_style
        )
        caption = env.overview_caption(overview, p.show_mpp)
    else:
        overview = await asyncio.to_thread(env.overview, side, agent.guides)
        caption = env.overview_caption(overview)
    part = await asyncio.to_thread(
        agent.show, state, overview, purpose="overview", label="overview"
    )
    part = ImagePart(image=part.image, data=part.data, detail=p.overview_detail)
    return UserMessage(parts=[*parts, TextPart(text=caption), part])


# ---- reruns -------------------------------------------------------------------------------------


def _spent(after: Usage, before: Usage) -> Usage:
    return Usage(
        input_tokens=after.input_tokens - before.input_tokens,
        output_tokens=after.output_tokens - before.output_tokens,
        reasoning_tokens=after.reasoning_tokens - before.reasoning_tokens,
        cached_input_tokens=after.cached_input_tokens - before.cached_input_tokens,
        cost_usd=None
        if after.cost_usd is None or before.cost_usd is None
        else after.cost_usd - before.cost_usd,
    )


async def run_with_reruns(
    agent: Agent, state: SampleState, attempt_fn: Callable[[], Awaitable[Status]]
) -> Status:
    """Run one trajectory; when it overruns T (status ``max_steps``: a tool call on the last step)
    run it again from the start, up to ``preset.reruns`` more times, as GIANT's benchmark runner
    does. Each discarded attempt is kept in the trace as a note and in ``config["reruns"]``
    (status, calls, tokens, cost, the views it saw); its cost stays in ``trace.usage``. After the
    last rerun the status stays ``max_steps`` with no answer, so the question counts as wrong."""
    trace = state.trace
    reruns = max(0, int(agent.preset.reruns))
    attempts: list[dict[str, Any]] = []
    notes: list[NoteEvent] = []
    for attempt in range(reruns + 1):
        before = trace.usage
        status = await attempt_fn()
        if status != "max_steps" or attempt == reruns:
            if attempts:
                trace.config = {**trace.config, "reruns": attempts}
                trace.events = [*notes, *trace.events]
                state.note(json.dumps({"reruns": len(attempts), "final_status": status}))
            return status
        spent = _spent(trace.usage, before)
        boxes = [list(i.box) for i in trace.images() if i.box]
        summary = {
            "rerun_of_attempt": attempt + 1,
            "status": status,
            "model_calls": trace.n_steps,
            "input_tokens": spent.input_tokens,
            "output_tokens": spent.output_tokens,
            "cost_usd": spent.cost_usd,
            "views": boxes,
        }
        attempts.append(summary)
        notes.append(
            NoteEvent(
                id=state.ids("n"),
                message=json.dumps(
                    {
                        "rerun": attempt + 1,
                        "of": reruns,
                        "reason": "the model still called a tool at the last step",
                        **summary,
                    }
                ),
            )
        )
        trace.events = []
        trace.answer = None
        state.messages = []
        state.consecutive_errors = 0
    return "max_steps"  # pragma: no cover - the loop always returns
