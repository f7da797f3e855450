"""What a preset switches around one agent run: the system prompt (or a user's prompt file), the
opening message, the protocol part of the manifest, and GIANT's reruns of a trajectory that
overran its step budget. (The preset's model settings are merged in ``agents.models.profile``.)

Kept apart from the loop so the loop reads a preset's fields in a few places only.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template
from typing import Any

from slidescout import prompts
from slidescout.agents.environment import Environment
from slidescout.agents.presets import Preset
from slidescout.agents.run_settings import Hooks, RunSettings
from slidescout.agents.state import SampleState
from slidescout.core.messages import ImagePart, TextPart, UserMessage
from slidescout.core.trace import NoteEvent, Status
from slidescout.tools.knowledge.criteria import criteria_card, load_cards
from slidescout.tools.timeouts import run_in_daemon_thread

ONE_CALL_NOTE = (
    "Make exactly one tool call per turn: only the first call of a turn is run, and any "
    "further calls in that turn are rejected."
)


# ---- prompts ------------------------------------------------------------------------------------


def prompt_template(preset: Preset) -> tuple[str, str]:
    """(name, template text) of a preset's system prompt: the user's file, else the packaged one."""
    if preset.prompt_file:
        text = (
            preset.prompt_text
            if preset.prompt_text is not None
            else prompts.read_file(preset.prompt_file)
        )
        return f"file:{Path(preset.prompt_file).name}", text
    if not preset.system_prompt:
        return "", ""
    return preset.system_prompt, prompts.load(preset.system_prompt)


def render_template(text: str, **values: object) -> str:
    return Template(text).safe_substitute({k: str(v) for k, v in values.items()}).strip()


def slide_system_prompt(settings: RunSettings, env: Environment) -> str:
    """The system prompt of a slide question under ``settings.preset`` ("" : none)."""
    name, text = prompt_template(settings.preset)
    if not text:
        return ""
    w, h = env.size
    mpp = env.mpp if settings.preset.show_mpp else None
    mpp_note = ""
    if mpp:
        mag = 10.0 / mpp
        mpp_note = f", at {mpp:.3f} µm per pixel (about {mag:.0f}x objective magnification)"
    return render_template(
        text,
        width=w,
        height=h,
        max_side=settings.max_side,
        max_steps=settings.max_steps,
        max_tool_steps=max(0, settings.max_steps - 1),
        views_per_turn=settings.views_per_turn,
        mpp_note=mpp_note,
        patch_size=settings.preset.patch_size,
        one_call_note=ONE_CALL_NOTE if settings.one_call else "",
    )


def with_criteria_card(preset: Preset, system: str, task: str) -> str:
    """``system`` with the task's criteria card appended, under a preset with ``criteria_card``
    (not to a user's prompt file, nor where there is no system prompt)."""
    if not (preset.criteria_card and system) or preset.prompt_file:
        return system
    card = criteria_card(task)
    return f"{system}\n\n{card}" if card else system


def imageset_baseline_prompt(preset: Preset, n_images: int) -> str:
    """The system prompt of a one-call image-set question (``thumbnail``: none; ``medframeqa``: the
    official instruction in our words, or the user's file)."""
    _, text = prompt_template(preset)
    return render_template(text, n_images=n_images) if text else ""


def prompt_hashes(preset: Preset) -> dict[str, str]:
    """sha256 of every prompt the run may send; a prompt file is hashed as read."""
    name, text = prompt_template(preset)
    out = {n: prompts.sha256(n) for n in ("final_step", "imageset_system", "rethink_block")}
    if preset.parser == "medframeqa":  # the official user-message layout
        out["medframeqa_user"] = prompts.sha256("medframeqa_user")
    if name:
        out[name] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if preset.criteria_card and not preset.prompt_file:
        for task in load_cards():
            card = criteria_card(task) or ""
            out[f"criteria_card:{task}"] = hashlib.sha256(card.encode("utf-8")).hexdigest()
    return out


def protocol_config(settings: RunSettings) -> dict[str, Any]:
    """The protocol part of a run's config (manifest and trace)."""
    p = settings.preset
    name, text = prompt_template(p)
    return {
        "protocol": {
            "forced_answer": p.forced_answer,
            "reruns": p.reruns,
            "one_tool_call_per_turn": settings.one_call,
            "show_mpp": p.show_mpp,
            "level_rule": p.level_rule,
            "guide_style": p.guide_style,
            "message_style": p.message_style,
            "box_clamp": p.box_clamp,
            "tool_errors": p.tool_errors,
            "jpeg_quality": settings.jpeg_quality,
            "budget_unit": settings.budget_unit,
            "views_per_turn": settings.views_per_turn,
            "fit_context": p.fit_context,
            "context_window": settings.context_window,
            "prompt_cache": settings.prompt_cache,
            "overview_detail": p.overview_detail,
            "parser": p.parser,
            "answer_tag": p.answer_tag,
            "system_prompt": name or None,
            "system_prompt_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()
            if text
            else None,
            "model_settings": settings.model.settings.given(),
            "model_settings_dropped": dict(settings.model.dropped),
        }
    }


# ---- the opening message --------------------------------------------------------------------------


async def opening_message(hooks: Hooks, state: SampleState) -> UserMessage:
    """The question and what the model sees first: the slide's overview, or for an image set every
    frame as its own image (``imageset_start="frames"``) or the GIANT-era montage."""
    settings, env = hooks.settings, state.env
    p = settings.preset
    parts: list[TextPart | ImagePart] = [TextPart(text=state.sample.question)]
    images = env.imageset
    if images is not None and p.imageset_start == "frames":
        n = len(images)
        parts.append(
            TextPart(
                text=f"The {n} images, each shown whole (up to {settings.max_side} px on its long side):"
            )
        )
        for i in range(n):
            # renders in a daemon thread: one that hangs (a damaged file) is left behind at the
            # sample's deadline and never keeps the process from exiting
            view = await run_in_daemon_thread(
                functools.partial(images.view, i + 1, settings.max_side)
            )
            view.meta.setdefault("source", f"image:{i + 1}")
            part = await asyncio.to_thread(
                functools.partial(
                    hooks.show, state, view, purpose="overview", label=f"image {i + 1}"
                )
            )
            w, h = images.get(i + 1).dimensions
            parts += [TextPart(text=f"Image {i + 1} ({w} x {h} px):"), part]
        return UserMessage(parts=parts)
    side = p.overview_side or settings.max_side
    overview = await run_in_daemon_thread(
        functools.partial(env.overview, side, settings.guides, p.level_rule, p.guide_style)
    )
    caption = env.overview_caption(overview, p.show_mpp)
    part = await asyncio.to_thread(
        functools.partial(hooks.show, state, overview, purpose="overview", label="overview")
    )
    part = ImagePart(image=part.image, data=part.data, detail=p.overview_detail)
    if p.message_style == "giant":  # GIANT's opening message: the question, then the overview
        return UserMessage(parts=[*parts, part])
    return UserMessage(parts=[*parts, TextPart(text=caption), part])


# ---- reruns -------------------------------------------------------------------------------------


async def run_with_reruns(
    reruns: int, state: SampleState, attempt_fn: Callable[[], Awaitable[Status]]
) -> Status:
    """Run one trajectory; when it overruns T (status ``max_steps``: a tool call on the last step)
    run it again from the start, up to ``preset.reruns`` more times, as GIANT's benchmark runner
    does. Each discarded attempt is kept in the trace as a note and in ``config["reruns"]``
    (status, calls, tokens, cost, the views it saw); its cost stays in ``trace.usage``. After the
    last rerun the status stays ``max_steps`` with no answer, so the question counts as wrong."""
    trace = state.trace
    reruns = max(0, int(reruns))
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
        spent = trace.usage - before
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
