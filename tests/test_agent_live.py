"""Live runs: each event reaches an observer as it is recorded, Stop keeps the trace as
``stopped``, a follow-up continues the conversation, a region hint gives the model its box."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from slidefactory import make_tiff

from slidescout.agents.config import AgentConfig
from slidescout.agents.conversation import Conversation, parse_region, with_region_hint
from slidescout.agents.live import ObservedRecorder, RunControl
from slidescout.agents.loop import Agent
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    ModelRequest,
    TextPart,
    ToolCallPart,
    UserMessage,
)
from slidescout.core.recorder import MemoryRecorder
from slidescout.core.trace import ModelCallEvent, ToolEvent
from slidescout.errors import ConfigError
from slidescout.eval.ask import question_sample
from slidescout.eval.sample_run import run_sample
from slidescout.testing.scripted import FunctionModel, reply, script
from slidescout.traces.rundir import RunDir, load_trace

ZOOM = ("slide_zoom", {"x0": 1000, "y0": 1000, "w": 2000, "h": 2000})
ANSWER = reply('Tumour.\n```json\n{"answer": 1}\n```')


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("slides") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def _setup(model, slide_path, tmp_path, question="What is it?", sid="s/turn-1"):
    agent = Agent(model, AgentConfig(preset="scout", max_steps=6))
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes(), resume=True)
    sample = question_sample(slide_path, question, ["Tumour", "Normal"], sample_id=sid)
    return agent, run, sample


def _texts(req: ModelRequest) -> str:
    return json.dumps(req.model_dump(mode="json"))


def test_observer_sees_the_requested_box_before_its_tool_runs(slide_path, tmp_path):
    model = FunctionModel(script(reply("Zoom.", ZOOM), ANSWER))
    agent, run, sample = _setup(model, slide_path, tmp_path)
    writes: list[tuple[str, list[str]]] = []
    statuses: list[str] = []

    def observer(trace, new):
        writes.append((trace.status, [e.kind for e in new]))
        statuses.append(trace.status)

    out = asyncio.run(run_sample(agent, sample, 0, run, observer=observer, live_interval=0))
    assert out.record.status == "answered"
    kinds = [k for _, ks in writes for k in ks]
    # the model call that asks for the region is delivered in a write of its own, before the tool
    first_call = next(i for i, (_, ks) in enumerate(writes) if "model_call" in ks)
    assert "tool" not in writes[first_call][1]
    assert kinds.index("model_call") < kinds.index("tool")
    # every event is delivered once, in order
    assert kinds == [e.kind for e in out.trace.events]
    assert statuses[-1] == "answered"


def test_stop_keeps_the_trace_as_stopped(slide_path, tmp_path):
    release = asyncio.Event()

    async def fn(req, turn):
        if turn == 0:
            return reply("Zoom.", ZOOM)
        await release.wait()  # the second call never answers: only Stop ends it
        return ANSWER

    model = FunctionModel(fn)
    agent, run, sample = _setup(model, slide_path, tmp_path)
    control = RunControl()

    def observer(trace, new):
        if any(isinstance(e, ToolEvent) for e in new):  # the first region is seen: stop
            loop.call_soon_threadsafe(control.stop)  # (observers may run in a worker thread)

    async def main():
        nonlocal loop
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(
            run_sample(agent, sample, 0, run, observer=observer, control=control, live_interval=0),
            timeout=120,
        )

    loop: asyncio.AbstractEventLoop
    out = asyncio.run(main())
    assert out.record.status == "stopped"
    assert out.record.finished is True
    assert "stopped by the user after 1 step" in out.record.error
    trace = load_trace(run.trace_path(sample.sample_id))
    assert trace.status == "stopped" and trace.finished_at is not None
    assert [t.images[0].box for t in trace.tool_events] == [(1000, 1000, 2000, 2000)]
    assert not control.running and control.stop() is False  # a finished run is left alone


def test_an_outside_cancellation_still_propagates(slide_path, tmp_path):
    calling = asyncio.Event()

    async def fn(req, turn):
        calling.set()
        await asyncio.Event().wait()

    agent, run, sample = _setup(FunctionModel(fn), slide_path, tmp_path)

    async def main():
        task = asyncio.ensure_future(run_sample(agent, sample, 0, run, control=RunControl()))
        await asyncio.wait_for(calling.wait(), timeout=120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert load_trace(run.trace_path(sample.sample_id)).status == "cancelled"


def test_stop_before_start_gives_a_stopped_record(slide_path, tmp_path):
    agent, run, sample = _setup(FunctionModel(script(ANSWER)), slide_path, tmp_path)
    control = RunControl()
    control.stop()
    out = asyncio.run(run_sample(agent, sample, 0, run, control=control))
    assert out.record.status == "stopped"


def test_follow_up_carries_the_first_turn(slide_path, tmp_path):
    model = FunctionModel(script(reply("Zoom.", ZOOM), ANSWER, ANSWER))
    agent, run, sample = _setup(model, slide_path, tmp_path, question="What tissue is this?")
    first = asyncio.run(run_sample(agent, sample, 0, run, live_interval=0))
    assert first.trace is not None and first.trace.status == "answered"
    history = Conversation.from_trace(first.trace, run.recorder())
    assert history.n_first == 1  # the overview
    q2 = with_region_hint("Measure the largest nucleus there.", (100, 200, 300, 400))
    s2 = question_sample(slide_path, q2, sample_id="s/turn-2")
    second = asyncio.run(run_sample(agent, s2, 0, run, history=history, live_interval=0))
    assert second.record.status == "answered"
    req = model.requests[-1]
    text = _texts(req)
    assert "What tissue is this?" in text and "Tumour." in text  # the first turn
    assert "x=100, y=200" in text and "300 x 400" in text  # the region hint, in level-0 px
    # the images already seen are still sent (bytes read back from the run's blobs)
    images = [p for m in req.messages if isinstance(m, UserMessage) for p in m.parts]
    assert any(isinstance(p, ImagePart) and p.data for p in images)
    # each turn is a normal trace and record of the same run
    keys = {r.sample_id for r in [first.record, second.record]}
    assert keys == {"s/turn-1", "s/turn-2"}
    assert load_trace(run.trace_path("s/turn-2")).messages[0].role == "system"


def test_conversation_drops_an_unanswered_tool_call():
    call = AssistantMessage(parts=[ToolCallPart(id="c1", name="slide_zoom", arguments={})])
    conv = Conversation(messages=[UserMessage(parts=[TextPart(text="q")]), call])
    msgs = conv.continued("again?")
    assert [m.role for m in msgs] == ["user", "user"]
    with pytest.raises(ConfigError):
        Conversation().continued("q")


def test_observed_recorder_passes_everything_through():
    inner = MemoryRecorder()
    seen: list[int] = []
    rec = ObservedRecorder(inner, lambda t, new: seen.append(len(new)))
    sha = rec.put_image(b"abc")
    assert rec.get_image(sha) == b"abc" and rec.location is None
    from slidescout.core.trace import SlideRef, Trace

    t = Trace(sample_id="x", question="q", slide=SlideRef(path="p"), model="m", preset="scout")
    t.events.append(
        ModelCallEvent(id="m1", model="m", output=AssistantMessage(parts=[TextPart(text="a")]))
    )
    rec.write_trace(t)
    rec.write_trace(t)
    t.events = []  # a rerun starts over
    rec.write_trace(t)
    assert seen == [1, 0, 0] and inner.trace is t and rec.last_trace is t


@pytest.mark.parametrize(
    ("value", "box"),
    [("1,2,3,4", (1, 2, 3, 4)), ([10.4, 20, 30, 40], (10, 20, 30, 40)), (None, None), ("", None)],
)
def test_parse_region(value, box):
    assert parse_region(value) == box


@pytest.mark.parametrize("value", ["1,2,3", "a,b,c,d", [0, 0, 0, 5], "-1,0,5,5"])
def test_parse_region_rejects(value):
    with pytest.raises(ConfigError, match="region"):
        parse_region(value)
