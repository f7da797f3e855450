"""Anthropic Messages API adapter (``/v1/messages``).

Choices:

- System text goes into ``system``; images are base64 ``image`` blocks.
- Tool results are ``tool_result`` blocks (text and image blocks inside, ``is_error`` set),
  first in the user turn that follows the ``tool_use`` turn; consecutive turns of one role are
  merged, empty text blocks are left out (the API rejects both).
- Thinking: the setting ``thinking_budget=N`` enables extended thinking. ``thinking`` and ``redacted_thinking`` blocks are kept whole in
  ``ReasoningPart.provider_data`` (signature / data included) and sent back verbatim before the
  turn's tool calls, as the API requires. With thinking on, ``temperature`` is not sent and
  ``tool_choice="required"`` becomes "auto" (the API allows no forced tool use with thinking).
- ``tool_choice``: auto → auto, required → any, none → none. A request without tools whose
  history holds tool calls (the loop's forced final step) declares stub definitions of those
  tools with ``tool_choice`` none: the API requires tools to be defined when ``tool_use``
  blocks are present.
- ``max_tokens`` is required: the setting ``max_output_tokens``, default 4096, raised above the
  thinking budget when needed.
- Prompt caching (the setting ``prompt_cache``: on under ``scout``, off under ``giant`` and the
  baselines, as GIANT's requests; ``--prompt-cache`` says otherwise): a ``cache_control``
  breakpoint on the last block of the request, so each turn reads the previous turns from the
  cache, and one at the end of the first turn (the system prompt, the question and the
  overview), which stays cached when old images are dropped to fit the context window. Cache
  reads are billed at the cached rate, cache writes at the cache-write rate
  (``agents.models.accounting``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slidescout.agents.models.base import (
    AdapterOptions,
    ModelAdapter,
    Parsed,
    TokenCounts,
    parse_arguments,
    system_text,
    window_of,
)
from slidescout.agents.models.profile import ModelProfile
from slidescout.agents.models.wire import Raw, dumps, encode_list, encode_object
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from slidescout.core.model_settings import ModelSettings

PROVIDER_TAG = "anthropic"
DEFAULT_MAX_TOKENS = 4096
_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_THINKING = ("thinking", "redacted_thinking")
_CACHE_CONTROL = b',"cache_control":{"type":"ephemeral"}}'


@dataclass(frozen=True)
class _Piece:
    """One message's part of the request: its role, its blocks as (type, JSON bytes), and the
    names of the tools it called."""

    role: str
    blocks: tuple[tuple[str, bytes], ...]
    tools: tuple[str, ...]

    @classmethod
    def of(cls, role: str, blocks: list[dict[str, Any]]) -> _Piece:
        used = tuple(b["name"] for b in blocks if b.get("type") == "tool_use")
        return cls(role, tuple((str(b.get("type")), dumps(b)) for b in blocks), used)


@dataclass
class _Turn:
    """A turn being assembled: consecutive pieces of one role."""

    role: str
    blocks: list[tuple[str, bytes]] = field(default_factory=list)

    def encode(self) -> bytes:
        return encode_object(
            {"role": self.role, "content": Raw(encode_list(b for _, b in self.blocks))}
        )


class AnthropicModel(ModelAdapter):
    """``anthropic:MODEL``. Carries extended thinking, cache breakpoints, parallel tool use (off),
    output tokens and temperature (not with thinking)."""

    api = "anthropic-messages"
    path = "/v1/messages"

    @classmethod
    def profile_for(
        cls, provider: str, model: str, options: AdapterOptions, *, custom_endpoint: bool
    ) -> ModelProfile:
        openai_only = "{flag} applies to OpenAI reasoning models; for Claude use --thinking-budget"
        return ModelProfile(
            api=cls.api,
            provider=provider,
            model=f"{provider}:{model}",
            route="the Messages API",
            tools=True if options.tools is None else options.tools,
            images=options.images,
            custom_endpoint=custom_endpoint,
            context_window=window_of(provider, model, options, custom_endpoint),
            request_layout=True,
            thinking=True,
            inline_tool_images=True,  # tool_result blocks hold their images
            parallel_tool_calls=True,
            cache_breakpoints=True,
            max_images=100,
            refusals={
                "reasoning_effort": openai_only.format(flag="--reasoning-effort"),
                "reasoning_summary": openai_only.format(flag="--reasoning-summary"),
            },
        )

    def default_settings(self) -> ModelSettings:
        # max_tokens is required by the API; cache breakpoints only when a preset or flag asks
        return ModelSettings(max_output_tokens=DEFAULT_MAX_TOKENS)

    # -- request -----------------------------------------------------------------------------
    def _image(self, part: ImagePart) -> dict[str, Any]:
        return {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": part.image.media_type,
                "data": self.images.b64(part),
            },
        }

    def _blocks(self, parts: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in parts:
            if isinstance(p, TextPart):
                if p.text.strip():
                    out.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                out.append(self._image(p))
        return out

    def _piece(self, msg: Message, giant: bool) -> _Piece | None:
        """One message's blocks (each encoded), its role, and the tools it called; None for a
        system message (it goes to ``system``)."""
        if isinstance(msg, UserMessage):
            return _Piece.of("user", self._blocks(list(msg.parts)))
        if isinstance(msg, AssistantMessage):
            blocks: list[dict[str, Any]] = []
            for p in msg.parts:
                if isinstance(p, ReasoningPart):
                    data = p.provider_data
                    if p.provider == PROVIDER_TAG and data.get("type") in _THINKING:
                        blocks.append(dict(data))
                elif isinstance(p, TextPart):
                    if p.text.strip():
                        blocks.append({"type": "text", "text": p.text})
                elif isinstance(p, ToolCallPart):
                    args = p.arguments if not p.parse_error else {}
                    blocks.append({"type": "tool_use", "id": p.id, "name": p.name, "input": args})
            return _Piece.of("assistant", blocks)
        if isinstance(msg, ToolMessage):
            results: list[dict[str, Any]] = []
            for r in msg.results:
                content: Any = self._blocks(list(r.content)) or [
                    {"type": "text", "text": "(no output)"}
                ]
                if giant and all(c["type"] == "text" for c in content):
                    # GIANT sends a text-only result (an error) as a plain string
                    content = "\n".join(c["text"] for c in content)
                block: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": r.tool_call_id,
                    "content": content,
                }
                if r.is_error:
                    block["is_error"] = True
                results.append(block)
            return _Piece.of("user", results)
        return None

    def _turns(self, req: ModelRequest, giant: bool) -> tuple[list[_Turn], list[str]]:
        """The turns (consecutive messages of one role merged, empty ones left out: the API
        rejects both) from each message's cached blocks, and the tools the history called."""
        turns: list[_Turn] = []
        used: list[str] = []
        for msg in req.messages:
            piece = self.wire.get(msg, ("turn", giant), self._piece, msg, giant)
            if piece is None:
                continue
            used.extend(n for n in piece.tools if n not in used)
            if not piece.blocks:
                continue
            if turns and turns[-1].role == piece.role:
                turns[-1].blocks.extend(piece.blocks)
            else:
                turns.append(_Turn(piece.role, list(piece.blocks)))
        return turns, used

    def build_request(self, req: ModelRequest, settings: ModelSettings) -> dict[str, Any]:
        turns, used = self._turns(req, giant=settings.request_layout == "giant")
        max_tokens = settings.max_output_tokens or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {"model": self.model, "messages": None}
        system = system_text(req.messages)
        if system:
            body["system"] = system
        thinking = settings.thinking_budget
        self._add_tools(body, req, used, settings, thinking=bool(thinking))
        if thinking:
            body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
            if max_tokens <= thinking:
                max_tokens = thinking + max_tokens
        elif settings.temperature is not None:
            body["temperature"] = settings.temperature
        body["max_tokens"] = max_tokens
        if settings.prompt_cache and turns:
            self._breakpoints(turns)
        body["messages"] = Raw(encode_list(t.encode() for t in turns))
        return body

    @staticmethod
    def _breakpoints(turns: list[_Turn]) -> None:
        """``cache_control`` where it pays (at most 3 of the 4 allowed): the end of the first turn
        (the system prompt, the question and the overview: it stays cached when old images are
        dropped, and across repeats of a sample), the end of the previous request (its last user
        turn: read back exactly, however many blocks the last turn added, where Claude looks back
        only 20 blocks from a breakpoint) and the end of this one (written for the next)."""
        users = [i for i, t in enumerate(turns) if t.role == "user"]
        marked = {users[0], len(turns) - 1, *(users[-2:-1] if len(users) > 1 else [])}
        for i in sorted(marked):
            blocks = turns[i].blocks
            kind, data = blocks[-1]
            if kind not in _THINKING:  # the block's JSON, one key longer (``cache_control``)
                blocks[-1] = (kind, data[:-1] + _CACHE_CONTROL)

    def _add_tools(
        self,
        body: dict[str, Any],
        req: ModelRequest,
        used: list[str],
        settings: ModelSettings,
        *,
        thinking: bool,
    ) -> None:
        """``tools`` and ``tool_choice``: the tools offered, or stubs of those the history used."""
        choice = req.tool_choice
        giant = settings.request_layout == "giant"
        if req.tools:
            body["tools"] = Raw(
                encode_list(
                    self.wire.get(t, ("tool", giant), self._encoded_tool, t, giant)
                    for t in req.tools
                )
            )
        elif used:
            body["tools"] = [
                {
                    "name": n,
                    "description": "(not available this turn)",
                    "input_schema": {"type": "object", "properties": {}},
                }
                for n in used
            ]
            choice = "none"
        if "tools" in body:
            if choice == "required" and thinking:
                choice = "auto"
            tc: dict[str, Any] = dict(_TOOL_CHOICE[choice])
            if settings.parallel_tool_calls is False and choice != "none":
                tc["disable_parallel_tool_use"] = True
            if not (giant and tc == {"type": "auto"}):  # GIANT leaves it to the default
                body["tool_choice"] = tc

    def _encoded_tool(self, t: ToolSpec, giant: bool) -> bytes:
        return dumps(self._tool(t, giant))

    @staticmethod
    def _tool(t: ToolSpec, giant: bool) -> dict[str, Any]:
        return {
            "name": t.name,
            "description": t.description,
            # GIANT's layout: the schema as its code declares it
            "input_schema": {
                k: v for k, v in t.parameters.items() if not (giant and k == "additionalProperties")
            },
        }

    # -- response ----------------------------------------------------------------------------
    def parse_response(self, raw: dict[str, Any]) -> Parsed:
        parts: list[Any] = []
        for block in raw.get("content") or []:
            kind = block.get("type")
            if kind == "thinking":
                parts.append(
                    ReasoningPart(
                        text=block.get("thinking", ""), provider=PROVIDER_TAG, provider_data=block
                    )
                )
            elif kind == "redacted_thinking":
                parts.append(ReasoningPart(text="", provider=PROVIDER_TAG, provider_data=block))
            elif kind == "text":
                parts.append(TextPart(text=block.get("text", "")))
            elif kind == "tool_use":
                parts.append(
                    parse_arguments(block.get("id", ""), block.get("name", ""), block.get("input"))
                )
        message = AssistantMessage(parts=parts, provider_response_id=raw.get("id"))
        usage = raw.get("usage") or {}
        read = int(usage.get("cache_read_input_tokens") or 0)
        write = int(usage.get("cache_creation_input_tokens") or 0)
        counts = TokenCounts(
            input=int(usage.get("input_tokens") or 0) + read + write,
            output=int(usage.get("output_tokens") or 0),
            cached=read,
            cache_write=write,
        )
        stop = raw.get("stop_reason")
        return Parsed(
            message=message, counts=counts, stop_reason=_STOP.get(stop, stop) if stop else None
        )
