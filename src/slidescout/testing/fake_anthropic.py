"""A fake Anthropic server: ``/v1/messages`` (non-streaming), real HTTP.

Usage::

    from slidescout.testing.fake_anthropic import FakeAnthropic, Reply, ToolCall, Fault

    with FakeAnthropic([Reply(tool_calls=[ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 9, "h": 9})],
                              reasoning="let me look")]) as srv:
        model = resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url)

Without a script it runs the auto planner (see ``fake_common``). ``Reply(reasoning=...)`` returns a
``thinking`` block with a signature; ``redacted=True`` adds a ``redacted_thinking`` block. A
``ToolCall`` with ``raw_arguments`` that are not JSON sends them as a string ``input``.

With ``strict=True`` (default) the server rejects, with a 400 as the real API does, requests
whose turns do not alternate, whose ``tool_use`` blocks are not answered by ``tool_result`` blocks
first in the next user turn, that hold tool blocks without ``tools``, empty text blocks, or no
``max_tokens``; and thinking blocks sent back with a signature it did not issue.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from slidescout.testing.fake_billing import AnthropicCache
from slidescout.testing.fake_common import (
    FakeServer,
    Fault,
    Reply,
    ToolCall,
    example_arguments,
    hang,
    new_id,
)

__all__ = ["FakeAnthropic", "Fault", "Reply", "ToolCall", "example_arguments", "hang"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _tokens(text: str | None) -> int:
    return (len(text) + 3) // 4 if text else 0


def signature_for(thinking: str) -> str:
    """The signature the fake server gives a thinking text (checked when it comes back)."""
    return base64.b64encode(hashlib.sha256(b"fake-sig:" + thinking.encode()).digest()).decode()


class FakeAnthropic(FakeServer):
    """Scripted (or auto) Anthropic Messages server. ``base_url`` is the server root.

    Usage is counted from the body by Claude's published rules, its prompt cache included
    (``fake_billing``); ``Reply(usage=...)`` overrides it."""

    base_path = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = AnthropicCache()

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [Route("/v1/messages", self.handle, methods=["POST"])]

    # -- request inspection ------------------------------------------------------------------
    def validate(self, body: dict[str, Any], path: str) -> tuple[int, str] | None:
        problem = self.problem(body)
        return None if problem is None else (400, problem)

    @staticmethod
    def problem(body: dict[str, Any]) -> str | None:
        """What the real API would reject in ``body`` (a subset), or None."""
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        msgs = body.get("messages") or []
        if not msgs or msgs[0].get("role") != "user":
            return "messages: the first message must use the user role"
        has_tools = bool(body.get("tools"))
        for i, m in enumerate(msgs):
            if i and m.get("role") == msgs[i - 1].get("role"):
                return f"messages.{i}: roles must alternate between user and assistant"
            content = m.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            if not blocks:
                return f"messages.{i}: content must not be empty"
            for j, b in enumerate(blocks):
                kind = b.get("type")
                if kind == "text" and not str(b.get("text", "")).strip():
                    return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                if kind in ("tool_use", "tool_result") and not has_tools:
                    return (
                        f"messages.{i}.content.{j}.type: Requests which include `tool_use` or `tool_result` "
                        "blocks must define tools."
                    )
                if kind == "thinking" and b.get("signature") != signature_for(
                    b.get("thinking", "")
                ):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if m.get("role") == "assistant":
                ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
                if ids:
                    nxt = msgs[i + 1] if i + 1 < len(msgs) else None
                    nblocks = (nxt or {}).get("content") or []
                    if not isinstance(nblocks, list):
                        nblocks = []
                    lead = []
                    for b in nblocks:
                        if b.get("type") != "tool_result":
                            break
                        lead.append(b.get("tool_use_id"))
                    missing = [x for x in ids if x not in lead]
                    if missing:
                        return (
                            f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                            "corresponding `tool_result` block in the next message."
                        )
        return None

    def offered_tools(self, body: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t.get("name", ""), t.get("input_schema") or {}) for t in body.get("tools") or []]

    def prior_tool_calls(self, body: dict[str, Any], path: str) -> int:
        n = 0
        for m in body.get("messages") or []:
            if m.get("role") == "assistant" and isinstance(m.get("content"), list):
                n += sum(1 for b in m["content"] if b.get("type") == "tool_use")
        return n

    def tool_choice(self, body: dict[str, Any], path: str) -> str:
        kind = str((body.get("tool_choice") or {}).get("type", "auto"))
        return {"any": "required", "tool": "required"}.get(kind, kind)

    def check_auth(self, headers: dict[str, str]) -> str | None:
        if self.api_key is None:
            return None
        # older SDKs send x-api-key, newer ones Authorization: Bearer
        sent = (
            headers.get("x-api-key")
            or headers.get("authorization", "").removeprefix("Bearer ").strip()
        )
        return None if sent == self.api_key else sent

    # -- replies -----------------------------------------------------------------------------
    def render_error(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def render_reply(self, reply: Reply, body: dict[str, Any], path: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            content.append(
                {
                    "type": "thinking",
                    "thinking": reply.reasoning,
                    "signature": signature_for(reply.reasoning),
                }
            )
        if reply.redacted:
            content.append({"type": "redacted_thinking", "data": "EmwKAhgBEgy" + new_id("")})
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            if call.raw_arguments is not None:
                try:
                    args: Any = json.loads(call.raw_arguments)
                except json.JSONDecodeError:
                    args = call.raw_arguments
            else:
                args = call.arguments or {}
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or new_id("toolu_"),
                    "name": call.name,
                    "input": args,
                }
            )
        out_text = (reply.text or "") + "".join(
            c.name + c.arguments_text() for c in reply.tool_calls
        )
        u = {
            **self.cache.usage(body),
            "output": _tokens(out_text) + _tokens(reply.reasoning) + 1,
        }
        u.update(reply.usage or {})
        stop = reply.stop or ("tool_use" if reply.tool_calls else "end_turn")
        return {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": u["input"],
                "output_tokens": u["output"],
                "cache_read_input_tokens": u.get("cached", 0),
                "cache_creation_input_tokens": u.get("cache_write", 0),
            },
        }
