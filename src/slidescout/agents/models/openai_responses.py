"""OpenAI Responses API adapter (``/v1/responses``), the default for OpenAI's own endpoint.

Choices (as GIANT: the full history goes back every turn, reasoning included):

- System text goes into ``instructions``.
- Requests are stateless: ``store=False`` by default (slide images are not kept on OpenAI's side
  and no ``previous_response_id`` is needed). For reasoning models the request asks for
  ``include=["reasoning.encrypted_content"]``; every reasoning item returned is kept whole
  (id, summary, encrypted_content) in ``ReasoningPart.provider_data`` and sent back verbatim on
  the next turn. A reasoning item without encrypted content cannot be resolved when
  ``store=False`` and is left out.
- Reasoning summaries are not requested unless the request's settings ask for one ("auto",
  "concise", "detailed"): some organisations must be verified to get them.
- Tool results are ``function_call_output`` items with the result's text as ``output``. Their
  images follow in one user message (``input_image``, base64 JPEG data URL, the part's detail),
  which every Responses implementation accepts. The setting ``tool_result_images="inline"`` (the
  ``giant`` preset, as GIANT does) sends them inside ``output`` (list form: the text, then the
  images).
  An image part whose detail is None is sent without ``detail``.
- The profile says what is carried: no ``temperature`` for reasoning models (they reject it; a
  user's ``--temperature`` is refused before any request), no ``seed`` (not part of the
  Responses API).
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
    system_text,
    window_of,
)
from slidescout.agents.models.profile import ModelProfile
from slidescout.agents.models.wire import Raw, dumps, encode_list
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
from slidescout.errors import ModelError

log = logging.getLogger("slidescout.models")

PROVIDER_TAG = "openai-responses"
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5|gpt-6|codex)", re.I)


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model)) and "-chat" not in model


def _flush_text(items: list[dict[str, Any]], texts: list[str]) -> None:
    """Pending assistant text as one assistant message item."""
    if texts:
        items.append({"role": "assistant", "content": "\n".join(texts)})
        texts.clear()


class OpenAIResponsesModel(ModelAdapter):
    """``openai:MODEL`` through the Responses API.

    Build options (``AdapterOptions``): ``reasoning`` (None: by the model's name) and ``store``
    (default False). Request settings it carries: reasoning effort and summary (reasoning
    models), inline tool images, parallel tool calls, output tokens, temperature (not for
    reasoning models).
    """

    api = "openai-responses"
    path = "/responses"

    @classmethod
    def profile_for(
        cls, provider: str, model: str, options: AdapterOptions, *, custom_endpoint: bool
    ) -> ModelProfile:
        reasoning = is_reasoning_model(model) if options.reasoning is None else options.reasoning
        not_reasoning = (
            f"{model} is not a reasoning model, so it takes no reasoning effort or summary; drop "
            "--reasoning-effort/--reasoning-summary (or pass the model option reasoning=True)"
        )
        return ModelProfile(
            api=cls.api,
            provider=provider,
            model=f"{provider}:{model}",
            route="the Responses API",
            tools=True if options.tools is None else options.tools,
            images=options.images,
            custom_endpoint=custom_endpoint,
            context_window=window_of(provider, model, options, custom_endpoint),
            request_layout=True,
            temperature=not reasoning,
            reasoning_effort=reasoning,
            reasoning_summary=reasoning,
            inline_tool_images=True,
            parallel_tool_calls=True,
            refusals={
                "reasoning_effort": not_reasoning,
                "reasoning_summary": not_reasoning,
                "temperature": f"{model} is a reasoning model, which takes no --temperature; "
                "drop it",
                "thinking_budget": "--thinking-budget applies to Claude (anthropic:) models; for "
                "OpenAI reasoning models use --reasoning-effort",
                "prompt_cache": "OpenAI caches prompts by itself; --prompt-cache applies to "
                "Claude (anthropic:) models",
            },
        )

    @property
    def reasoning(self) -> bool:
        return self.profile.reasoning_effort

    # -- request -----------------------------------------------------------------------------
    def _image(self, part: ImagePart) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "input_image", "image_url": self.images.data_url(part)}
        if part.detail is not None:  # GIANT sends its overview with detail unset
            item["detail"] = part.detail
        return item

    def _reasoning_item(self, part: ReasoningPart) -> dict[str, Any] | None:
        data = part.provider_data
        if part.provider != PROVIDER_TAG or data.get("type") != "reasoning" or not data.get("id"):
            return None  # another provider's reasoning cannot be replayed here
        if not self.options.store and not data.get("encrypted_content"):
            return None  # would be looked up by id, and nothing is stored
        return dict(data)

    def _items(self, msg: Message, inline: bool) -> list[dict[str, Any]]:
        """One message's input items (none for a system message: it goes to ``instructions``)."""
        items: list[dict[str, Any]] = []
        if isinstance(msg, UserMessage):
            content = [
                {"type": "input_text", "text": p.text}
                if isinstance(p, TextPart)
                else self._image(p)
                for p in msg.parts
            ]
            if content:
                items.append({"role": "user", "type": "message", "content": content})
        elif isinstance(msg, AssistantMessage):
            texts: list[str] = []
            for p in msg.parts:
                if isinstance(p, TextPart):
                    if p.text:
                        texts.append(p.text)
                    continue
                _flush_text(items, texts)
                if isinstance(p, ReasoningPart):
                    item = self._reasoning_item(p)
                    if item is not None:
                        items.append(item)
                elif isinstance(p, ToolCallPart):
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": p.id,
                            "name": p.name,
                            "arguments": arguments_json(p),
                        }
                    )
            _flush_text(items, texts)
        elif isinstance(msg, ToolMessage):
            items.extend(self._tool_items(msg, inline))
        return items

    def _tool_items(self, msg: ToolMessage, inline: bool) -> list[dict[str, Any]]:
        """``function_call_output`` items; their images inline or in one user message after."""
        items: list[dict[str, Any]] = []
        followers: list[dict[str, Any]] = []
        for r in msg.results:
            images = result_images(r)
            text = result_text(r)
            if images and inline:
                output: Any = [
                    {"type": "input_text", "text": text},
                    *(self._image(i) for i in images),
                ]
            else:
                output = text
                if images:
                    followers.append(
                        {
                            "type": "input_text",
                            "text": f"Image{'s' if len(images) > 1 else ''} returned by "
                            f"{r.name} (call {r.tool_call_id}):",
                        }
                    )
                    followers.extend(self._image(i) for i in images)
            items.append(
                {"type": "function_call_output", "call_id": r.tool_call_id, "output": output}
            )
        if followers:
            items.append({"role": "user", "content": followers})
        return items

    def _encoded_items(self, msg: Message, inline: bool) -> list[bytes]:
        return [dumps(i) for i in self._items(msg, inline)]

    def _encoded_tool(self, t: ToolSpec, giant: bool) -> bytes:
        return dumps(self._tool(t, giant))

    def _input(self, req: ModelRequest, inline: bool) -> list[bytes]:
        """The input items of every message, each message encoded once (``wire``)."""
        out: list[bytes] = []
        for msg in req.messages:
            out.extend(self.wire.get(msg, ("items", inline), self._encoded_items, msg, inline))
        return out

    def build_request(self, req: ModelRequest, settings: ModelSettings) -> dict[str, Any]:
        store = self.options.store
        giant = settings.request_layout == "giant"
        items = self._input(req, settings.tool_result_images == "inline")
        body: dict[str, Any] = {"model": self.model, "input": None, "store": store}
        instructions = system_text(req.messages)
        if instructions and giant:  # GIANT: the system prompt is the first input item
            items.insert(0, dumps({"role": "system", "type": "message", "content": instructions}))
        elif instructions:
            body["instructions"] = instructions
        body["input"] = Raw(encode_list(items))
        if req.tools:
            body["tools"] = Raw(
                encode_list(
                    self.wire.get(t, ("tool", giant), self._encoded_tool, t, giant)
                    for t in req.tools
                )
            )
            if not (giant and req.tool_choice == "auto"):  # GIANT leaves it to the default
                body["tool_choice"] = req.tool_choice
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_output_tokens:
            body["max_output_tokens"] = settings.max_output_tokens
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if self.reasoning:
            reasoning: dict[str, Any] = {}
            if settings.reasoning_effort:
                reasoning["effort"] = settings.reasoning_effort
            if settings.reasoning_summary:
                reasoning["summary"] = settings.reasoning_summary
            if reasoning:
                body["reasoning"] = reasoning
            if not store:
                body["include"] = ["reasoning.encrypted_content"]
        return body

    @staticmethod
    def _tool(t: ToolSpec, giant: bool) -> dict[str, Any]:
        """A function tool; under GIANT's layout as its code declares it (no ``strict``, no
        ``additionalProperties``)."""
        if giant:
            params = {k: v for k, v in t.parameters.items() if k != "additionalProperties"}
            return {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": params,
            }
        return {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "strict": False,
        }

    # -- response ----------------------------------------------------------------------------
    def parse_response(self, raw: dict[str, Any]) -> Parsed:
        status = raw.get("status")
        if status == "failed":
            err = raw.get("error") or {}
            raise ModelError(
                f"{self.name}: the response failed: {self.provider.redact(str(err.get('message', '')))}"
                f" ({err.get('code', 'no code')})",
                retryable=False,
            )
        parts: list[Any] = []
        for item in raw.get("output") or []:
            kind = item.get("type")
            if kind == "reasoning":
                texts = [s.get("text", "") for s in item.get("summary") or []]
                texts += [
                    c.get("text", "")
                    for c in item.get("content") or []
                    if c.get("type") == "reasoning_text"
                ]
                parts.append(
                    ReasoningPart(
                        text="\n\n".join(t for t in texts if t),
                        provider=PROVIDER_TAG,
                        provider_data=item,
                    )
                )
            elif kind == "message":
                for c in item.get("content") or []:
                    if c.get("type") == "output_text":
                        parts.append(TextPart(text=c.get("text", "")))
                    elif c.get("type") == "refusal":
                        parts.append(TextPart(text=f"[refusal] {c.get('refusal', '')}"))
            elif kind == "function_call":
                parts.append(
                    parse_arguments(
                        item.get("call_id") or item.get("id") or "",
                        item.get("name", ""),
                        item.get("arguments"),
                    )
                )
            else:
                log.debug("%s: ignoring output item of type %r", self.name, kind)
        message = AssistantMessage(parts=parts, provider_response_id=raw.get("id"))
        usage = raw.get("usage") or {}
        counts = TokenCounts(
            input=int(usage.get("input_tokens") or 0),
            output=int(usage.get("output_tokens") or 0),
            reasoning=int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
            cached=int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        )
        if status == "incomplete":
            reason = (raw.get("incomplete_details") or {}).get("reason") or "incomplete"
            stop = {"max_output_tokens": "length"}.get(reason, reason)
        else:
            stop = "tool_calls" if message.tool_calls else "stop"
        return Parsed(message=message, counts=counts, stop_reason=stop)
