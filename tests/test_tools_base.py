"""Tool decorator, schemas from type hints and docstrings, validation, invocation, results."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from typing import Annotated, Literal, Optional

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, Field

from slidescout.core.messages import ImagePart, TextPart, ToolSpec
from slidescout.core.types import Box, View
from slidescout.errors import ConfigError, SlideError, ToolError
from slidescout.tools import (
    Tool,
    ToolCancelled,
    ToolClass,
    ToolContext,
    ToolImage,
    ToolResult,
    as_tools,
    parse_docstring,
    tool,
    wire_name,
)


@tool
def sample_tool(
    x: int,
    label: str,
    ctx: ToolContext,
    fraction: Annotated[float, Field(ge=0, le=1)] = 0.5,
    direction: Literal["left", "right"] = "left",
    limit: Optional[int] = None,  # noqa: UP045 - the old spelling must work too
    tags: list[str] | None = None,
    flag: bool = False,
) -> str:
    """Do something with a region.

    A second paragraph that is part of the description
    and spans two lines.

    Args:
        x: The x coordinate, level-0 pixels.
        label (str): A label for the thing,
            continued on a second line.
        fraction: How much of it.
        direction: Which way.
        ctx: Not in the schema.

    Returns:
        A string.
    """
    return f"{x}|{label}|{fraction}|{direction}|{limit}|{tags}|{flag}|{type(ctx).__name__}"


def view_of(w=40, h=30, box=Box(0, 0, 400, 300), mpp=0.5) -> View:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200
    return View(image=img, box=box, level=1, downsample=10.0, mpp=mpp)


# ---------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------
def test_schema_from_hints_and_docstring():
    t = sample_tool
    assert isinstance(t, Tool)
    assert t.name == "sample_tool" and t.source == "builtin"
    assert t.description == (
        "Do something with a region.\n\nA second paragraph that is part of the "
        "description and spans two lines."
    )
    s = t.parameters
    assert s["type"] == "object" and s["additionalProperties"] is False
    props = s["properties"]
    assert list(props) == ["x", "label", "fraction", "direction", "limit", "tags", "flag"]
    assert "ctx" not in props and t.context_param == "ctx"
    assert s["required"] == ["x", "label"]
    assert props["x"] == {"type": "integer", "description": "The x coordinate, level-0 pixels."}
    assert props["label"]["description"] == "A label for the thing, continued on a second line."
    assert props["fraction"]["minimum"] == 0 and props["fraction"]["maximum"] == 1
    assert props["fraction"]["default"] == 0.5 and props["fraction"]["type"] == "number"
    assert (
        props["direction"]["enum"] == ["left", "right"] and props["direction"]["default"] == "left"
    )
    assert {"type": "null"} in props["limit"]["anyOf"]
    assert props["flag"] == {"type": "boolean", "default": False}
    assert "title" not in s and all("title" not in p for p in props.values())


def test_spec_is_a_toolspec_and_json_safe():
    spec = sample_tool.spec
    assert isinstance(spec, ToolSpec)
    assert spec.name == "sample_tool"
    assert spec.parameters == sample_tool.parameters
    spec.parameters["properties"].clear()  # a copy: mutating it does not change the tool
    assert sample_tool.parameters["properties"]


def test_decorator_with_options_and_field_description_wins():
    @tool(name="renamed", description="Custom description.")
    def f(a: Annotated[int, Field(description="from Field", ge=1)]) -> str:
        """Ignored summary.

        Args:
            a: from docstring
        """
        return str(a)

    assert f.name == "renamed" and f.description == "Custom description."
    assert f.parameters["properties"]["a"]["description"] == "from Field"
    assert f(3) == "3"  # the Tool stays callable


def test_sphinx_docstring_and_no_docstring():
    def g(a: int, b: str = "x"):
        """Summary here.

        :param a: first
        :param str b: second
        """

    desc, params = parse_docstring(g.__doc__)
    assert desc == "Summary here." and params == {"a": "first", "b": "second"}

    @tool
    def h(a: int):
        return a

    assert h.description == "h"
    assert "description" not in h.parameters["properties"]["a"]


def test_no_parameters_and_pydantic_model_parameter():
    @tool
    def nothing() -> str:
        """Nothing."""
        return "ok"

    assert nothing.parameters["properties"] == {} and nothing.parameters["required"] == []

    class Point(BaseModel):
        x: int
        y: int

    @tool
    def pts(points: list[Point]) -> str:
        """Points.

        Args:
            points: Some points.
        """
        return str(sum(p.x for p in points))

    assert "$defs" in pts.parameters
    assert asyncio.run(pts.invoke({"points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]})).text == "4"


def test_bad_definitions_are_config_errors():
    def star(*args: int):
        return 1

    with pytest.raises(ConfigError, match="ordinary named parameter"):
        tool(star)

    def badname(a: int):
        return a

    with pytest.raises(ConfigError, match="invalid tool name"):
        tool(name="has space")(badname)

    def unresolved(a: "NoSuchType"):  # noqa: F821, UP037
        return a

    with pytest.raises(ConfigError, match="type hints"):
        tool(unresolved)

    with pytest.raises(ConfigError, match="not a tool"):
        as_tools(42)


def test_parameter_named_title_survives_title_stripping():
    @tool
    def note(title: str, text: str = "") -> str:
        """Write a note.

        Args:
            title: The title.
            text: The body.
        """
        return title

    assert list(note.parameters["properties"]) == ["title", "text"]
    assert note.parameters["properties"]["title"] == {"type": "string", "description": "The title."}


def test_wire_names():
    assert wire_name("slide_zoom") == "slide_zoom"
    assert wire_name("my-plugin/tissue_fraction") == "my-plugin__tissue_fraction"
    long = wire_name("a-very-long-distribution-name-for-a-plugin/" + "x" * 40)
    assert len(long) <= 64 and long.replace("-", "").replace("_", "").isalnum()


# ---------------------------------------------------------------------------------------------
# validation and invocation
# ---------------------------------------------------------------------------------------------
async def test_invoke_validates_and_injects_context():
    ctx = ToolContext()
    res = await sample_tool.invoke({"x": "7", "label": "a", "tags": ["t"]}, ctx)
    assert res.text == "7|a|0.5|left|None|['t']|False|ToolContext"


@pytest.mark.parametrize(
    "args, fragments",
    [
        ({"label": "a"}, ["missing required argument 'x'"]),
        ({"x": "seven", "label": "a"}, ["'x'", "valid integer", '"seven"']),
        ({"x": 1.5, "label": "a"}, ["'x'", "fractional part"]),
        ({"x": 1, "label": "a", "fraction": 2}, ["'fraction'", "less than or equal to 1"]),
        ({"x": 1, "label": "a", "direction": "up"}, ["'direction'", "'left' or 'right'"]),
        ({"x": 1, "label": "a", "bogus": 1}, ["unexpected argument 'bogus'"]),
        ([1, 2], ["must be a JSON object"]),
    ],
)
async def test_validation_errors_are_tool_errors(args, fragments):
    with pytest.raises(ToolError) as info:
        await sample_tool.invoke(args, ToolContext())
    msg = str(info.value)
    assert msg.startswith("invalid arguments for sample_tool") or "JSON object" in msg
    for frag in fragments:
        assert frag in msg
    assert "sample_tool(x: integer, label: string" in msg  # the expected call is spelled out


async def test_sync_tools_run_in_a_worker_thread_and_async_tools_on_the_loop():
    main = threading.get_ident()

    @tool
    def sync_tool() -> str:
        """Sync."""
        return "worker" if threading.get_ident() != main else "main"

    @tool
    async def async_tool(n: int) -> str:
        """Async.

        Args:
            n: a number
        """
        await asyncio.sleep(0)
        return "main" if threading.get_ident() == main else "worker"

    assert async_tool.is_async and not sync_tool.is_async
    assert (await sync_tool.invoke({})).text == "worker"
    assert (await async_tool.invoke({"n": 1})).text == "main"


async def test_blocking_sync_tools_do_not_stall_the_loop():
    all_in = threading.Barrier(3)

    @tool
    def slow() -> str:
        """Blocks until all three calls are running: only concurrent threads get past."""
        all_in.wait(timeout=120)  # a broken barrier (calls run one by one) raises here
        return "done"

    ticks = 0

    async def loop_runs() -> None:  # the event loop keeps turning while the tools block
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(loop_runs())
    try:
        results = await asyncio.gather(*(slow.invoke({}) for _ in range(3)))
    finally:
        ticker.cancel()
    assert [r.text for r in results] == ["done"] * 3
    assert ticks > 0


async def test_slide_error_becomes_tool_error_and_other_errors_propagate():
    @tool
    def bad_box() -> str:
        """Raises SlideError."""
        raise SlideError("box (9,9,0,0) is empty")

    @tool
    def bug() -> str:
        """Raises a bug."""
        raise ZeroDivisionError("oops")

    with pytest.raises(ToolError, match="empty"):
        await bad_box.invoke({})
    with pytest.raises(ZeroDivisionError):
        await bug.invoke({})


async def test_cancelled_context_stops_calls():
    ctx = ToolContext()
    ctx.cancel()
    with pytest.raises(ToolCancelled):
        await sample_tool.invoke({"x": 1, "label": "a"}, ctx)


async def test_named_limiter_is_used():
    import anyio

    @tool(limiter="gpu")
    def on_gpu() -> str:
        """GPU."""
        return "ok"

    limiter = anyio.CapacityLimiter(1)
    ctx = ToolContext(limiters={"gpu": limiter})
    assert (await on_gpu.invoke({}, ctx)).text == "ok"
    assert on_gpu.limiter == "gpu"


# ---------------------------------------------------------------------------------------------
# class-based tools
# ---------------------------------------------------------------------------------------------
class Counter(ToolClass):
    """Count things with a model that is slow to load."""

    def __init__(self) -> None:
        self.setups = 0
        self.device = None

    def setup(self, ctx: ToolContext) -> None:
        time.sleep(0.2)  # weights loading
        self.setups += 1
        self.device = ctx.device

    def run(self, n: Annotated[int, Field(ge=0)], ctx: ToolContext) -> str:
        """Count.

        Args:
            n: How many.
        """
        return f"{n} on {self.device}"


async def test_class_tool_schema_and_lazy_setup_once_under_concurrency():
    t = Tool.from_class(Counter)
    assert t.name == "counter"
    assert t.description == "Count things with a model that is slow to load."
    assert t.parameters["properties"]["n"] == {
        "type": "integer",
        "minimum": 0,
        "description": "How many.",
    }
    inst = t.origin
    assert inst.setups == 0 and not inst.is_set_up  # nothing loaded at definition time
    ctx = ToolContext(device="cuda:1")
    results = await asyncio.gather(*(t.invoke({"n": i}, ctx) for i in range(8)))
    assert inst.setups == 1 and inst.is_set_up
    assert results[3].text == "3 on cuda:1"
    await t.invoke({"n": 1}, ctx)
    assert inst.setups == 1


async def test_class_tool_setup_once_across_threads_and_event_loops():
    t = Tool.from_class(Counter)

    def worker():
        asyncio.run(t.invoke({"n": 1}, ToolContext()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.origin.setups == 1


async def test_async_class_tool_with_async_setup_and_call_method():
    class Echo(ToolClass):
        name = "echo_tool"
        description = "Echo."

        def __init__(self):
            self.setups = 0

        async def setup(self):
            await asyncio.sleep(0.05)
            self.setups += 1

        async def __call__(self, text: str) -> str:
            return text.upper()

    t = tool(Echo)
    assert t.name == "echo_tool" and t.is_async
    res = await asyncio.gather(*(t.invoke({"text": "hi"}) for _ in range(5)))
    assert res[0].text == "HI" and t.origin.setups == 1


async def test_failed_setup_is_reported_then_tool_unavailable():
    class Broken(ToolClass):
        def setup(self, ctx):
            raise FileNotFoundError("weights.pt not found")

        def run(self) -> str:
            return "never"

    t = Tool.from_class(Broken)
    with pytest.raises(FileNotFoundError):
        await t.invoke({})
    with pytest.raises(ToolError, match="unavailable.*weights.pt not found"):
        await t.invoke({})


def test_class_without_run_is_config_error():
    class Empty(ToolClass):
        pass

    with pytest.raises(ConfigError, match="run"):
        Tool.from_class(Empty)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
def test_result_normalisation():
    v = view_of()
    assert ToolResult.coerce("hi") == ToolResult(text="hi")
    assert ToolResult.coerce(None) == ToolResult()
    assert ToolResult.coerce(3).text == "3"
    r = ToolResult.coerce(v)
    assert r.text == v.describe() and len(r.images) == 1
    img = r.images[0]
    assert img.box == Box(0, 0, 400, 300) and img.level == 1 and img.mpp == 0.5
    r = ToolResult.coerce(("two views", [v, v]))
    assert r.text == "two views" and len(r.images) == 2
    r = ToolResult.coerce(("one", v, {"k": 1}))
    assert r.data == {"k": 1} and len(r.images) == 1
    r = ToolResult.coerce({"area_um2": 12.5})
    assert r.data == {"area_um2": 12.5} and "12.5" in r.text
    r = ToolResult.coerce(Image.new("RGB", (8, 4)))
    assert r.images[0].width == 8 and r.images[0].height == 4
    r = ToolResult.coerce(np.zeros((5, 6), np.uint8))  # grey becomes RGB
    assert r.images[0].image.shape == (5, 6, 3)
    same = ToolResult(text="x")
    assert ToolResult.coerce(same) is same
    with pytest.raises(TypeError, match="not a tool result"):
        ToolResult.coerce(object())


def test_from_view_and_parts_with_refs():
    v = view_of()
    r = ToolResult.from_view(v, "look", label="zoom", data={"a": 1})
    parts = r.to_parts(quality=80, source="slide-1")
    assert isinstance(parts[0], TextPart) and parts[0].text == "look"
    assert isinstance(parts[1], ImagePart)
    ref = parts[1].image
    assert ref.box == (0, 0, 400, 300) and ref.level == 1 and ref.mpp == 0.5
    assert ref.width == 40 and ref.height == 30 and ref.label == "zoom" and ref.source == "slide-1"
    assert ref.media_type == "image/jpeg" and parts[1].data[:2] == b"\xff\xd8"
    assert ref.sha256 == hashlib.sha256(parts[1].data).hexdigest()


def test_tool_image_bytes_pass_through():
    import io

    buf = io.BytesIO()
    Image.new("RGB", (7, 3), "red").save(buf, "PNG")
    img = ToolImage(data=buf.getvalue(), media_type="image/png", label="plot")
    assert (img.width, img.height) == (7, 3)
    data, media = img.encode()
    assert media == "image/png" and data == buf.getvalue()
    assert img.to_array().shape == (3, 7, 3)
    with pytest.raises(ValueError):
        ToolImage()
