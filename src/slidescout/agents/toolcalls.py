"""Running the tool calls of one model turn: validation, dispatch (the calls of a turn run
concurrently), errors as observations, images stored by hash, and the note of how many calls (or
views) remain."""

from __future__ import annotations

import asyncio
import time

from slidescout.agents.state import SampleState
from slidescout.core.messages import ImagePart, TextPart, ToolCallPart, ToolResultPart
from slidescout.core.trace import ToolEvent
from slidescout.core.types import MessageStyle
from slidescout.errors import ToolError
from slidescout.tools.results import ToolImage

__all__ = ["run_tool_calls"]


async def run_tool_calls(
    state: SampleState,
    calls: list[ToolCallPart],
    *,
    step: int,
    remaining: int,
    max_calls: int | None = None,
    refusal: str = "only one tool call per turn is allowed",
    unit: str = "tool calls",
    jpeg_quality: int = 90,
    style: MessageStyle = "scout",
) -> tuple[list[ToolResultPart], int]:
    """Run ``calls`` (concurrently; results and events stay in call order); their results for
    the model and how many failed.

    A ``ToolError`` (``ToolTimeout`` included: a call past its tool's ``timeout_s`` is abandoned),
    an unknown tool or unparsable arguments go back to the model as an error observation; any
    other exception is recorded on the event. A call cancelled by the sample's deadline is
    recorded before the cancellation goes on. ``max_calls``: only the first ``max_calls`` calls
    run, the others get ``refusal`` (GIANT's Claude agent: 1; ``scout``: the views per turn, or
    the views left). ``remaining``: the calls (``unit``) left after this turn, said in every
    result. ``style="giant"``: as GIANT's results, the calls remaining end the result's own text,
    and a failed call gets ``Error: ...`` alone, not flagged as an error (the event still records
    it)."""
    tools, ctx = state.tools, state.ctx
    assert tools is not None and ctx is not None, "Agent.start() sets the tools"
    events = [ToolEvent(id=state.ids("t"), step=step, call=call) for call in calls]

    async def run(i: int, call: ToolCallPart, ev: ToolEvent) -> list[TextPart | ImagePart]:
        t0 = time.monotonic()
        content: list[TextPart | ImagePart] = []
        if max_calls is not None and i >= max_calls:
            ev.error = f"{refusal}; this call was not run."
        elif call.parse_error:
            ev.error = f"could not parse the arguments of {call.name}: {call.parse_error}. Send valid JSON arguments."
        elif call.name not in tools:
            offered = ", ".join(s.name for s in tools.specs) or "none"
            ev.error = f"unknown tool {call.name!r}; available tools: {offered}"
        else:
            try:
                result = await tools.invoke(call.name, call.arguments, ctx)
            except asyncio.CancelledError:  # the sample's deadline, a stop: the call is on record
                ev.error = f"the call to {call.name} was cancelled: the sample ended while it ran"
                ev.duration_s = time.monotonic() - t0
                state.trace.events.append(ev)
                raise
            except ToolError as exc:
                ev.error = str(exc)
            except Exception as exc:
                ev.internal_error = f"{type(exc).__name__}: {exc}"
                ev.error = f"the tool {call.name} failed unexpectedly ({type(exc).__name__}); try something else"
            else:
                ev.text = result.text or ""
                ev.data = dict(result.data or {})
                for img in result.images:  # encode + store off the event loop
                    part = await asyncio.to_thread(_store_tool_image, state, img, jpeg_quality)
                    ev.images.append(part.image)
                    content.append(part)
        ev.duration_s = time.monotonic() - t0
        return content

    contents = await asyncio.gather(
        *(run(i, c, ev) for i, (c, ev) in enumerate(zip(calls, events, strict=True)))
    )
    results = [
        ToolResultPart(
            tool_call_id=call.id,
            name=call.name,
            content=[TextPart(text=_result_text(ev, remaining, style, unit)), *content],
            is_error=bool(ev.error) and style != "giant",
        )
        for call, ev, content in zip(calls, events, contents, strict=True)
    ]
    state.trace.events.extend(events)
    return results, sum(bool(ev.error) for ev in events)


def _result_text(ev: ToolEvent, remaining: int, style: MessageStyle, unit: str) -> str:
    """The text of a call's result: its output (or ``Error: ...``) and the calls remaining."""
    if style == "giant":
        if ev.error:
            return f"Error: {ev.error}"
        return f"{ev.text} {max(0, remaining)} function calls remain.".strip()
    note = (
        f"{remaining} {unit} remain."
        if remaining > 0
        else f"No {unit} remain: give your final answer next."
    )
    return f"Error: {ev.error}\n{note}" if ev.error else f"{ev.text}\n{note}".strip()


def _store_tool_image(state: SampleState, img: ToolImage, quality: int) -> ImagePart:
    """A tool's image encoded once (``to_ref``), recorded by hash, ready to send."""
    ref, data = img.to_ref(quality, state.env.source_id)
    state.recorder.put_image(data, ref.media_type)
    return ImagePart(image=ref, data=data, detail=img.detail)
