"""Built-in navigation tools: GIANT's ``slide_zoom`` plus views at a set resolution, pan, overview
and measurements. Coordinates are level-0 pixels, origin top left.

Each image result states the region shown (top-left corner and size) and the level-0 slide size,
as GIANT's results do, in our words; under ``scout`` also the output size and resolution and
whether the box was clamped. The loop appends how many calls remain. Every view is recorded in ``ctx.state``
(``last_view``, ``views``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field

from slidescout.core.types import Box, MessageStyle, View
from slidescout.errors import SlideError, ToolError
from slidescout.tools.base import ToolResult, tool
from slidescout.tools.context import ToolContext

# objective magnification <-> resolution, the usual convention: 40x ~ 0.25 um/px
MAG_TIMES_MPP = 10.0


def mag_to_mpp(magnification: float) -> float:
    return MAG_TIMES_MPP / magnification


def mpp_to_mag(mpp: float) -> float:
    return MAG_TIMES_MPP / mpp


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _size(slide: Any) -> tuple[int, int]:
    w, h = slide.dimensions
    return int(w), int(h)


def _size_text(slide: Any) -> str:
    w, h = _size(slide)
    return f"{w} x {h} level-0 pixels"


def _fmt_mag(mpp: float) -> str:
    mag = mpp_to_mag(mpp)
    return f"{mag:.0f}x" if mag >= 9.95 else f"{mag:.2g}x"


def _mpp_note(slide: Any) -> str:
    source = getattr(slide, "mpp_source", None)
    value = getattr(source, "value", source)
    return " (estimated from the objective power)" if value == "estimated" else ""


def _check_box(slide: Any, x: int, y: int, w: int, h: int) -> Box:
    """The requested box; a ToolError naming the slide size if it is empty or wholly outside."""
    sw, sh = _size(slide)
    if w <= 0 or h <= 0:
        raise ToolError(
            f"the region must have a positive width and height (got w={w}, h={h}); "
            f"the slide is {sw} x {sh} level-0 pixels"
        )
    box = Box(x, y, w, h)
    if box.intersect(Box(0, 0, sw, sh)) is None:
        raise ToolError(
            f"the region ({x},{y},{w},{h}) lies entirely outside the slide, which is "
            f"{sw} x {sh} level-0 pixels (x from 0 to {sw - 1}, y from 0 to {sh - 1}); "
            "choose a box that overlaps it"
        )
    return box


def giant_clamp(slide: Any, x: int, y: int, w: int, h: int) -> Box:
    """GIANT's clamp (``util.crop_to_image``): the origin into the slide, then the size into what is
    left of it, at least 1 px each way, so every box gives an image. GIANT lets the origin reach
    the slide's width or height (a 1 px read just past the edge, which OpenSlide returns
    transparent); here it stops at the last pixel, so the pixel shown is the slide's own."""
    sw, sh = _size(slide)
    x, y = max(0, min(int(x), sw - 1)), max(0, min(int(y), sh - 1))
    return Box(x, y, max(1, min(int(w), sw - x)), max(1, min(int(h), sh - y)))


def _require_mpp(slide: Any, what: str) -> float:
    mpp = slide.mpp
    if not mpp:
        raise ToolError(
            f"this slide has no resolution metadata (microns per pixel unknown), so "
            f"I cannot {what}; reason in level-0 pixels instead"
        )
    return float(mpp)


def _call(slide: Any, fn: Any, *args: Any, **kw: Any) -> View:
    try:
        return fn(*args, **kw)
    except SlideError as exc:
        raise ToolError(f"{exc} (the slide is {_size_text(slide)})") from exc


def _view_text(
    slide: Any,
    view: View,
    requested: Box | None = None,
    show_mpp: bool = True,
    style: MessageStyle = "scout",
) -> str:
    """What a view's result says: the region shown (origin and size) and the full slide size, as
    GIANT's results do (in our words); ``scout`` adds the image size and resolution and says when
    the box was clamped. Under ``giant`` nothing else (the loop appends the calls remaining)."""
    b = view.box
    sw, sh = _size(slide)
    text = (
        f"Region shown: top-left corner ({b.x},{b.y}), size {b.w}×{b.h} pixels. "
        f"Reminder: the full slide is {sw} × {sh} pixels, and every coordinate refers to that "
        "full resolution."
    )
    if style == "giant":
        return text
    res = f"The image is {view.width}×{view.height} px"
    if not show_mpp:  # GIANT states no resolution anywhere
        res += "."
    elif view.mpp:
        res += f" at {view.mpp:.3f} µm/px (≈{_fmt_mag(view.mpp)}){_mpp_note(slide)}."
    else:
        res += f", downsampled {view.downsample:.1f}× from level 0 (the slide's µm/px is unknown)."
    text += " " + res
    asked = requested or view.requested
    if view.clamped or (asked is not None and asked != b):
        a = asked or b
        text += (
            f" The requested box ({a.x},{a.y},{a.w},{a.h}) extended past the slide edge and "
            "was clamped to the slide."
        )
    return text


def _view_data(slide: Any, view: View, requested: Box | None) -> dict[str, Any]:
    asked = requested or view.requested
    return {
        "box": list(view.box.as_tuple()),
        "requested": list(asked.as_tuple()) if asked else None,
        "clamped": bool(view.clamped or (asked is not None and asked != view.box)),
        "level": view.level,
        "downsample": view.downsample,
        "mpp": view.mpp,
        "image_size": [view.width, view.height],
        "slide_size": list(_size(slide)),
    }


def _result(
    ctx: ToolContext,
    slide: Any,
    view: View,
    tool_name: str,
    requested: Box | None,
    requested_mpp: float | None = None,
    prefix: str = "",
) -> ToolResult:
    ctx.record_view(view, tool=tool_name, requested_mpp=requested_mpp)
    text = prefix + _view_text(slide, view, requested, ctx.show_mpp, ctx.message_style)
    return ToolResult.from_view(
        view, text, label=tool_name, data=_view_data(slide, view, requested)
    )


def _read_at(ctx: ToolContext, slide: Any, box: Box, mpp: float | None) -> View:
    if mpp is None:
        style = {
            k: v
            for k, v in (("level_rule", ctx.level_rule), ("guide_style", ctx.guide_style))
            if v not in ("fine", "scout")
        }  # only when not the defaults: duck-typed slides keep working
        return _call(slide, slide.read, box, max_side=ctx.max_side, guides=ctx.guides, **style)
    return _call(slide, slide.read_mpp, box, mpp, max_side=ctx.max_side, guides=ctx.guides)


# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------
@tool
def slide_zoom(x0: int, y0: int, w: int, h: int, ctx: ToolContext) -> ToolResult:
    """Show a rectangle of the whole-slide image. Coordinates: x grows from left to right, y from top to bottom; (x0, y0) is the rectangle's top-left corner.

    Args:
        x0: x of the left edge (x grows from left to right)
        y0: y of the top edge (y grows from top to bottom)
        w: Width of the rectangle in pixels
        h: Height of the rectangle in pixels
    """
    slide = ctx.require_slide()
    if ctx.box_clamp == "giant":  # any box gives an image, clamped down to 1 px (GIANT)
        view = _read_at(ctx, slide, giant_clamp(slide, x0, y0, w, h), None)
        return _result(ctx, slide, view, "slide_zoom", Box(x0, y0, w, h))
    box = _check_box(slide, x0, y0, w, h)
    view = _read_at(ctx, slide, box, None)
    return _result(ctx, slide, view, "slide_zoom", box)


@tool
def view_region(
    x: int,
    y: int,
    w: int,
    h: int,
    ctx: ToolContext,
    mpp: Annotated[float, Field(gt=0)] | None = None,
    magnification: Annotated[float, Field(gt=0)] | None = None,
) -> ToolResult:
    """View a region of the slide at a chosen resolution (level-0 pixel coordinates, origin top left).

    Give either mpp or magnification (40x ≈ 0.25 µm/px, 20x ≈ 0.5, 10x ≈ 1, 5x ≈ 2); with neither,
    the region is fitted to the image size like slide_zoom. The output image may not exceed the
    image size limit, so at high magnification choose a small box.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        mpp: Output resolution in microns per pixel (e.g. 0.5).
        magnification: Objective magnification equivalent (e.g. 20 for 20x); used instead of mpp.
    """
    slide = ctx.require_slide()
    if mpp is not None and magnification is not None:
        raise ToolError("give either mpp or magnification, not both")
    box = _check_box(slide, x, y, w, h)
    if mpp is None and magnification is None:
        return _result(ctx, slide, _read_at(ctx, slide, box, None), "view_region", box)
    target = float(mpp) if mpp is not None else mag_to_mpp(float(magnification or 1.0))
    base = _require_mpp(
        slide, "view at a given mpp or magnification (call view_region without them, or slide_zoom)"
    )
    if target < base * 0.9:
        raise ToolError(
            f"{target:.3f} µm/px (≈{_fmt_mag(target)}) is finer than the slide's scan "
            f"resolution of {base:.3f} µm/px (≈{_fmt_mag(base)}); ask for mpp ≥ {base:.3f} "
            f"or magnification ≤ {mpp_to_mag(base):.0f}"
        )
    target = max(target, base)
    sw, sh = _size(slide)
    shown = box.intersect(Box(0, 0, sw, sh)) or box
    scale = base / target
    out_w, out_h = shown.w * scale, shown.h * scale
    if max(out_w, out_h) > ctx.max_side + 0.5:
        side = int(ctx.max_side / scale)
        coarser = base * max(shown.w, shown.h) / ctx.max_side
        raise ToolError(
            f"at {target:.3f} µm/px a {shown.w} x {shown.h} region would be "
            f"{out_w:.0f} x {out_h:.0f} px, more than the {ctx.max_side} px limit; choose "
            f"a box at most {side} x {side} level-0 pixels, or a coarser resolution "
            f"(mpp ≥ {coarser:.3f}, magnification ≤ {mpp_to_mag(coarser):.1f}x)"
        )
    view = _read_at(ctx, slide, box, target)
    return _result(ctx, slide, view, "view_region", box, requested_mpp=target)


_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@tool
def pan(
    ctx: ToolContext,
    direction: Literal["left", "right", "up", "down"],
    fraction: Annotated[float, Field(gt=0, le=1)] = 0.5,
) -> ToolResult:
    """Move the last viewed region left, right, up or down, keeping its size and resolution.

    Args:
        direction: Which way to move.
        fraction: How far, as a fraction of the region's width (left/right) or height (up/down).
    """
    slide = ctx.require_slide()
    last = ctx.last_view
    if not last:
        raise ToolError(
            "there is no previous view to pan from; look at a region first "
            "(slide_zoom or view_region)"
        )
    box: Box = last["box"]
    sw, sh = _size(slide)
    dx, dy = _DIRECTIONS[direction]
    nx = min(max(box.x + dx * round(fraction * box.w), 0), max(0, sw - box.w))
    ny = min(max(box.y + dy * round(fraction * box.h), 0), max(0, sh - box.h))
    if (nx, ny) == (box.x, box.y):
        raise ToolError(
            f"the view is already at the {direction} edge of the slide "
            f"({sw} x {sh} level-0 pixels); pan another way or zoom elsewhere"
        )
    new = Box(nx, ny, box.w, box.h)
    view = _read_at(ctx, slide, new, last.get("requested_mpp"))
    moved = abs(nx - box.x) + abs(ny - box.y)
    return _result(
        ctx,
        slide,
        view,
        "pan",
        new,
        requested_mpp=last.get("requested_mpp"),
        prefix=f"Panned {direction} by {moved} level-0 pixels. ",
    )


@tool
def overview(ctx: ToolContext) -> ToolResult:
    """Show the whole slide at low magnification (the image size limit on its long side)."""
    slide = ctx.require_slide()
    view = _call(slide, slide.thumbnail, max_side=ctx.max_side, guides=ctx.guides)
    return _result(ctx, slide, view, "overview", None, prefix="Overview of the whole slide. ")


@tool
def measure(x1: int, y1: int, x2: int, y2: int, ctx: ToolContext) -> ToolResult:
    """Measure the straight-line distance between two points, in microns.

    Args:
        x1: x of the first point, level-0 pixels.
        y1: y of the first point, level-0 pixels.
        x2: x of the second point, level-0 pixels.
        y2: y of the second point, level-0 pixels.
    """
    slide = ctx.require_slide()
    mpp = _require_mpp(slide, "measure distances in microns")
    sw, sh = _size(slide)
    for name, (px, py) in (("first", (x1, y1)), ("second", (x2, y2))):
        if not (0 <= px <= sw and 0 <= py <= sh):
            raise ToolError(
                f"the {name} point ({px},{py}) is outside the slide, which is "
                f"{sw} x {sh} level-0 pixels"
            )
    pixels = math.hypot(x2 - x1, y2 - y1)
    um = pixels * mpp
    text = (
        f"Distance from ({x1},{y1}) to ({x2},{y2}): {pixels:.1f} level-0 pixels = {um:.1f} µm "
        f"({um / 1000:.3f} mm) at {mpp:.4f} µm/px{_mpp_note(slide)}."
    )
    return ToolResult(text=text, data={"pixels": pixels, "um": um, "mm": um / 1000, "mpp": mpp})


@tool
def measure_area(x: int, y: int, w: int, h: int, ctx: ToolContext) -> ToolResult:
    """Measure the area of a rectangular region in µm² and mm².

    Args:
        x: Left edge, level-0 pixels.
        y: Top edge, level-0 pixels.
        w: Width, level-0 pixels.
        h: Height, level-0 pixels.
    """
    slide = ctx.require_slide()
    mpp = _require_mpp(slide, "measure areas in µm²")
    requested = _check_box(slide, x, y, w, h)
    sw, sh = _size(slide)
    box = requested.intersect(Box(0, 0, sw, sh)) or requested
    um2 = box.area * mpp * mpp
    mm2 = um2 / 1e6
    text = (
        f"Area of the region with top-left corner at ({box.x},{box.y}) and size {box.w}×{box.h} "
        f"pixels: {box.w * mpp:.1f} × {box.h * mpp:.1f} µm = {um2:,.0f} µm² ({mm2:.4f} mm²) at "
        f"{mpp:.4f} µm/px{_mpp_note(slide)}."
    )
    if box != requested:
        text += (
            f" The requested box ({x},{y},{w},{h}) extended past the slide edge; only the part "
            "inside the slide was measured."
        )
    return ToolResult(
        text=text,
        data={
            "box": list(box.as_tuple()),
            "um2": um2,
            "mm2": mm2,
            "width_um": box.w * mpp,
            "height_um": box.h * mpp,
            "mpp": mpp,
            "clamped": box != requested,
        },
    )


TOOLS = [slide_zoom, view_region, pan, overview, measure, measure_area]

__all__ = [
    "TOOLS",
    "mag_to_mpp",
    "measure",
    "measure_area",
    "mpp_to_mag",
    "overview",
    "pan",
    "slide_zoom",
    "view_region",
]
