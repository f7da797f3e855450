"""The MCP server, driven by the SDK's own client in-process (no subprocess, no port)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from slidefactory import is_label_colour, is_macro_colour, make_svs, make_tiff  # noqa: E402

from slidescout.errors import ConfigError  # noqa: E402
from slidescout.tools import ToolContext, ToolRegistry, default_registry, tool  # noqa: E402
from slidescout.tools.mcp_server import SlidescoutMCP  # noqa: E402
from slidescout.tools.mcp_server.server import slide_uri  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mcp")
    root = base / "slides"
    (root / "sub").mkdir(parents=True)
    make_tiff(root / "a.tiff", 2000, 1500, mpp=0.25)
    make_svs(root / "sub" / "b.svs", 1600, 1200)  # has label and macro images
    make_tiff(root / ".hidden.tiff", 300, 200)
    (root / "notes.txt").write_text("not a slide")
    outside = base / "outside"
    outside.mkdir()
    make_tiff(outside / "secret.tiff", 400, 300)
    os.symlink(outside / "secret.tiff", root / "escape.tiff")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "a.tiff", root / "alias.tiff")  # a link that stays inside: allowed
    return root


@pytest.fixture(scope="module")
def app(slide_dir) -> SlidescoutMCP:
    return SlidescoutMCP(slide_dir)


def _images(result) -> list[np.ndarray]:
    out = []
    for block in result.content:
        if block.type == "image":
            raw = base64.b64decode(block.data)
            assert raw[:3] == b"\xff\xd8\xff" or raw[:8] == b"\x89PNG\r\n\x1a\n", (
                "not JPEG/PNG bytes"
            )
            with Image.open(io.BytesIO(raw)) as im:
                assert im.format in ("JPEG", "PNG")
                assert im.get_format_mimetype() == block.mime_type
                out.append(np.asarray(im.convert("RGB")))
    return out


def _text(result) -> str:
    return "\n".join(b.text for b in result.content if b.type == "text")


async def test_list_tools_schemas_come_from_the_registry(app):
    async with Client(app.server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    registry = default_registry()
    assert "list_slides" in tools and "slide_zoom" in tools and "pan" in tools
    assert "view_image" not in tools  # multi-image tools are not served
    ls = tools["list_slides"].input_schema
    assert "slide_id" not in ls["properties"]
    for name in ("slide_zoom", "view_region", "pan", "overview", "measure"):
        schema = tools[name].input_schema
        assert schema["required"][0] == "slide_id"
        assert schema["properties"]["slide_id"]["type"] == "string"
        own = registry.get(name).parameters
        assert {k: v for k, v in schema["properties"].items() if k != "slide_id"} == own[
            "properties"
        ]
        assert schema["required"][1:] == own["required"]
        assert tools[name].description == registry.get(name).description
    if "lookup" in tools:  # slide-free: no slide_id
        assert "slide_id" not in tools["lookup"].input_schema["properties"]


async def test_list_slides(app):
    async with Client(app.server) as client:
        result = await client.call_tool("list_slides", {})
    assert not result.is_error
    slides = result.structured_content["data"]["slides"]
    ids = [s["slide_id"] for s in slides]
    assert ids == ["a.tiff", "alias.tiff", "sub/b.svs"]  # no hidden, no escaping link, no .txt
    a = slides[0]
    assert (a["width"], a["height"]) == (2000, 1500) and a["mpp"] == pytest.approx(0.25, rel=1e-3)
    for s in slides:  # the allow-list only
        assert set(s) <= {"slide_id", "width", "height", "mpp", "mpp_source", "objective_power"}
    text = _text(result)
    assert "sub/b.svs: 1600 x 1200 px" in text
    assert "label" not in text.lower() and "macro" not in text.lower()
    async with Client(app.server) as client:
        page = await client.call_tool("list_slides", {"contains": "B.SVS"})
        assert [s["slide_id"] for s in page.structured_content["data"]["slides"]] == ["sub/b.svs"]
        page = await client.call_tool("list_slides", {"offset": 1, "limit": 1})
        assert [s["slide_id"] for s in page.structured_content["data"]["slides"]] == ["alias.tiff"]
        assert "offset=2" in _text(page)


async def test_slide_zoom_returns_a_real_image_with_its_box(app):
    async with Client(app.server) as client:
        result = await client.call_tool(
            "slide_zoom", {"slide_id": "a.tiff", "x0": 0, "y0": 0, "w": 2000, "h": 1500}
        )
    assert not result.is_error, _text(result)
    [img] = _images(result)
    assert img.shape == (750, 1000, 3)
    text = _text(result)
    assert "level-0 box (x=0, y=0, w=2000, h=1500)" in text and "0.500 µm/px" in text
    meta = result.structured_content["images"][0]
    assert meta["box"] == [0, 0, 2000, 1500] and meta["mpp"] == pytest.approx(0.5, rel=1e-3)
    assert result.structured_content["slide_id"] == "a.tiff"
    assert result.structured_content["data"]["slide_size"] == [2000, 1500]
    # the gradient pattern: red grows with x, so the image's right side is redder than its left
    assert img[:, -50:, 0].mean() > img[:, :50, 0].mean() + 100


async def test_label_and_macro_never_served(app):
    async with Client(app.server) as client:
        results = [
            await client.call_tool("overview", {"slide_id": "sub/b.svs"}),
            await client.call_tool(
                "slide_zoom",
                {"slide_id": "sub/b.svs", "x0": -500, "y0": -500, "w": 5000, "h": 5000},
            ),
            await client.call_tool(
                "view_region",
                {"slide_id": "sub/b.svs", "x": 0, "y": 0, "w": 1600, "h": 1200, "mpp": 2.0},
            ),
        ]
        blob = await client.read_resource(slide_uri("sub/b.svs", overview=True))
        info = await client.read_resource(slide_uri("sub/b.svs"))
    images = [i for r in results for i in _images(r)]
    assert all(not r.is_error for r in results) and len(images) == 3
    with Image.open(io.BytesIO(base64.b64decode(blob.contents[0].blob))) as im:
        images.append(np.asarray(im.convert("RGB")))
    for img in images:
        assert not is_label_colour(img).any() and not is_macro_colour(img).any()
    for r in results:
        said = (_text(r) + str(r.structured_content["data"])).lower()
        assert "label" not in said and "macro" not in said and "associated" not in said
        assert [m["label"] for m in r.structured_content["images"]] == [
            r.structured_content["tool"]
        ]
    assert "label" not in info.contents[0].text and "macro" not in info.contents[0].text


@pytest.mark.parametrize(
    "slide_id, fragment",
    [
        ("../outside/secret.tiff", "'..'"),
        ("sub/../a.tiff", "'..'"),
        ("./a.tiff", "'..' or '.'"),
        ("/etc/passwd.tiff", "absolute"),
        ("C:/slides/a.tiff", "absolute"),
        ("~/a.tiff", "absolute"),
        ("sub\\b.svs", "backslash"),
        ("escape.tiff", "outside the slide folder"),
        ("linkdir/secret.tiff", "outside the slide folder"),
        (".hidden.tiff", "unknown slide id"),
        ("nope.tiff", "unknown slide id"),
        ("notes.txt", "not a slide file"),
        ("", "non-empty string"),
        (42, "non-empty string"),
    ],
)
async def test_path_escapes_are_tool_errors(app, slide_dir, slide_id, fragment):
    async with Client(app.server) as client:
        result = await client.call_tool(
            "slide_zoom", {"slide_id": slide_id, "x0": 0, "y0": 0, "w": 100, "h": 100}
        )
    assert result.is_error
    text = _text(result)
    assert fragment in text
    assert not _images(result)
    assert str(slide_dir.parent) not in text  # no host paths in messages


async def test_absolute_path_of_a_real_slide_is_refused(app, slide_dir):
    async with Client(app.server) as client:
        result = await client.call_tool("overview", {"slide_id": str(slide_dir / "a.tiff")})
    assert result.is_error and "absolute" in _text(result)


async def test_unknown_tool_and_bad_arguments_are_errors(app):
    async with Client(app.server) as client:
        unknown = await client.call_tool("slide_zooom", {"slide_id": "a.tiff"})
        assert (
            unknown.is_error and "unknown tool" in _text(unknown) and "slide_zoom" in _text(unknown)
        )
        missing_id = await client.call_tool("overview", {})
        assert missing_id.is_error and "slide_id" in _text(missing_id)
        bad = await client.call_tool(
            "slide_zoom", {"slide_id": "a.tiff", "x0": "left", "y0": 0, "w": 10}
        )
        assert bad.is_error and "invalid arguments" in _text(bad)
        assert "x0" in _text(bad) and "missing required argument 'h'" in _text(bad)
        extra = await client.call_tool("overview", {"slide_id": "a.tiff", "zoom": 3})
        assert extra.is_error and "unexpected argument 'zoom'" in _text(extra)
        outside = await client.call_tool(
            "slide_zoom", {"slide_id": "a.tiff", "x0": 9000, "y0": 9000, "w": 10, "h": 10}
        )
        assert outside.is_error and "outside the slide" in _text(outside)
        ok = await client.call_tool(
            "measure", {"slide_id": "a.tiff", "x1": 0, "y1": 0, "x2": 400, "y2": 0}
        )
        assert not ok.is_error and ok.structured_content["data"]["um"] == pytest.approx(
            100, rel=1e-3
        )


async def test_pan_state_is_per_slide_and_per_session(app):
    async with Client(app.server) as client:
        await client.call_tool(
            "slide_zoom", {"slide_id": "a.tiff", "x0": 0, "y0": 0, "w": 1000, "h": 750}
        )
        await client.call_tool(
            "slide_zoom", {"slide_id": "sub/b.svs", "x0": 800, "y0": 400, "w": 400, "h": 300}
        )
        a = await client.call_tool("pan", {"slide_id": "a.tiff", "direction": "right"})
        b = await client.call_tool("pan", {"slide_id": "sub/b.svs", "direction": "down"})
        fresh = await client.call_tool("pan", {"slide_id": "alias.tiff", "direction": "left"})
    assert a.structured_content["data"]["box"] == [500, 0, 1000, 750]
    assert b.structured_content["data"]["box"] == [800, 550, 400, 300]
    assert fresh.is_error and "no previous view" in _text(fresh)
    async with Client(app.server) as other:  # another client starts without views
        again = await other.call_tool("pan", {"slide_id": "a.tiff", "direction": "right"})
    assert again.is_error and "no previous view" in _text(again)


async def test_legacy_handshake_session_keeps_state(app):
    async with Client(app.server, mode="legacy") as client:
        await client.call_tool(
            "slide_zoom", {"slide_id": "a.tiff", "x0": 0, "y0": 0, "w": 800, "h": 600}
        )
        moved = await client.call_tool(
            "pan", {"slide_id": "a.tiff", "direction": "down", "fraction": 1.0}
        )
    assert not moved.is_error, _text(moved)
    assert moved.structured_content["data"]["box"] == [0, 600, 800, 600]


def _registry_with(*extra) -> ToolRegistry:
    return ToolRegistry(builtin_modules=["slidescout.tools.navigation"], plugins=False, tools=extra)


async def test_a_failing_tool_is_an_error_result_not_a_crash(slide_dir):
    @tool
    def boom(ctx: ToolContext) -> str:
        """Always fails."""
        raise RuntimeError(f"kaput in {slide_dir}")

    app = SlidescoutMCP(slide_dir, registry=_registry_with(boom))
    async with Client(app.server) as client:
        result = await client.call_tool("boom", {"slide_id": "a.tiff"})
        assert result.is_error and "internal error" in _text(result) and "kaput" in _text(result)
        assert str(slide_dir) not in _text(result)
        ok = await client.call_tool("overview", {"slide_id": "a.tiff"})  # still serving
        assert not ok.is_error


def test_tools_option_like_the_agent(slide_dir):
    reg = _registry_with()
    assert "pan" not in SlidescoutMCP(slide_dir, tools="-pan", registry=reg).tool_names
    assert SlidescoutMCP(slide_dir, tools="slide_zoom", registry=reg).tool_names == [
        "list_slides",
        "slide_zoom",
    ]
    with pytest.raises(ConfigError, match="unknown tool"):
        SlidescoutMCP(slide_dir, tools="+nonexistent", registry=reg)
    with pytest.raises(ConfigError, match="does not exist"):
        SlidescoutMCP(slide_dir / "missing", registry=reg)


async def test_resources(app):
    async with Client(app.server) as client:
        listed = await client.list_resources()
        uris = [r.uri for r in listed.resources]
        assert uris == [slide_uri(i) for i in ("a.tiff", "alias.tiff", "sub/b.svs")]
        templates = await client.list_resource_templates()
        assert any(t.uri_template.endswith("/overview") for t in templates.resource_templates)
        with pytest.raises(MCPError):
            await client.read_resource(slide_uri("../outside/secret.tiff"))
        with pytest.raises(MCPError):
            await client.read_resource("file:///etc/passwd")
