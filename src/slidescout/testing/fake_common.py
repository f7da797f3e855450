"""What the fake provider servers share: the script (replies and faults), the "auto" planner,
request recording, and a real HTTP server (starlette + uvicorn) on 127.0.0.1 in a thread.

A script is a list of items, consumed one per request, or a callable ``fn(body) -> item``;
an item is a ``Reply``, a ``Fault``, or a callable ``fn(body) -> Reply | Fault``. Without a
script the server runs the auto planner: it calls the first offered tool with arguments made
from its JSON schema for ``auto_turns`` turns, then answers ``auto_answer``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slidescout.core.imaging import encode_image
from slidescout.core.messages import ImagePart, ImageRef


@dataclass
class ToolCall:
    """A tool call the fake model makes. ``raw_arguments`` is sent verbatim (malformed JSON...)."""

    name: str
    arguments: dict[str, Any] | None = None
    raw_arguments: str | None = None
    id: str | None = None

    def arguments_text(self) -> str:
        return (
            self.raw_arguments
            if self.raw_arguments is not None
            else json.dumps(self.arguments or {})
        )


@dataclass
class Reply:
    """One model reply: text, tool calls, and optional reasoning (OpenAI reasoning item with
    encrypted content, Anthropic thinking block with a signature; ``redacted`` adds an Anthropic
    ``redacted_thinking`` block). ``usage`` overrides the estimated token counts (keys: input,
    output, reasoning, cached, cache_write); ``stop`` overrides the stop / finish reason.
    ``gate``: the reply is held until the event is set (a test sees what happens meanwhile, then
    releases it: waiting on an event, never on a clock)."""

    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    redacted: bool = False
    usage: dict[str, int] | None = None
    stop: str | None = None
    delay_s: float = 0.0
    gate: threading.Event | None = None


@dataclass
class Fault:
    """An HTTP error reply. ``delay_s`` sleeps first: longer than the client's timeout, it makes
    the client time out (the reply that follows goes nowhere)."""

    status: int = 500
    message: str = "fake server error"
    retry_after: float | None = None  # header retry-after (seconds)
    retry_after_ms: float | None = None  # header retry-after-ms
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def hang(seconds: float) -> Fault:
    """A request that answers only after ``seconds`` (use a longer time than the client timeout)."""
    return Fault(status=504, message="the fake server answered too late", delay_s=seconds)


GATE_LIMIT_S = 300.0  # a gate never released still answers, so a failing test cannot hang

Item = Reply | Fault | Callable[[dict[str, Any]], Reply | Fault]
Script = Sequence[Item] | Callable[[dict[str, Any]], Reply | Fault] | None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    size: int
    received_at: float


def example_value(schema: Any, name: str = "") -> Any:
    """A plausible value for a JSON schema (defaults, enums, bounds respected)."""
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if isinstance(s, dict) and s.get("type") != "null"]
            if options:
                return example_value(options[0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = 100
        if lo is not None:
            value = max(
                value, lo + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
            )
        if hi is not None:
            value = min(value, hi)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "string":
        return "auto"
    if kind == "array":
        n = int(schema.get("minItems") or 0)
        return [example_value(schema.get("items") or {}, name) for _ in range(n)]
    if kind == "object" or "properties" in schema:
        return example_arguments(schema)
    return None


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for every property of an object schema."""
    props = (schema or {}).get("properties") or {}
    return {k: example_value(v, k) for k, v in props.items()}


def count_images(body: Any) -> int:
    """Images in a request body: base64 data URLs and base64 source blocks."""
    n = 0
    stack = [body]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            if obj.get("type") == "base64" and "data" in obj:
                n += 1
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
        elif isinstance(obj, str) and obj.startswith("data:image/"):
            n += 1
    return n


def estimate_input_tokens(body: Any) -> int:
    """A rough token count: text characters / 4, plus 765 per image."""
    text = 0
    stack = [body]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            stack.extend(v for k, v in obj.items() if k not in ("data", "image_url", "url"))
        elif isinstance(obj, list):
            stack.extend(obj)
        elif isinstance(obj, str) and not obj.startswith("data:"):
            text += len(obj)
    return max(1, text // 4) + 765 * count_images(body)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


class FakeServer:
    """Base of the fake servers: a real HTTP server on 127.0.0.1 (a free port), in a thread.

    Use as a context manager (``with`` or ``async with``) or ``start()`` / ``stop()``.
    ``requests`` records every request (path, headers, parsed JSON body).

    Args:
        script: replies and faults (see the module doc); None runs the auto planner.
        latency_s: added before every answer (benchmarks use 0.2).
        auto_turns: tool calls the auto planner makes before it answers.
        auto_answer: the auto planner's final text.
        auto_reasoning: the auto planner adds reasoning (items / thinking blocks).
        api_key: when set, any other key gets a 401 that echoes the key sent (clients must
            redact it).
        strict: reject, like the real API, requests that break its rules (unanswered tool
            calls, unresolvable reasoning items, bad signatures...).
        record: keep request bodies (False for long benchmarks: they hold every image).
    """

    base_path = ""

    def __init__(
        self,
        script: Script = None,
        *,
        latency_s: float = 0.0,
        auto_turns: int = 3,
        auto_answer: str = '{"answer": 1}',
        auto_reasoning: bool = False,
        api_key: str | None = None,
        strict: bool = True,
        record: bool = True,
    ) -> None:
        self.strict = strict
        self.record = record
        self.latency_s = float(latency_s)
        self.auto_turns = int(auto_turns)
        self.auto_answer = auto_answer
        self.auto_reasoning = auto_reasoning
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._fn: Callable[[dict[str, Any]], Reply | Fault] | None = None
        self._queue: deque[Item] = deque()
        self._scripted = script is not None
        if callable(script):
            self._fn = script
        elif script is not None:
            self._queue.extend(script)
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- scripting ---------------------------------------------------------------------------
    def push(self, *items: Item) -> None:
        """Append replies / faults to the script."""
        with self._lock:
            self._scripted = True
            self._queue.extend(items)

    @property
    def remaining(self) -> int:
        return len(self._queue)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    @property
    def last_body(self) -> dict[str, Any]:
        return self.requests[-1].body

    def _next(self, body: dict[str, Any], path: str) -> Reply | Fault:
        with self._lock:
            if self._fn is not None:
                item: Any = self._fn
            elif self._queue:
                item = self._queue.popleft()
            elif self._scripted:
                return Fault(
                    status=400,
                    message=f"fake server script exhausted after {len(self.requests) - 1} "
                    "requests; push() more replies",
                )
            else:
                return self.auto_reply(body, path)
        if callable(item) and not isinstance(item, (Reply, Fault)):
            item = item(body)
        return item

    def auto_reply(self, body: dict[str, Any], path: str) -> Reply:
        """The auto planner: the first offered tool for ``auto_turns`` turns, then the answer."""
        tools = self.offered_tools(body, path)
        reasoning = "Looking at the slide before deciding." if self.auto_reasoning else None
        if (
            tools
            and self.prior_tool_calls(body, path) < self.auto_turns
            and self.tool_choice(body, path) != "none"
        ):
            name, schema = tools[0]
            return Reply(
                tool_calls=[ToolCall(name, example_arguments(schema))], reasoning=reasoning
            )
        return Reply(text=self.auto_answer, reasoning=reasoning)

    # -- to implement per wire format --------------------------------------------------------
    def routes(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def offered_tools(self, body: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError  # pragma: no cover

    def prior_tool_calls(self, body: dict[str, Any], path: str) -> int:
        raise NotImplementedError  # pragma: no cover

    def tool_choice(self, body: dict[str, Any], path: str) -> str:
        return "auto"

    def validate(self, body: dict[str, Any], path: str) -> tuple[int, str] | None:
        """(status, message) when the real API would reject ``body`` (checked when ``strict``)."""
        return None

    def check_auth(self, headers: dict[str, str]) -> str | None:
        """The key the client sent when it does not match ``api_key`` (None: accepted)."""
        return None

    def render_reply(self, reply: Reply, body: dict[str, Any], path: str) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def render_error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    # -- HTTP --------------------------------------------------------------------------------
    async def handle(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return JSONResponse(
                self.render_error(400, "the request body is not valid JSON"), status_code=400
            )
        path = request.url.path
        headers = {k.lower(): v for k, v in request.headers.items()}
        # record=False keeps no bodies (long benchmarks would hold every image of every request)
        self.requests.append(
            RecordedRequest(
                request.method, path, headers, body if self.record else {}, len(raw), time.time()
            )
        )
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        bad_key = self.check_auth(headers)
        if bad_key is not None:  # echo the key back, as some providers do: clients must redact it
            return JSONResponse(
                self.render_error(401, f"Incorrect API key provided: {bad_key}"), status_code=401
            )
        problem = self.validate(body, path) if self.strict else None
        if problem is not None:
            return JSONResponse(self.render_error(problem[0], problem[1]), status_code=problem[0])
        item = self._next(body, path)
        if item.delay_s:
            await asyncio.sleep(item.delay_s)
        if isinstance(item, Reply) and item.gate is not None:
            await asyncio.to_thread(item.gate.wait, GATE_LIMIT_S)
        if isinstance(item, Fault):
            hdrs = dict(item.headers)
            if item.retry_after is not None:
                hdrs["retry-after"] = f"{item.retry_after:g}"
            if item.retry_after_ms is not None:
                hdrs["retry-after-ms"] = f"{item.retry_after_ms:g}"
            return JSONResponse(
                self.render_error(item.status, item.message), status_code=item.status, headers=hdrs
            )
        return JSONResponse(self.render_reply(item, body, path))

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(
                "the fake server is not started; use it as a context manager or call start()"
            )
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give the SDK client (``base_url``)."""
        return self.url + self.base_path

    def start(self) -> FakeServer:
        if self._thread is not None:
            return self
        import uvicorn
        from starlette.applications import Starlette

        app = Starlette(routes=self.routes())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=0.25,  # type: ignore[arg-type]
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        self._sock = sock
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=3)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=3)
        self._sock.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> Any:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.base_url if self.port else "not started"
        return f"{type(self).__name__}({where}, {len(self.requests)} requests)"


def jpeg_image_part(
    width: int = 16,
    height: int = 16,
    color: tuple[int, int, int] = (180, 60, 90),
    detail: str = "high",
    **ref: Any,
) -> Any:
    """A small real JPEG as an ``ImagePart`` (bytes in memory), for adapter tests."""
    import hashlib

    from PIL import Image

    data = encode_image(Image.new("RGB", (width, height), color), "JPEG", quality=90)
    image = ImageRef(sha256=hashlib.sha256(data).hexdigest(), width=width, height=height, **ref)
    return ImagePart(image=image, data=data, detail=detail)  # type: ignore[arg-type]
