"""The MCP server: the registry's tools over the Model Context Protocol, for the slides of one folder.

Built on the SDK's low-level :class:`mcp.server.Server`, because each tool's JSON schema comes from
our own :class:`~slidescout.tools.base.Tool` (type hints and docstring) and the high-level
``MCPServer`` decorator can only derive one from a Python signature. Each slide tool's schema gets a
required ``slide_id`` argument; ``list_slides`` gives the ids. Results are a text block (the tool's
text plus a caption per image with its level-0 box and µm/px), the images as base64 JPEG/PNG bytes,
and ``structuredContent`` with the tool's data and the image provenance.

Errors never crash the server: an unknown tool, bad arguments, a bad slide id, a ``ToolError`` or a
tool's bug become a result with ``isError`` set and a message the model can act on.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import anyio
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from slidescout import __version__
from slidescout.errors import SlidescoutError, ToolError
from slidescout.tools.base import Tool, ToolImage, ToolResult
from slidescout.tools.context import ToolContext
from slidescout.tools.mcp_server.library import LIBRARY_KEY, SlideLibrary, list_slides
from slidescout.tools.registry import ToolRegistry, default_registry

log = logging.getLogger(__name__)

SLIDE_ID = "slide_id"
STATE_KEY = "slidescout.slide_state"
MAX_VIEWS_KEPT = 100  # per slide and session
URI_PREFIX = "slidescout://slides/"
RESOURCE_NOT_FOUND = -32002  # MCP's error code for an unknown resource
INSTRUCTIONS = (
    "Whole-slide pathology images. Call list_slides first: every other slide tool needs one of its "
    "ids as slide_id. Coordinates are level-0 pixels of that slide, origin top left; a region is "
    "(x, y, w, h). Start with overview, then zoom into regions (slide_zoom, view_region); pan moves "
    "the last view of the same slide. Each image is described with its level-0 box and µm per pixel."
)


@dataclass
class ServerOptions:
    """How images are rendered and tools run (the agent's preset settings)."""

    max_side: int = 1000
    guides: bool = True
    jpeg_quality: int = 90
    device: str = "auto"
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    tool: Tool
    needs_slide: bool
    schema: dict[str, Any]


def default_tool_names(registry: ToolRegistry) -> list[str]:
    """The registry's tools, less those that need an image set (an MCP client has none)."""
    return [t.name for t in registry if t.needs != "imageset"]


def needs_slide(t: Tool) -> bool:
    """Whether a tool works on a slide (and so takes ``slide_id``): what the tool declares."""
    return t.needs == "slide"


def with_slide_id(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a tool's JSON schema with a required ``slide_id`` string first."""
    s = copy.deepcopy(schema)
    s.setdefault("type", "object")
    prop = {
        "type": "string",
        "description": "Id of the slide, as list_slides gives it (its path "
        "relative to the slide folder, e.g. 'case1.svs').",
    }
    s["properties"] = {SLIDE_ID: prop, **s.get("properties", {})}
    s["required"] = [SLIDE_ID, *[r for r in s.get("required", []) if r != SLIDE_ID]]
    return s


class SlidescoutMCP:
    """The tools of one run configuration, served for the slides of ``slide_dir``.

    ``server`` is the SDK's low-level server; run it on any transport (see ``transports``), or
    connect a client to it in-process (``mcp.Client(app.server)``).
    """

    def __init__(
        self,
        slide_dir: Any,
        *,
        tools: str | None = None,
        registry: ToolRegistry | None = None,
        options: ServerOptions | None = None,
        name: str = "slidescout",
    ) -> None:
        self.library = slide_dir if isinstance(slide_dir, SlideLibrary) else SlideLibrary(slide_dir)
        self.options = options or ServerOptions()
        self.registry = registry or default_registry()
        for err in self.registry.errors:
            if err.error != "module not present":
                log.warning("tool module or plugin not loaded: %s", err)
        names = self.registry.resolve_toolset(default_tool_names(self.registry), tools)
        self.entries: dict[str, _Entry] = {}
        self._add(list_slides, slide=False)
        for t in self.registry.select(names):
            if t.wire_name in self.entries:
                log.warning("tool %s is hidden by the server's own %s", t.name, t.wire_name)
                continue
            slide = needs_slide(t)
            if slide and SLIDE_ID in t.parameters.get("properties", {}):
                log.warning("tool %s is not served: it has its own %r parameter", t.name, SLIDE_ID)
                continue
            self._add(t, slide=slide)
        self._extras = {**self.options.extras, LIBRARY_KEY: self.library}
        self._limiters: dict[str, Any] = {}
        self._shared_state: dict[str, dict[str, Any]] = {}
        self.server: Server[dict[str, Any]] = Server(
            name,
            version=__version__,
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            get_tool_input_schema=self._input_schema,
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
            on_list_resources=self._on_list_resources,
            on_list_resource_templates=self._on_list_resource_templates,
            on_read_resource=self._on_read_resource,
        )

    def _add(self, t: Tool, *, slide: bool) -> None:
        schema = with_slide_id(t.parameters) if slide else copy.deepcopy(t.parameters)
        self.entries[t.wire_name] = _Entry(t, slide, schema)

    @property
    def tool_names(self) -> list[str]:
        """The names the client sees (wire names: ``pkg__name`` for plugins)."""
        return list(self.entries)

    # -- session state -------------------------------------------------------------------------
    @asynccontextmanager
    async def _lifespan(self, _server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        yield {STATE_KEY: {}}

    def _session_state(self, rctx: ServerRequestContext[Any] | None) -> dict[str, dict[str, Any]]:
        """Per-slide tool state of the caller's session: the connection's scratch space on a
        handshake-era connection (stdio, in-process, an HTTP session); on the stateless 2026
        protocol, the lifespan's (per stdio process or in-process client; shared over HTTP)."""
        if rctx is None:
            return self._shared_state
        conn = getattr(rctx.session, "_connection", None)  # SDK internal, guarded
        if (
            conn is not None
            and isinstance(getattr(conn, "state", None), dict)
            and getattr(conn, "protocol_version", None) not in MODERN_PROTOCOL_VERSIONS
        ):
            return conn.state.setdefault(STATE_KEY, {})
        lifespan = rctx.lifespan_context
        if isinstance(lifespan, dict):
            return lifespan.setdefault(STATE_KEY, {})
        return self._shared_state

    # -- tools ---------------------------------------------------------------------------------
    def _input_schema(self, name: str) -> dict[str, Any] | None:
        entry = self.entries.get(name)
        return entry.schema if entry else None

    def list_tools(self) -> list[types.Tool]:
        out = []
        for wire, e in self.entries.items():
            builtin = e.tool.source == "builtin"
            out.append(
                types.Tool(
                    name=wire,
                    description=e.tool.description,
                    input_schema=e.schema,
                    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False)
                    if builtin
                    else None,
                )
            )
        return out

    async def _on_list_tools(
        self, rctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.list_tools())

    def _entry(self, name: str) -> _Entry:
        entry = self.entries.get(name)
        if entry is None:
            match = [e for e in self.entries.values() if name in (e.tool.name, e.tool.short_name)]
            if len(match) == 1:
                return match[0]
            close = difflib.get_close_matches(name, list(self.entries), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ToolError(
                f"unknown tool {name!r}; the available tools are: {', '.join(self.entries)}.{hint}"
            )
        return entry

    async def call(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        state: dict[str, dict[str, Any]] | None = None,
    ) -> tuple[ToolResult, str | None]:
        """Run one call; returns the result and the slide id it ran on. Raises ``ToolError``."""
        entry = self._entry(name)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolError(
                f"arguments for {name} must be a JSON object, got {type(arguments).__name__}"
            )
        args = dict(arguments)
        slide = slide_id = None
        states = self._shared_state if state is None else state
        if entry.needs_slide:
            if SLIDE_ID not in args:
                raise ToolError(
                    f"missing required argument 'slide_id' for {name}; call list_slides "
                    "for the slide ids"
                )
            raw = args.pop(SLIDE_ID)
            slide = self.library.open(raw)
            slide_id = str(raw).strip()
        tool_state = states.setdefault(slide_id or "", {})
        ctx = ToolContext(
            slide=slide,
            slide_id=slide_id or "",
            state=tool_state,
            max_side=self.options.max_side,
            guides=self.options.guides,
            jpeg_quality=self.options.jpeg_quality,
            device=self.options.device,
            limiters=self._limiters,
            extras=self._extras,
        )
        try:
            result = await entry.tool.invoke(args, ctx)
        except anyio.get_cancelled_exc_class():
            ctx.cancel()  # ask a tool still working in a thread to stop
            raise
        finally:
            views = tool_state.get("views")
            if isinstance(views, list) and len(views) > MAX_VIEWS_KEPT:
                del views[:-MAX_VIEWS_KEPT]
        return result, slide_id

    async def _on_call_tool(
        self, rctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name = params.name
        try:
            result, slide_id = await self.call(name, params.arguments, self._session_state(rctx))
        except SlidescoutError as exc:  # ToolError, SlideError, cancelled...: for the model
            return _error_result(self.library.scrub(str(exc)))
        except Exception as exc:  # a tool's bug: reported, logged, never fatal
            log.exception("tool %s failed", name)
            return _error_result(
                f"tool {name} failed with an internal error "
                f"({type(exc).__name__}: {self.library.scrub(str(exc))})"
            )
        return to_call_result(
            result,
            tool=self._entry(name).tool.wire_name,
            slide_id=slide_id,
            quality=self.options.jpeg_quality,
        )

    # -- resources -----------------------------------------------------------------------------
    async def _on_list_resources(
        self, rctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        resources = [
            types.Resource(
                uri=slide_uri(sid),
                name=sid,
                mime_type="application/json",
                description="Slide size and resolution (allow-listed properties)",
            )
            for sid in self.library.ids()[:1000]
        ]
        return types.ListResourcesResult(resources=resources)

    async def _on_list_resource_templates(
        self, rctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=URI_PREFIX + "{slide_id}",
                    name="slide",
                    mime_type="application/json",
                    description="Size and resolution of a slide (id URL-encoded)",
                ),
                types.ResourceTemplate(
                    uri_template=URI_PREFIX + "{slide_id}/overview",
                    name="overview",
                    mime_type="image/jpeg",
                    description="JPEG overview of the whole slide (id URL-encoded)",
                ),
            ]
        )

    async def _on_read_resource(
        self, rctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not uri.startswith(URI_PREFIX):
            raise MCPError(
                RESOURCE_NOT_FOUND, f"unknown resource {uri!r}; slides are {URI_PREFIX}<id>"
            )
        rest = uri[len(URI_PREFIX) :]
        overview = rest.endswith("/overview")
        sid = unquote(rest[: -len("/overview")] if overview else rest)
        try:
            if not overview:
                info = self.library.describe(sid)
                return types.ReadResourceResult(
                    contents=[
                        types.TextResourceContents(
                            uri=uri, mime_type="application/json", text=json.dumps(info)
                        )
                    ]
                )
            slide = self.library.open(sid)
            view = await anyio.to_thread.run_sync(
                lambda: slide.thumbnail(self.options.max_side, guides=False)
            )
        except SlidescoutError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, self.library.scrub(str(exc))) from None

        data, media_type = ToolImage.from_view(view).encode(self.options.jpeg_quality)
        return types.ReadResourceResult(
            contents=[
                types.BlobResourceContents(
                    uri=uri, mime_type=media_type, blob=base64.b64encode(data).decode("ascii")
                )
            ]
        )


def slide_uri(slide_id: str, overview: bool = False) -> str:
    return URI_PREFIX + quote(slide_id, safe="") + ("/overview" if overview else "")


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
def _error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def jsonable(value: Any) -> Any:
    """Plain JSON values (NaN/inf become None; boxes, tuples and numpy values converted)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "as_tuple"):
        return list(value.as_tuple())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    return str(value)


def image_caption(index: int, meta: dict[str, Any], slide_id: str | None) -> str:
    """``Image 1 (slide_zoom, image/jpeg, 1000x750 px): level-0 box (x=...) of slide 'a.svs',
    pyramid level 1, 0.500 µm/px.``"""
    head = (
        f"Image {index} ({', '.join(p for p in (meta['label'], meta['media_type']) if p)}, "
        f"{meta['width']}x{meta['height']} px)"
    )
    box = meta.get("box")
    if box is None:
        return head + ": not a region of the slide."
    x, y, w, h = box
    text = f"{head}: level-0 box (x={x}, y={y}, w={w}, h={h})"
    if slide_id:
        text += f" of slide {slide_id!r}"
    if meta.get("level") is not None:
        text += f", pyramid level {meta['level']}"
    mpp = meta.get("mpp")
    text += f", {mpp:.3f} µm/px." if mpp else ", µm/px unknown."
    return text


def to_call_result(
    result: ToolResult, *, tool: str, slide_id: str | None, quality: int = 90
) -> types.CallToolResult:
    """MCP content for a tool result: text (with image captions), images, structured data."""
    images: list[types.ImageContent] = []
    metas: list[dict[str, Any]] = []
    for img in result.images:
        data, media_type = img.encode(quality)
        w, h = img.width, img.height
        meta = {
            "label": img.label or tool,
            "media_type": media_type,
            "width": w,
            "height": h,
            "box": list(img.box.as_tuple()) if img.box is not None else None,
            "level": img.level,
            "mpp": jsonable(img.mpp),
        }
        metas.append(meta)
        images.append(
            types.ImageContent(
                type="image", data=base64.b64encode(data).decode("ascii"), mime_type=media_type
            )
        )
    lines = [result.text.strip()] if result.text.strip() else []
    lines += [image_caption(i, m, slide_id) for i, m in enumerate(metas, 1)]
    content: list[Any] = [types.TextContent(type="text", text="\n".join(lines) or "(no output)")]
    content.extend(images)
    data = jsonable(result.data)
    if data and json.dumps(data) != result.text.strip():
        content.append(types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False)))
    structured = {"tool": tool, "slide_id": slide_id, "data": data, "images": metas}
    return types.CallToolResult(content=content, structured_content=structured)


def build_server(
    slide_dir: Any,
    *,
    tools: str | None = None,
    registry: ToolRegistry | None = None,
    options: ServerOptions | None = None,
) -> SlidescoutMCP:
    """A :class:`SlidescoutMCP` for ``slide_dir`` (``app.server`` is the SDK server)."""
    return SlidescoutMCP(slide_dir, tools=tools, registry=registry, options=options)


__all__ = [
    "INSTRUCTIONS",
    "ServerOptions",
    "SlidescoutMCP",
    "build_server",
    "default_tool_names",
    "image_caption",
    "jsonable",
    "needs_slide",
    "slide_uri",
    "to_call_result",
    "with_slide_id",
]
