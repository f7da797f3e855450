"""A tool that hangs never hangs ``ask`` or ``eval`` (issue 21 item 2).

Tool calls have a per-call timeout (``Tool.timeout_s``: a default, set per tool); a call past it
is abandoned (a sync tool's thread cannot be killed: it is a daemon, its limiter slot is given
back, its ``cancel_event`` is set) and the model gets a timeout error observation (``Error: ...``
under ``giant``, and the loop goes on). The sample's deadline (``--sample-timeout``) covers
everything: a tool with no timeout of its own that hangs ends the sample ``budget_time`` with its
trace written. The hanging tools here are throwaway plugins registered in the test. Every wait
has a generous bound; nothing asserts how fast it went.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from slidefactory import make_tiff

from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import Agent
from slidescout.core.messages import ToolMessage
from slidescout.core.trace import ToolEvent, Trace
from slidescout.errors import ConfigError, ToolError
from slidescout.eval.ask import question_sample
from slidescout.testing.scripted import FunctionModel, reply
from slidescout.tools import Tool, ToolClass, ToolContext, ToolRegistry, ToolTimeout, tool
from slidescout.traces.rundir import RunDir, load_trace

BOUND_S = 60.0
ANSWER = reply('It is tumour.\n```json\n{"answer": 1}\n```')


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of each test, so the threads a test abandoned end with it."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("slides") / "s.tiff"
    make_tiff(p, 3000, 2000, mpp=0.25)
    return p


# ---- the tool itself ----------------------------------------------------------------------


def test_the_timeout_is_a_tool_field_with_a_default_set_per_tool() -> None:
    @tool
    def plain() -> str:
        """Plain."""
        return "ok"

    @tool(timeout_s=5)
    def quick() -> str:
        """Quick."""
        return "ok"

    class Loader(ToolClass):
        timeout_s = 900.0

        def run(self) -> str:
            return "ok"

    from slidescout.tools import base

    assert plain.timeout_s == base.DEFAULT_TOOL_TIMEOUT_S and quick.timeout_s == 5.0
    assert Tool.from_class(Loader).timeout_s == 900.0
    assert tool(timeout_s=None)(plain.fn).timeout_s is None
    assert quick.namespaced("pkg", "pkg 1.0").timeout_s == 5.0
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(ConfigError, match="timeout_s"):
            tool(timeout_s=bad)(plain.fn)  # type: ignore[arg-type]
    # the model-backed built-ins (weights load on the first call) allow longer
    reg = ToolRegistry(plugins=False)
    for name in ("segment", "zero_shot", "patch_classifier", "slide_classifier"):
        assert reg.get(name).timeout_s == 600.0
    assert reg.get("slide_zoom").timeout_s == 120.0


async def test_a_hung_sync_tool_is_abandoned_and_gives_its_limiter_slot_back(
    release: threading.Event,
) -> None:
    seen: list[ToolContext] = []

    @tool(limiter="gpu", timeout_s=0.5)
    def stuck(ctx: ToolContext) -> str:
        """Never returns (until the test ends)."""
        seen.append(ctx)
        release.wait()
        return "late"

    @tool(limiter="gpu")
    def quick() -> str:
        """Returns at once."""
        return "done"

    gpu = anyio.CapacityLimiter(1)
    ctx = ToolContext(limiters={"gpu": gpu})
    with pytest.raises(ToolTimeout, match=r"did not finish within 0\.5 s") as info:
        await asyncio.wait_for(stuck.invoke({}, ctx), BOUND_S)
    assert isinstance(info.value, ToolError)  # the model sees it as an error observation
    assert gpu.borrowed_tokens == 0  # the slot came back though the thread still runs
    worker = next(t for t in threading.enumerate() if t.name == "slidescout-tool")
    assert worker.daemon  # it cannot keep the process from exiting
    assert seen[0].cancel_event.is_set()  # asked to stop, if it listens
    assert not ctx.cancel_event.is_set()  # the sample's other calls go on
    result = await asyncio.wait_for(quick.invoke({}, ctx), BOUND_S)  # no deadlock on the slot
    assert result.text == "done"


async def test_a_hung_async_tool_is_cancelled_at_its_timeout() -> None:
    cancelled = asyncio.Event()

    @tool(timeout_s=0.5)
    async def forever() -> str:
        """An await that never ends."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    with pytest.raises(ToolTimeout, match="forever did not finish"):
        await asyncio.wait_for(forever.invoke({}), BOUND_S)
    await asyncio.wait_for(cancelled.wait(), BOUND_S)


async def test_a_hung_setup_is_abandoned_too(release: threading.Event) -> None:
    class Heavy(ToolClass):
        timeout_s = 0.5

        def setup(self) -> None:
            release.wait()

        def run(self) -> str:
            return "ok"

    with pytest.raises(ToolTimeout):
        await asyncio.wait_for(Tool.from_class(Heavy).invoke({}), BOUND_S)


# ---- in the agent loop --------------------------------------------------------------------


def _hang_tool(release: threading.Event, *, is_async: bool, timeout_s: float | None) -> Tool:
    if is_async:

        @tool(name="hang", timeout_s=timeout_s)
        async def hang_async(seconds: int) -> str:
            """Wait for a while.

            Args:
                seconds: How long.
            """
            await asyncio.Event().wait()
            return "never"

        return hang_async

    @tool(name="hang", timeout_s=timeout_s)
    def hang_sync(seconds: int) -> str:
        """Wait for a while.

        Args:
            seconds: How long.
        """
        release.wait()
        return "late"

    return hang_sync


def _run(
    slide_path: Path, tmp_path: Path, model: FunctionModel, hang: Tool, **config: object
) -> Trace:
    registry = ToolRegistry(builtin_modules=["slidescout.tools.navigation"], plugins=False)
    registry.register(hang)
    agent = Agent(model, AgentConfig(tools="+hang", **config), registry=registry)  # type: ignore[arg-type]
    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())
    return asyncio.run(asyncio.wait_for(agent.run(sample, run.recorder()), BOUND_S))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("preset", ["scout", "giant"])
def test_a_timed_out_call_is_an_error_observation_and_the_loop_goes_on(
    slide_path: Path, tmp_path: Path, release: threading.Event, preset: str, is_async: bool
) -> None:
    hang = _hang_tool(release, is_async=is_async, timeout_s=0.5)
    model = FunctionModel(
        lambda req, turn: reply("Wait.", ("hang", {"seconds": 1})) if turn == 0 else ANSWER
    )
    trace = _run(slide_path, tmp_path, model, hang, preset=preset)
    assert trace.status == "answered"
    event = next(e for e in trace.events if isinstance(e, ToolEvent))
    assert event.error is not None and "did not finish within 0.5 s" in event.error
    result = next(m for m in model.requests[1].messages if isinstance(m, ToolMessage)).results[0]
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Error: the tool hang did not finish")
    assert result.is_error is (preset != "giant")  # giant: the error goes back as plain text


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_sample_deadline_ends_a_hung_tool_call_with_the_trace_written(
    slide_path: Path, tmp_path: Path, release: threading.Event, is_async: bool
) -> None:
    hang = _hang_tool(release, is_async=is_async, timeout_s=None)  # no limit of its own
    model = FunctionModel(lambda req, turn: reply("Wait.", ("hang", {"seconds": 1})))
    trace = _run(slide_path, tmp_path, model, hang, sample_seconds=2)
    assert trace.status == "budget_time"
    assert "sample time limit of 2 s reached" in (trace.error or "")
    written = load_trace(tmp_path / "run" / "traces" / "s.json")
    assert written.status == "budget_time"
    event = next(e for e in written.events if isinstance(e, ToolEvent))
    assert event.call.name == "hang" and "cancelled" in (event.error or "")


def test_a_process_with_an_abandoned_tool_thread_exits(slide_path: Path, tmp_path: Path) -> None:
    """A plugin stuck in ``time.sleep`` for good: the sample ends, and so does the process."""
    code = textwrap.dedent(
        f"""
        import asyncio, time
        from slidescout.agents.config import AgentConfig
        from slidescout.agents.loop import Agent
        from slidescout.eval.ask import question_sample
        from slidescout.testing.scripted import FunctionModel, reply
        from slidescout.tools import ToolRegistry, tool
        from slidescout.traces.rundir import RunDir

        @tool(timeout_s=1)
        def nap(seconds: int) -> str:
            '''Sleep.

            Args:
                seconds: How long.
            '''
            time.sleep(10**6)
            return "never"

        reg = ToolRegistry(builtin_modules=["slidescout.tools.navigation"], plugins=False)
        reg.register(nap)
        answer = reply('Tumour.\\n```json\\n{{"answer": 1}}\\n```')
        model = FunctionModel(lambda req, turn: reply("", ("nap", {{"seconds": 9}})) if turn == 0 else answer)
        agent = Agent(model, AgentConfig(tools="+nap"), registry=reg)
        sample = question_sample({str(slide_path)!r}, "Diagnosis?", ["Tumour", "Normal"])
        run = RunDir.create({str(tmp_path / "run")!r}, agent.config(), agent.prompt_hashes())
        print(asyncio.run(agent.run(sample, run.recorder())).status)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: a hung tool thread held it")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "answered"


def test_the_sample_deadline_ends_a_hung_overview_render(
    slide_path: Path, tmp_path: Path, release: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering is inside the deadline too: a render that never returns (a damaged file) ends
    the sample ``budget_time``, its thread left behind as a daemon."""
    from slidescout.agents.environment import SlideEnvironment

    def stuck_overview(self: object, *args: object, **kwargs: object) -> None:
        release.wait()

    monkeypatch.setattr(SlideEnvironment, "overview", stuck_overview)
    model = FunctionModel(lambda req, turn: ANSWER)
    hang = _hang_tool(release, is_async=False, timeout_s=1)
    trace = _run(slide_path, tmp_path, model, hang, sample_seconds=2)
    assert trace.status == "budget_time" and not model.requests  # never got to the model
    assert load_trace(tmp_path / "run" / "traces" / "s.json").status == "budget_time"
