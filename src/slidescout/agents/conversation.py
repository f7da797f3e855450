"""Follow-up questions in the same conversation, and region hints.

A follow-up is a new sample (its own trace and record) whose agent starts from an earlier turn's
messages instead of a fresh opening: the system prompt, the overview and every image already seen
stay in the history (the preset's context rules still decide which images are sent again), and the
follow-up question is appended as a user message. ``Agent.run(sample, recorder, history=...)``
takes it; ``eval.sample_run.run_sample`` passes it through.

A region hint is a level-0 box the user points at; :func:`with_region_hint` adds it to the
question text (``prompts/region_hint.md``), so the model receives its coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slidescout import prompts
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    TextPart,
    ToolMessage,
    ToolResultPart,
    UserMessage,
)
from slidescout.core.recorder import Recorder
from slidescout.core.trace import Trace
from slidescout.errors import ConfigError

__all__ = ["Conversation", "RegionBox", "parse_region", "region_hint", "with_region_hint"]

RegionBox = tuple[int, int, int, int]


@dataclass
class Conversation:
    """The messages of the turns so far, ready to be continued.

    ``n_first``: images of the opening message (the overview), never pruned. Images carry their
    bytes in memory (``ImagePart.data``); :meth:`from_trace` reads them back from a recorder."""

    messages: list[Message] = field(default_factory=list)
    n_first: int = 1

    @classmethod
    def from_trace(cls, trace: Trace, images: Recorder) -> Conversation:
        """Continue a recorded turn (its ``messages``), its images read from ``images``."""
        messages = [_hydrate(m, images) for m in trace.messages]
        first = next((i for i, m in enumerate(messages) if isinstance(m, UserMessage)), -1)
        n_first = (
            sum(isinstance(p, ImagePart) for p in messages[first].parts)  # type: ignore[union-attr]
            if first >= 0
            else 0
        )
        return cls(messages=messages, n_first=n_first)

    def complete(self) -> list[Message]:
        """The messages up to the last complete exchange: a turn stopped after the model asked for
        a tool, before its result, loses that unanswered request (providers refuse it)."""
        out = list(self.messages)
        while out and isinstance(out[-1], AssistantMessage) and out[-1].tool_calls:
            out.pop()
        return out

    def continued(self, question: str) -> list[Message]:
        """The history followed by the follow-up question: the messages a follow-up starts from."""
        if not self.messages:
            raise ConfigError("a follow-up needs an earlier turn; ask a first question")
        return [*self.complete(), UserMessage(parts=[TextPart(text=question)])]


def _hydrate(message: Message, images: Recorder) -> Message:
    """``message`` with the bytes of its images (read from the recorder where they are missing)."""

    def part(p: ImagePart) -> ImagePart:
        if p.data is not None:
            return p
        return p.model_copy(update={"data": images.get_image(p.image.sha256)})

    if isinstance(message, UserMessage):
        return UserMessage(
            parts=[part(p) if isinstance(p, ImagePart) else p for p in message.parts]
        )
    if isinstance(message, ToolMessage):
        return ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id=r.tool_call_id,
                    name=r.name,
                    is_error=r.is_error,
                    content=[part(c) if isinstance(c, ImagePart) else c for c in r.content],
                )
                for r in message.results
            ]
        )
    return message


def parse_region(value: object) -> RegionBox | None:
    """A level-0 box ``(x, y, w, h)`` from a list, tuple or ``"x,y,w,h"``; None for nothing given.

    A malformed box is a one-line ``ConfigError``."""
    if value is None or value == "" or value == []:
        return None
    items: object = value.replace(" ", "").split(",") if isinstance(value, str) else value
    try:
        if not isinstance(items, (list, tuple)):
            raise TypeError
        box = tuple(int(round(float(v))) for v in items)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"region {value!r}: give four numbers x,y,w,h in level-0 pixels"
        ) from None
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] < 1 or box[3] < 1:
        raise ConfigError(
            f"region {value!r}: give x,y (0 or more) and w,h (1 or more) in level-0 pixels"
        )
    return box  # type: ignore[return-value]


def region_hint(box: RegionBox) -> str:
    """The sentence that gives the model a region hint's level-0 box."""
    x, y, w, h = box
    return prompts.render("region_hint", x=x, y=y, w=w, h=h)


def with_region_hint(question: str, box: RegionBox | None) -> str:
    """``question`` followed by the region hint (unchanged without a box)."""
    return question if box is None else f"{question.strip()}\n\n{region_hint(box)}"
