"""Tool use for models without function calling: tools described in text, one JSON action back.

The model is asked (prompt ``json_actions``) to reply with exactly one JSON object
``{"tool": NAME, "arguments": {...}}`` to call a tool, optionally inside one ```json fence, or
with plain text (or ``{"answer": ...}``) to answer. Parsing is strict:

- the whole reply is one JSON object with a ``"tool"`` key (optional ``"thought"``) → a tool call;
- a reply that tries an action but is not exactly that (prose around it, two objects, bad JSON,
  non-object arguments, unexpected keys) → a ``ToolCallPart`` with ``parse_error`` set, so the
  loop answers with an error observation;
- anything else (no action attempted) → a plain-text answer, kept verbatim.

``to_text_only`` rewrites a request for such a model: the tools go into the system text, past
tool calls become their JSON text, tool results become user messages (text and images).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from slidescout import prompts
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

_FENCE = re.compile(r"^```(?:json|JSON)?[ \t]*\n(?P<body>.*?)\n?```$", re.S)
_ATTEMPT = re.compile(r"\"tool\"\s*:")
_TOOL_NAME = re.compile(r"\"tool\"\s*:\s*\"([^\"]{1,100})\"")
_ALLOWED_KEYS = {"tool", "arguments", "thought"}
INVALID_ACTION = "invalid_action"


def _type_of(schema: dict[str, Any]) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        return " | ".join(str(x) for x in t)
    if t:
        return str(t)
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_of(s) for s in schema[key] if isinstance(s, dict))
    return "any"


def render_tools_as_text(tools: list[ToolSpec]) -> str:
    """A plain-text description of ``tools``: name, description, and each argument."""
    blocks: list[str] = []
    for tool in tools:
        params = tool.parameters or {}
        props: dict[str, Any] = params.get("properties") or {}
        required = set(params.get("required") or [])
        lines = [
            f"- {tool.name}: {tool.description.strip()}" if tool.description else f"- {tool.name}"
        ]
        if not props:
            lines.append("    arguments: none")
        for name, schema in props.items():
            schema = schema if isinstance(schema, dict) else {}
            extra = []
            if name in required:
                extra.append("required")
            for k in ("minimum", "maximum", "default"):
                if k in schema:
                    extra.append(f"{k} {json.dumps(schema[k])}")
            if "enum" in schema:
                extra.append("one of " + ", ".join(json.dumps(v) for v in schema["enum"]))
            desc = schema.get("description", "")
            tail = f"; {', '.join(extra)}" if extra else ""
            lines.append(f"    {name} ({_type_of(schema)}{tail}){': ' + desc if desc else ''}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def tools_prompt(tools: list[ToolSpec]) -> str:
    """The instruction block appended to the system text (prompt ``json_actions``)."""
    return prompts.render("json_actions", tools=render_tools_as_text(tools))


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _error_call(text: str, error: str) -> AssistantMessage:
    m = _TOOL_NAME.search(text)
    return AssistantMessage(
        parts=[
            ToolCallPart(
                id=_new_id(),
                name=m.group(1) if m else INVALID_ACTION,
                raw_arguments=text,
                parse_error=error,
            )
        ]
    )


def parse_json_action(text: str) -> AssistantMessage:
    """Parse a reply of a model that was asked for one JSON action (see the module doc)."""
    stripped = (text or "").strip()
    m = _FENCE.match(stripped)
    body = m.group("body").strip() if m else stripped
    if not _ATTEMPT.search(body):
        return AssistantMessage(parts=[TextPart(text=text)] if stripped else [])
    if not body.startswith("{"):
        return _error_call(
            body,
            "reply with exactly one JSON object (optionally in one ```json fence) "
            "and no other text",
        )
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return _error_call(
            body, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        )
    if not isinstance(data, dict):
        return _error_call(body, "the action must be a JSON object")
    name = data.get("tool")
    if not isinstance(name, str) or not name.strip():
        return _error_call(body, '"tool" must be the name of a tool (a string)')
    extra = set(data) - _ALLOWED_KEYS
    if extra:
        return _error_call(
            body, f'unexpected keys {sorted(extra)}; use only "tool" and "arguments"'
        )
    args = data.get("arguments", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return AssistantMessage(
            parts=[
                ToolCallPart(
                    id=_new_id(),
                    name=name,
                    raw_arguments=json.dumps(args),
                    parse_error='"arguments" must be a JSON object',
                )
            ]
        )
    parts: list[Any] = []
    thought = data.get("thought")
    if isinstance(thought, str) and thought.strip():
        parts.append(TextPart(text=thought))
    parts.append(ToolCallPart(id=_new_id(), name=name, arguments=args))
    return AssistantMessage(parts=parts)


def reparse_message(message: AssistantMessage) -> AssistantMessage:
    """Turn the text of a text-only model's reply into a tool call when it holds an action."""
    if message.tool_calls:
        return message
    parsed = parse_json_action(message.text)
    reasoning = [p for p in message.parts if isinstance(p, ReasoningPart)]
    return AssistantMessage(
        parts=[*reasoning, *parsed.parts], provider_response_id=message.provider_response_id
    )


def _call_as_text(call: ToolCallPart) -> str:
    """A past tool call as the JSON text the model wrote (or would have written)."""
    if call.parse_error and call.raw_arguments is not None:
        if _ATTEMPT.search(call.raw_arguments):  # the model's whole (invalid) action
            return call.raw_arguments
        return f'{{"tool": {json.dumps(call.name)}, "arguments": {call.raw_arguments}}}'
    return json.dumps({"tool": call.name, "arguments": call.arguments})


def to_text_only(req: ModelRequest) -> ModelRequest:
    """``req`` for a model without function calling (see the module doc)."""
    messages: list[Message] = []
    for msg in req.messages:
        if isinstance(msg, AssistantMessage):
            parts: list[Any] = []
            for p in msg.parts:
                if isinstance(p, ToolCallPart):
                    parts.append(TextPart(text=_call_as_text(p)))
                else:
                    parts.append(p)
            messages.append(
                AssistantMessage(parts=parts, provider_response_id=msg.provider_response_id)
            )
        elif isinstance(msg, ToolMessage):
            uparts: list[Any] = []
            for r in msg.results:
                texts = [c.text for c in r.content if isinstance(c, TextPart)]
                label = f"Result of {r.name}" + (" (error)" if r.is_error else "")
                uparts.append(TextPart(text=f"{label}:\n" + "\n".join(texts)))
                uparts.extend(c for c in r.content if isinstance(c, ImagePart))
            messages.append(UserMessage(parts=uparts))
        else:
            messages.append(msg)
    if req.tools and req.tool_choice != "none":
        block = tools_prompt(req.tools)
        if req.tool_choice == "required":
            block += "\nThis turn you must call a tool."
        idx = next((i for i, m in enumerate(messages) if isinstance(m, SystemMessage)), None)
        if idx is None:
            messages.insert(0, SystemMessage(content=block))
        else:
            sys_msg = messages[idx]
            assert isinstance(sys_msg, SystemMessage)
            messages[idx] = SystemMessage(content=f"{sys_msg.content.rstrip()}\n\n{block}")
    return req.model_copy(update={"messages": messages, "tools": [], "tool_choice": "auto"})


def without_images(
    req: ModelRequest, note: str = "[image omitted: this model takes no images]"
) -> ModelRequest:
    """``req`` with every image replaced by a short note (models without image input)."""

    def swap(parts: list[Any]) -> list[Any]:
        return [TextPart(text=note) if isinstance(p, ImagePart) else p for p in parts]

    messages: list[Message] = []
    for msg in req.messages:
        if isinstance(msg, UserMessage):
            messages.append(UserMessage(parts=swap(list(msg.parts))))
        elif isinstance(msg, ToolMessage):
            messages.append(
                ToolMessage(
                    results=[
                        r.model_copy(update={"content": swap(list(r.content))}) for r in msg.results
                    ]
                )
            )
        else:
            messages.append(msg)
    return req.model_copy(update={"messages": messages})
