"""A fake OpenAI server: ``/v1/responses`` and ``/v1/chat/completions`` (non-streaming), real HTTP.

Usage::

    from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall, Fault

    with FakeOpenAI([Reply(tool_calls=[ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 500, "h": 500})]),
                     Fault(429, retry_after=0.01),
                     Reply(text="Answer: 2", reasoning="thinking...")], latency_s=0.2) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        ...
        srv.requests[-1].body  # what the client sent

Without a script it runs the auto planner (see ``fake_common``): ``FakeOpenAI(auto_turns=3)``.
Both endpoints share one script. Reasoning items carry ``encrypted_content`` only when the request
asks for it (``include=["reasoning.encrypted_content"]``), as the real API does.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from slidescout.testing.fake_billing import OpenAICache
from slidescout.testing.fake_common import (
    FakeServer,
    Fault,
    Reply,
    ToolCall,
    example_arguments,
    hang,
    new_id,
)

__all__ = ["FakeOpenAI", "Fault", "Reply", "ToolCall", "example_arguments", "hang"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


def _tokens(text: str | None) -> int:
    return (len(text) + 3) // 4 if text else 0


class FakeOpenAI(FakeServer):
    """Scripted (or auto) OpenAI-compatible server. ``base_url`` ends in ``/v1``.

    Usage is counted from the body by OpenAI's published rules, its automatic prefix cache
    included (``fake_billing``); ``Reply(usage=...)`` overrides it."""

    base_path = "/v1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = OpenAICache()

    def routes(self) -> list[Any]:
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def models(request: Any) -> Any:
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {
                            "id": "fake-model",
                            "object": "model",
                            "created": 0,
                            "owned_by": "slidescout",
                        }
                    ],
                }
            )

        return [
            Route("/v1/responses", self.handle, methods=["POST"]),
            Route("/v1/chat/completions", self.handle, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]

    # -- request inspection ------------------------------------------------------------------
    @staticmethod
    def _is_chat(path: str) -> bool:
        return path.endswith("/chat/completions")

    def offered_tools(self, body: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for t in body.get("tools") or []:
            if self._is_chat(path):
                fn = t.get("function") or {}
                out.append((fn.get("name", ""), fn.get("parameters") or {}))
            elif t.get("type") == "function":
                out.append((t.get("name", ""), t.get("parameters") or {}))
        return out

    def prior_tool_calls(self, body: dict[str, Any], path: str) -> int:
        if self._is_chat(path):
            return sum(
                len(m.get("tool_calls") or [])
                for m in body.get("messages") or []
                if m.get("role") == "assistant"
            )
        items = body.get("input")
        return (
            sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call")
            if isinstance(items, list)
            else 0
        )

    def tool_choice(self, body: dict[str, Any], path: str) -> str:
        choice = body.get("tool_choice", "auto")
        return choice if isinstance(choice, str) else "required"

    def validate(self, body: dict[str, Any], path: str) -> tuple[int, str] | None:
        """A subset of the real API's checks: unanswered or unknown tool calls, reasoning items
        that cannot be resolved when nothing is stored."""
        if not body.get("model"):
            return 400, "you must provide a model parameter"
        if self._is_chat(path):
            msgs = body.get("messages") or []
            if not msgs:
                return 400, "messages: must not be empty"
            for i, m in enumerate(msgs):
                ids = (
                    [c.get("id") for c in m.get("tool_calls") or []]
                    if m.get("role") == "assistant"
                    else []
                )
                answered = []
                for n in msgs[i + 1 :]:
                    if n.get("role") != "tool":
                        break
                    answered.append(n.get("tool_call_id"))
                missing = [x for x in ids if x not in answered]
                if missing:
                    return 400, (
                        "An assistant message with 'tool_calls' must be followed by tool messages "
                        f"responding to each 'tool_call_id'. Missing: {', '.join(missing)}"
                    )
                if m.get("role") == "tool" and not any(
                    m.get("tool_call_id") in [c.get("id") for c in p.get("tool_calls") or []]
                    for p in msgs[:i]
                ):
                    return (
                        400,
                        "Messages with role 'tool' must be a response to a preceding message with 'tool_calls'.",
                    )
            return None
        items = body.get("input")
        if not isinstance(items, list):
            return None
        calls = [
            i.get("call_id")
            for i in items
            if isinstance(i, dict) and i.get("type") == "function_call"
        ]
        outputs = [
            i.get("call_id")
            for i in items
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        ]
        for c in calls:
            if c not in outputs:
                return 400, f"No tool output found for function call {c}."
        for o in outputs:
            if o not in calls:
                return 400, f"No tool call found for function call output with call_id {o}."
        if body.get("store") is False:
            for i in items:
                if (
                    isinstance(i, dict)
                    and i.get("type") == "reasoning"
                    and not i.get("encrypted_content")
                ):
                    return 404, (
                        f"Item with id '{i.get('id')}' not found. Items are not persisted when `store` "
                        "is set to false. Try again with `store` set to true, or remove this item from "
                        "your input."
                    )
        return None

    def check_auth(self, headers: dict[str, str]) -> str | None:
        if self.api_key is None:
            return None
        sent = headers.get("authorization", "").removeprefix("Bearer ").strip()
        return None if sent == self.api_key else sent

    # -- replies -----------------------------------------------------------------------------
    def render_error(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return {
            "error": {
                "message": message,
                "type": kind,
                "param": None,
                "code": "invalid_api_key" if status == 401 else None,
            }
        }

    def _usage(self, reply: Reply, body: dict[str, Any]) -> dict[str, int]:
        out_text = (reply.text or "") + "".join(
            c.name + c.arguments_text() for c in reply.tool_calls
        )
        reasoning = _tokens(reply.reasoning) + (16 if reply.reasoning else 0)
        u = {
            **self.cache.usage(body),
            "output": _tokens(out_text) + reasoning + 1,
            "reasoning": reasoning,
        }
        u.update(reply.usage or {})
        return u

    def render_reply(self, reply: Reply, body: dict[str, Any], path: str) -> dict[str, Any]:
        if self._is_chat(path):
            return self._chat(reply, body)
        return self._responses(reply, body)

    def _responses(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            item: dict[str, Any] = {
                "type": "reasoning",
                "id": new_id("rs_"),
                "summary": [{"type": "summary_text", "text": reply.reasoning}],
            }
            if "reasoning.encrypted_content" in (body.get("include") or []):
                item["encrypted_content"] = (
                    "gAAAA" + base64.b64encode(reply.reasoning.encode()).decode()
                )
            output.append(item)
        if reply.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": new_id("msg_"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for call in reply.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "id": new_id("fc_"),
                    "call_id": call.id or new_id("call_"),
                    "name": call.name,
                    "arguments": call.arguments_text(),
                    "status": "completed",
                }
            )
        u = self._usage(reply, body)
        status, incomplete = "completed", None
        if reply.stop in ("length", "max_output_tokens"):
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        return {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model", "fake"),
            "output": output,
            "incomplete_details": incomplete,
            "error": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": body.get("temperature", 1.0),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": 1.0,
            "usage": {
                "input_tokens": u["input"],
                "input_tokens_details": {"cached_tokens": u.get("cached", 0)},
                "output_tokens": u["output"],
                "output_tokens_details": {"reasoning_tokens": u.get("reasoning", 0)},
                "total_tokens": u["input"] + u["output"],
            },
        }

    def _chat(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.reasoning is not None:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id or new_id("call_"),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_text()},
                }
                for c in reply.tool_calls
            ]
        finish = reply.stop or ("tool_calls" if reply.tool_calls else "stop")
        u = self._usage(reply, body)
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": u["input"],
                "completion_tokens": u["output"],
                "total_tokens": u["input"] + u["output"],
                "prompt_tokens_details": {"cached_tokens": u.get("cached", 0)},
                "completion_tokens_details": {"reasoning_tokens": u.get("reasoning", 0)},
            },
        }
