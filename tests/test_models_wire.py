"""Request bodies built from pieces encoded once (issue 22, "Eval near the floor"): each message's
provider JSON is encoded once and reused by every later request of its sample, the body joined
from the pieces is byte-for-byte the one-shot encoding, replies are read as plain JSON, and the
provider client exists before an eval's first sample sends anything."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from slidescout.agents.config import AgentConfig
from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.agents.models.anthropic import AnthropicModel
from slidescout.agents.models.base import ModelAdapter
from slidescout.agents.models.openai_chat import OpenAIChatModel
from slidescout.agents.models.openai_responses import OpenAIResponsesModel
from slidescout.agents.models.wire import Raw, WireCache, dumps, encode_list, encode_object
from slidescout.core.messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ReasoningPart,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from slidescout.core.model_settings import ModelSettings
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_common import jpeg_image_part
from slidescout.testing.fake_openai import FakeOpenAI, Reply

FAST = RetryPolicy(max_retries=1, base_wait_s=0.01, max_wait_s=0.1, max_total_wait_s=5)
ZOOM = ToolSpec(
    name="slide_zoom",
    description="Zoom into a level-0 box.",
    parameters={
        "type": "object",
        "required": ["x0", "y0", "w", "h"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in ("x0", "y0", "w", "h")},
        "additionalProperties": False,
    },
)
ROUTES = {
    "openai-responses": ("openai:gpt-5", "responses"),
    "openai-chat": ("openai:gpt-4o", "chat"),
    "anthropic": ("anthropic:claude-sonnet-4-5", "auto"),
}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-wire-00000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-wire-0000")


def adapter(route: str, base_url: str = "http://127.0.0.1:9/v1") -> ModelAdapter:
    model_id, api = ROUTES[route]
    model = resolve_model(model_id, base_url=base_url, api=api, retry=FAST)
    assert isinstance(model, ModelAdapter)
    return model


def zoom_turn(k: int) -> list[Message]:
    """One step of history: the model's tool call (with reasoning), then the view it got."""
    call = ToolCallPart(
        id=f"call_{k}", name="slide_zoom", arguments={"x0": k, "y0": 0, "w": 9, "h": 9}
    )
    reasoning = ReasoningPart(
        text="look",
        provider="anthropic",
        provider_data={"type": "thinking", "thinking": "look", "signature": f"sig{k}"},
    )
    view = jpeg_image_part(color=(10 * k % 255, 90, 30), detail="high")
    return [
        AssistantMessage(parts=[reasoning, TextPart(text=f"Zoom {k}."), call]),
        ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id=f"call_{k}",
                    name="slide_zoom",
                    content=[TextPart(text=f"view {k} ✓"), view],
                )
            ]
        ),
    ]


def opening() -> list[Message]:
    overview = jpeg_image_part(color=(200, 40, 40), detail=None)
    return [
        SystemMessage(content="You are a pathologist."),
        UserMessage(parts=[TextPart(text="What is the diagnosis? «tumour»"), overview]),
    ]


SETTINGS = {
    "openai-responses": [
        ModelSettings(request_layout="giant", tool_result_images="inline"),
        ModelSettings(),
    ],
    "openai-chat": [ModelSettings()],
    "anthropic": [
        ModelSettings(request_layout="giant"),
        ModelSettings(prompt_cache=True, thinking_budget=2048),
    ],
}
CASES = [(route, k) for route, settings in SETTINGS.items() for k in range(len(settings))]


def test_pieces_join_into_exactly_the_one_shot_encoding() -> None:
    """Compact JSON of an object is its members' JSON joined: a body assembled from cached
    pieces equals ``dumps`` of the same body as a whole, byte for byte."""
    value = {"model": "m", "input": [{"a": "é", "b": [1, 2.5, None]}, {"c": "\u2028"}], "n": 3}
    pieces = [dumps(x) for x in value["input"]]  # type: ignore[union-attr]
    joined = encode_object({"model": "m", "input": Raw(encode_list(pieces)), "n": 3})
    assert joined == dumps(value)
    assert joined == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(("route", "k"), CASES)
def test_request_body_is_the_one_shot_encoding_of_itself(route: str, k: int) -> None:
    """Every route's body, cache breakpoints spliced in included, is byte-for-byte the compact
    encoding of the object it decodes to (nothing is doubled, lost or reordered)."""
    model = adapter(route)
    messages = opening() + zoom_turn(1) + zoom_turn(2)
    messages.append(UserMessage(parts=[TextPart(text="Answer now.")]))
    req = ModelRequest(messages=messages, tools=[ZOOM], settings=SETTINGS[route][k])
    body = encode_object(model.build_request(model.prepare(req), model.request_settings(req)))
    decoded = json.loads(body)
    assert body == dumps(decoded)
    text = body.decode()
    assert text.count("base64,") + text.count('"type":"base64"') == 3  # overview + two views
    if SETTINGS[route][k].prompt_cache:
        marks = [m for t in decoded["messages"] for m in t["content"] if "cache_control" in m]
        assert 1 <= len(marks) <= 3


@pytest.mark.parametrize(("route", "k"), CASES)
def test_each_message_is_encoded_once_per_sample(route: str, k: int) -> None:
    """A sample's requests grow by a turn each step: only the new messages are encoded, the
    overview (and every earlier message) is reused as the same bytes object."""
    model = adapter(route)
    settings = SETTINGS[route][k]
    history = opening()
    seen: list[dict[str, Any]] = []
    encoded_before = model.wire.encoded
    for step in range(1, 5):
        history += zoom_turn(step)
        req = ModelRequest(messages=list(history), tools=[ZOOM], settings=settings)
        body = encode_object(model.build_request(req, model.request_settings(req)))
        seen.append(json.loads(body))
    # every message once (the system message too), and the one tool spec once
    assert model.wire.encoded - encoded_before == len(history) + 1
    overview = history[1]
    variants = model.wire._slots[id(overview)][1]  # noqa: SLF001 - the cache's own record
    assert len(variants) == 1
    first = next(iter(variants.values()))
    req = ModelRequest(messages=list(history), tools=[ZOOM], settings=settings)
    model.build_request(req, model.request_settings(req))
    again = model.wire._slots[id(overview)][1]  # noqa: SLF001
    assert next(iter(again.values())) is first  # the same encoded object, not a copy
    assert len({json.dumps(b, sort_keys=True) for b in seen}) == len(seen)  # bodies did grow


def test_a_cache_entry_goes_with_its_message() -> None:
    cache: WireCache[bytes] = WireCache()
    msg = UserMessage(parts=[TextPart(text="hi")])
    calls: list[int] = []

    def encode() -> bytes:
        calls.append(1)
        return dumps({"text": "hi"})

    first = cache.get(msg, "v", encode)
    assert cache.get(msg, "v", encode) is first and calls == [1]
    cache.get(msg, "other layout", encode)  # another variant is encoded apart
    assert calls == [1, 1] and len(cache) == 1
    del msg
    gc.collect()
    assert len(cache) == 0


def test_a_rebuilt_message_is_encoded_anew() -> None:
    """A message replaced by a copy (an image dropped to fit the context) is a new object: its
    encoding is made again, never served from the old message's entry."""
    model = adapter("openai-responses")
    history = opening() + zoom_turn(1)
    req = ModelRequest(messages=history, tools=[ZOOM])
    before = json.loads(encode_object(model.build_request(req, model.request_settings(req))))
    tool = history[-1]
    assert isinstance(tool, ToolMessage)
    pruned = ToolMessage(
        results=[
            r.model_copy(update={"content": [TextPart(text="[dropped]")]}) for r in tool.results
        ]
    )
    req = ModelRequest(messages=[*history[:-1], pruned], tools=[ZOOM])
    after = json.loads(encode_object(model.build_request(req, model.request_settings(req))))
    assert "input_image" in json.dumps(before["input"])
    assert "[dropped]" in json.dumps(after["input"]) and "[dropped]" not in json.dumps(before)


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_replies_are_read_as_plain_json_through_the_sdk_client(route: str) -> None:
    """``send`` posts the bytes through the SDK client and gets the server's JSON as a plain
    dict: no SDK response model is built (and read back) per reply."""
    server: Any = (
        FakeAnthropic([Reply(text="done")])
        if route == "anthropic"
        else FakeOpenAI([Reply(text="done")])
    )
    with server as srv:
        model = adapter(route, srv.base_url)
        try:
            req = ModelRequest(messages=opening(), tools=[ZOOM])
            body = encode_object(model.build_request(req, model.request_settings(req)))
            raw = await model.send(body)
            assert type(raw) is dict
            assert srv.bodies[-1] == json.loads(body)  # what the server got is what was built
        finally:
            await model.aclose()


def test_adapters_post_to_their_endpoints() -> None:
    assert OpenAIResponsesModel.path == "/responses"
    assert OpenAIChatModel.path == "/chat/completions"
    assert AnthropicModel.path == "/v1/messages"


def test_the_client_is_built_before_the_first_sample_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22 "Start fast": the eval executor builds the provider client (and imports its SDK)
    before any sample starts, not inside the first request while other samples run."""
    from slidefactory import make_tiff

    from slidescout.eval.ask import question_sample
    from slidescout.eval.config import EvalConfig
    from slidescout.eval.runner import run_eval

    slide = tmp_path / "s.tiff"
    make_tiff(slide, 3000, 2000, mpp=0.5)
    samples = [
        question_sample(slide, "What is it?", ["Tumour", "Normal"], sample_id=f"q{i}")
        for i in range(3)
    ]
    at_first_request: list[bool] = []
    original = OpenAIResponsesModel.request

    async def spy(self: OpenAIResponsesModel, req: ModelRequest) -> Any:
        at_first_request.append(self.provider._client is not None)  # noqa: SLF001
        return await original(self, req)

    monkeypatch.setattr(OpenAIResponsesModel, "request", spy)
    with FakeOpenAI(auto_turns=1) as srv:  # one zoom, then the answer
        spec = AgentConfig(model="openai:gpt-5", base_url=srv.base_url, preset="giant", max_steps=4)
        summary = asyncio.run(
            run_eval(samples, out=tmp_path / "run", agent=spec, config=EvalConfig(concurrency=3))
        )
    assert summary.n_run == 3
    assert at_first_request and all(at_first_request)
