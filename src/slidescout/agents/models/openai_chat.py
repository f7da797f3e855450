"""OpenAI Chat Completions adapter (``/v1/chat/completions``): any OpenAI-compatible server.

The default for a ``--base-url`` that is not OpenAI's (vLLM, Ollama, llama.cpp, proxies).

Choices:

- Images are ``image_url`` parts with a base64 data URL and the part's ``detail``.
- Tool messages are text-only in Chat Completions: a tool result's text goes into the ``tool``
  message, and its images follow in one user message after all the tool messages of the turn.
- Reasoning that a server returns (``reasoning_content``, DeepSeek/vLLM style, or
  ``reasoning``) is kept as a ``ReasoningPart`` but never sent back (DeepSeek rejects it).
- Malformed tool-call argument JSON becomes a ``ToolCallPart`` with ``parse_error`` set.
- ``max_completion_tokens`` for OpenAI's endpoint, ``max_tokens`` for other servers.
- A model without function calling (``tools=False``, or a known name such as llava) gets the
  JSON-action fallback of ``json_actions``.
- Reasoning summaries and inline tool images need the Responses API: the profile refuses them
  here with a line that names ``--api responses``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slidescout.agents.models.base import (
    AdapterOptions,
    ModelAdapter,
    Parsed,
    TokenCounts,
    arguments_json,
    parse_arguments,
    result_images,
    result_text,
    window_of,
)
from slidescout.agents.models.openai_responses import is_reasoning_model
from slidescout.agents.models.profile import ModelProfile
from slidescout.agents.models.wire import Raw, dumps, encode_list
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    ReasoningPart,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from slidescout.core.model_settings import ModelSettings

log = logging.getLogger("slidescout.models")

PROVIDER_TAG = "openai-chat"
# vision models known to lack function calling (local servers); tools=True overrides
_NO_TOOLS = re.compile(
    r"(llava|bakllava|moondream|minicpm-v|llama3\.2-vision|gemma3|o1-mini|o1-preview)", re.I
)
_FINISH = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


_RESPONSES_ONLY = (
    "{flag} needs the Responses API; the chat route (Chat Completions, chosen for a --base-url "
    "that is not OpenAI's) cannot carry it: add --api responses"
)


class OpenAIChatModel(ModelAdapter):
    """``openai:MODEL`` through Chat Completions. Carries parallel tool calls, reasoning effort
    (sent as is: OpenAI's o-series, vLLM, DeepSeek), output tokens, temperature and seed."""

    api = "openai-chat"
    path = "/chat/completions"

    @classmethod
    def profile_for(
        cls, provider: str, model: str, options: AdapterOptions, *, custom_endpoint: bool
    ) -> ModelProfile:
        tools = not _NO_TOOLS.search(model) if options.tools is None else options.tools
        reasoning = is_reasoning_model(model) if options.reasoning is None else options.reasoning
        return ModelProfile(
            api=cls.api,
            provider=provider,
            model=f"{provider}:{model}",
            route="the chat route (Chat Completions)",
            tools=tools,
            images=options.images,
            custom_endpoint=custom_endpoint,
            context_window=window_of(provider, model, options, custom_endpoint),
            request_layout=True,
            temperature=not reasoning,  # OpenAI's reasoning models reject it
            seed=True,
            reasoning_effort=True,
            parallel_tool_calls=True,
            refusals={
                "temperature": f"{model} is a reasoning model, which takes no --temperature; "
                "drop it",
                "reasoning_summary": _RESPONSES_ONLY.format(flag="--reasoning-summary"),
                "tool_result_images": "tool images inside the tool output (the giant preset) "
                + _RESPONSES_ONLY.format(flag="").strip(),
                "thinking_budget": "--thinking-budget applies to Claude (anthropic:) models; for "
                "OpenAI reasoning models use --reasoning-effort",
                "prompt_cache": "--prompt-cache applies to Claude (anthropic:) models; "
                "OpenAI-compatible servers cache prompts by themselves",
            },
        )

    # -- request -----------------------------------------------------------------------------
    def _image(self, part: ImagePart) -> dict[str, Any]:
        url: dict[str, Any] = {"url": self.images.data_url(part)}
        if part.detail is not None:
            url["detail"] = part.detail
        return {"type": "image_url", "image_url": url}

    def _user(self, parts: list[Any]) -> dict[str, Any]:
        if all(isinstance(p, TextPart) for p in parts):
            return {"role": "user", "content": "\n".join(p.text for p in parts)}
        return {
            "role": "user",
            "content": [
                {"type": "text", "text": p.text} if isinstance(p, TextPart) else self._image(p)
                for p in parts
            ],
        }

    def _wire_messages(self, msg: Message) -> list[dict[str, Any]]:
        """One message in Chat Completions' form: a tool message per result, then the results'
        images in one user message."""
        out: list[dict[str, Any]] = []
        if isinstance(msg, SystemMessage):
            out.append({"role": "system", "content": msg.content})
        elif isinstance(msg, UserMessage):
            if msg.parts:
                out.append(self._user(list(msg.parts)))
        elif isinstance(msg, AssistantMessage):
            text = "\n".join(p.text for p in msg.parts if isinstance(p, TextPart) and p.text)
            calls = [p for p in msg.parts if isinstance(p, ToolCallPart)]
            # "" rather than null: several servers' chat templates concatenate the content
            entry: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": arguments_json(c)},
                    }
                    for c in calls
                ]
            out.append(entry)
        elif isinstance(msg, ToolMessage):
            followers: list[Any] = []
            for r in msg.results:
                out.append(
                    {"role": "tool", "tool_call_id": r.tool_call_id, "content": result_text(r)}
                )
                images = result_images(r)
                if images:
                    followers.append(
                        TextPart(
                            text=f"Image{'s' if len(images) > 1 else ''} returned by "
                            f"{r.name} (call {r.tool_call_id}):"
                        )
                    )
                    followers.extend(images)
            if followers:
                out.append(self._user(followers))
        return out

    def _encoded_messages(self, msg: Message) -> list[bytes]:
        return [dumps(x) for x in self._wire_messages(msg)]

    def _encoded_tool(self, t: ToolSpec) -> bytes:
        return dumps(self._tool(t))

    def _messages(self, req: ModelRequest) -> Raw:
        """Every message, each encoded once (``wire``)."""
        pieces: list[bytes] = []
        for msg in req.messages:
            pieces.extend(self.wire.get(msg, "messages", self._encoded_messages, msg))
        return Raw(encode_list(pieces))

    @staticmethod
    def _tool(t: ToolSpec) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }

    def build_request(self, req: ModelRequest, settings: ModelSettings) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(req)}
        if req.tools:
            body["tools"] = Raw(
                encode_list(self.wire.get(t, "tool", self._encoded_tool, t) for t in req.tools)
            )
            body["tool_choice"] = req.tool_choice
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_output_tokens:
            # max_completion_tokens: OpenAI's own name, the only one its reasoning models take;
            # max_tokens for other servers (vLLM, Ollama...)
            own = not self.provider.custom_endpoint or is_reasoning_model(self.model)
            key = "max_completion_tokens" if own else "max_tokens"
            body[key] = settings.max_output_tokens
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.seed is not None:
            body["seed"] = settings.seed
        if settings.reasoning_effort:
            body["reasoning_effort"] = settings.reasoning_effort
        return body

    # -- response ----------------------------------------------------------------------------
    def parse_response(self, raw: dict[str, Any]) -> Parsed:
        choices = raw.get("choices") or []
        if not choices:
            raise ValueError("the response has no choices")
        choice = choices[0]
        msg = choice.get("message") or {}
        parts: list[Any] = []
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip():
            parts.append(ReasoningPart(text=reasoning, provider=PROVIDER_TAG))
        content = msg.get("content")
        if isinstance(content, list):  # a few servers return content parts
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        if content:
            parts.append(TextPart(text=content))
        if msg.get("refusal"):
            parts.append(TextPart(text=f"[refusal] {msg['refusal']}"))
        for i, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function") or {}
            parts.append(
                parse_arguments(
                    call.get("id") or f"call_{i}", fn.get("name", ""), fn.get("arguments")
                )
            )
        message = AssistantMessage(parts=parts, provider_response_id=raw.get("id"))
        usage = raw.get("usage") or {}
        counts = TokenCounts(
            input=int(usage.get("prompt_tokens") or 0),
            output=int(usage.get("completion_tokens") or 0),
            reasoning=int(
                (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
            ),
            cached=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        )
        finish = choice.get("finish_reason")
        stop = (
            _FINISH.get(finish, finish)
            if finish
            else ("tool_calls" if message.tool_calls else None)
        )
        return Parsed(message=message, counts=counts, stop_reason=stop)
