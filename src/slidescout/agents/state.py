"""The state one running sample owns: its trace, environment, history and counters."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from slidescout.agents.conversation import Conversation
from slidescout.agents.environment import Environment
from slidescout.core.messages import Message
from slidescout.core.recorder import Recorder
from slidescout.core.sample import Sample
from slidescout.core.trace import ErrorEvent, NoteEvent, Trace
from slidescout.tools.context import ToolContext
from slidescout.tools.registry import ToolSet

__all__ = ["EventIds", "SampleState"]


class EventIds:
    """Event ids of one trace: ``m1``, ``t2``, ``i3``..."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}{next(self._n)}"


@dataclass
class SampleState:
    """Everything one running sample owns: its trace, environment, history and counters."""

    sample: Sample
    env: Environment
    recorder: Recorder
    trace: Trace
    started: float = field(default_factory=time.monotonic)
    ids: EventIds = field(default_factory=EventIds)
    messages: list[Message] = field(default_factory=list)
    tools: ToolSet | None = None
    ctx: ToolContext | None = None
    consecutive_errors: int = 0
    n_first: int = 1  # images of the opening message (the overview, or every frame): never pruned
    history: Conversation | None = (
        None  # a follow-up continues these messages (see conversation.py)
    )
    views_used: int = 0  # tool calls run (the step budget under budget_unit="views")
    dropped: int = 0  # old images dropped to fit the context window (after the first ones)

    def note(self, message: str, step: int | None = None) -> None:
        self.trace.events.append(NoteEvent(id=self.ids("n"), step=step, message=message))

    def error(
        self,
        message: str,
        *,
        step: int | None = None,
        fatal: bool = False,
        error_type: str = "",
        duration_s: float = 0.0,
    ) -> None:
        self.trace.events.append(
            ErrorEvent(
                id=self.ids("e"),
                step=step,
                message=message,
                fatal=fatal,
                error_type=error_type,
                duration_s=duration_s,
            )
        )
