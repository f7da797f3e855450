"""Tools for multi-image questions (MedFrameQA): view one image, crop and zoom into part of one,
and view two side by side.

Images are numbered from 1, as the model sees them ("Image 1", "Image 2"...). Coordinates are the
image's own pixels, origin top left. The agent loop offers these tools instead of the slide tools
when a sample has several images (``ctx.imageset`` is the sample's :class:`ImageSet`).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from slidescout.core.types import Box, View
from slidescout.errors import ToolError
from slidescout.tools.base import ToolImage, ToolResult, tool
from slidescout.tools.context import ToolContext

_LABEL_H = 22  # height of the caption strip above each image of a comparison
_GAP = 8


def _imageset(ctx: ToolContext) -> Any:
    if ctx.imageset is None:
        raise ToolError(
            "this question is about a single slide, not a set of images; use the slide tools"
        )
    return ctx.imageset


def _size(imageset: Any, index: int) -> tuple[int, int]:
    img = imageset.get(index)  # SlideError (-> ToolError) naming the valid range
    w, h = img.dimensions
    return int(w), int(h)


def _image(view: View, index: int, label: str) -> ToolImage:
    return ToolImage(
        image=view.image,
        box=view.box,
        level=view.level,
        mpp=None,
        label=label,
        source=f"image:{index}",
    )


def _shown(view: View) -> str:
    return f"shown at {view.width} x {view.height} px"


@tool(needs="imageset")
def view_image(index: Annotated[int, Field(ge=1)], ctx: ToolContext) -> ToolResult:
    """Show one image of the set on its own, as large as the image size limit allows.

    Args:
        index: Which image, numbered from 1.
    """
    imageset = _imageset(ctx)
    w, h = _size(imageset, index)
    view = imageset.view(index, ctx.max_side, guides=ctx.guides)
    text = f"Image {index} of {len(imageset)}: {w} x {h} px, {_shown(view)}."
    if ctx.guides:
        text += (
            " The grid lines are labelled with this image's pixel coordinates (use them to crop)."
        )
    return ToolResult(
        text=text,
        images=[_image(view, index, f"image {index}")],
        data={
            "index": index,
            "size": [w, h],
            "box": list(view.box.as_tuple()),
            "image_size": [view.width, view.height],
        },
    )


@tool(needs="imageset")
def crop_image(
    index: Annotated[int, Field(ge=1)],
    x: int,
    y: int,
    w: Annotated[int, Field(gt=0)],
    h: Annotated[int, Field(gt=0)],
    ctx: ToolContext,
) -> ToolResult:
    """Crop a rectangle of one image and zoom into it (never enlarged beyond the original pixels).

    Args:
        index: Which image, numbered from 1.
        x: Left edge of the rectangle, in that image's pixels (origin top left).
        y: Top edge of the rectangle, in that image's pixels.
        w: Width of the rectangle, in pixels.
        h: Height of the rectangle, in pixels.
    """
    imageset = _imageset(ctx)
    iw, ih = _size(imageset, index)
    requested = Box(x, y, w, h)
    box = requested.intersect(Box(0, 0, iw, ih))
    if box is None:
        raise ToolError(
            f"the rectangle ({x},{y},{w},{h}) lies outside image {index}, which is {iw} x {ih} px "
            f"(x from 0 to {iw - 1}, y from 0 to {ih - 1}); choose a rectangle that overlaps it"
        )
    view = imageset.view(index, ctx.max_side, box=box, guides=ctx.guides)
    text = (
        f"Image {index}, the region with top-left corner at ({box.x},{box.y}) and size {box.w} x {box.h} px "
        f"of {iw} x {ih}, {_shown(view)}."
    )
    if box != requested:
        text += f" The requested rectangle ({x},{y},{w},{h}) extended past the image edge and was clamped."
    if view.width >= box.w and view.height >= box.h:
        text += " This is the image's full resolution; cropping smaller will not show more detail."
    return ToolResult(
        text=text,
        images=[_image(view, index, f"image {index} crop")],
        data={
            "index": index,
            "box": list(box.as_tuple()),
            "requested": list(requested.as_tuple()),
            "clamped": box != requested,
            "image_size": [view.width, view.height],
        },
    )


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str]) -> np.ndarray:
    """Two RGB images next to each other on white, each with a caption strip above it."""
    height = max(left.shape[0], right.shape[0])
    width = left.shape[1] + _GAP + right.shape[1]
    canvas = Image.new("RGB", (width, height + _LABEL_H), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for arr, label in zip((left, right), labels, strict=True):
        canvas.paste(Image.fromarray(np.ascontiguousarray(arr)), (x, _LABEL_H))
        draw.text((x + 4, 4), label, fill=(0, 0, 0))
        x += arr.shape[1] + _GAP
    return np.asarray(canvas)


@tool(needs="imageset")
def compare_images(
    a: Annotated[int, Field(ge=1)], b: Annotated[int, Field(ge=1)], ctx: ToolContext
) -> ToolResult:
    """Show two images of the set side by side, to compare them.

    Args:
        a: The first image, numbered from 1 (shown on the left).
        b: The second image, numbered from 1 (shown on the right).
    """
    imageset = _imageset(ctx)
    if a == b:
        raise ToolError(
            f"compare two different images (both were {a}); use view_image to see one image"
        )
    sizes = {i: _size(imageset, i) for i in (a, b)}
    cell = max(64, (ctx.max_side - _GAP) // 2)
    left = imageset.view(a, cell)
    right = imageset.view(b, cell)
    arr = side_by_side(left.image, right.image, (f"Image {a}", f"Image {b}"))
    text = (
        f"Image {a} ({sizes[a][0]} x {sizes[a][1]} px, left) and image {b} ({sizes[b][0]} x {sizes[b][1]} px, "
        f"right) side by side, each shown at most {cell} px wide."
    )
    img = ToolImage(image=arr, label=f"images {a} and {b}", source=f"image:{a}")
    return ToolResult(
        text=text, images=[img], data={"images": [a, b], "image_size": [arr.shape[1], arr.shape[0]]}
    )


TOOLS = [view_image, crop_image, compare_images]


__all__ = ["TOOLS", "compare_images", "crop_image", "side_by_side", "view_image"]
