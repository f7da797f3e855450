"""``FunctionModel``: a Model whose replies come from a Python function, for tests and plugin authors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from slidescout.agents.models.profile import ModelProfile, permissive_profile
from slidescout.core.messages import (
    AssistantMessage,
    ModelApi,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    Usage,
)
from slidescout.core.model_settings import ModelSettings


def reply(text: str = "", *calls: tuple[str, dict[str, Any]]) -> AssistantMessage:
    """An assistant message with text and ``(tool name, arguments)`` calls."""
    parts: list[Any] = [TextPart(text=text)] if text else []
    parts += [
        ToolCallPart(id=f"call_{i}_{name}", name=name, arguments=args)
        for i, (name, args) in enumerate(calls)
    ]
    return AssistantMessage(parts=parts)


class FunctionModel:
    """Calls ``fn(request, turn)`` (sync or async) for each model turn; it returns an AssistantMessage
    (or a ModelResponse, or raises, e.g. ``ModelError``). ``requests`` keeps every request seen."""

    api: ModelApi = "function"

    def __init__(
        self,
        fn: Callable[[ModelRequest, int], Any],
        *,
        name: str = "function:test",
        usage: Usage | None = None,
        profile: ModelProfile | None = None,
        settings: ModelSettings | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.profile = profile or permissive_profile(name)  # carries every setting by default
        self.settings = settings or ModelSettings()
        self.usage = usage or Usage(input_tokens=100, output_tokens=20, cost_usd=0.001)
        self.requests: list[ModelRequest] = []

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.requests.append(req)
        out = self.fn(req, len(self.requests) - 1)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, ModelResponse):
            return out
        return ModelResponse(message=out, usage=self.usage, model=self.name, api=self.api)

    async def aclose(self) -> None:
        return None


def script(*messages: AssistantMessage) -> Callable[[ModelRequest, int], AssistantMessage]:
    """A function for FunctionModel that replays ``messages`` in order (the last one repeats)."""

    def fn(_req: ModelRequest, turn: int) -> AssistantMessage:
        return messages[min(turn, len(messages) - 1)]

    return fn
