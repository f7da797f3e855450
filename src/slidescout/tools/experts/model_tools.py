"""Tools that run registered deep models beyond patch classifiers: ``segment`` (mask and nuclei
instance models) and ``zero_shot`` (CLIP / SigLIP models asked about labels in words).

Importing this module never imports torch; models load on the first call, once per device.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread

from slidescout.errors import ConfigError, ToolError
from slidescout.slides.types import Box
from slidescout.tools.base import ToolImage, ToolResult, tool
from slidescout.tools.context import ToolContext
from slidescout.tools.experts.tools import PATCH_MIN_TISSUE, _clamp_note, _expert_card, _region

SEGMENT_MAX_SIDE = 3072  # canvas px per side at the model's mpp, per call
ZERO_SHOT_MAX_PATCHES = 1000
MAX_LABELS = 20


def _device(ctx: ToolContext) -> tuple[str, Any]:
    from slidescout.tools.experts.loading import device_kind, resolve_device

    try:
        device = resolve_device(ctx.device)
    except ConfigError as exc:
        raise ToolError(str(exc)) from None
    return device, ctx.limiters.get(device_kind(device), ctx.limiter)


def _needs_mpp(slide: Any, card: Any) -> None:
    if not slide.mpp:
        raise ToolError(f"this slide's resolution is unknown, and model {card.name!r} needs patches at "
                        f"{card.card.mpp:g} µm/px; it cannot be run on this slide")


# ---------------------------------------------------------------------------------------------
# segment
# ---------------------------------------------------------------------------------------------
def _segment(slide: Any, card: Any, box: Box, device: str, max_side: int, cancel: Any) -> Any:
    from slidescout.tools.experts.segment import run_segmentation

    seg = run_segmentation(slide, card, box, device=device, max_side=SEGMENT_MAX_SIDE,
                           min_tissue=PATCH_MIN_TISSUE / 2, cancel=cancel)
    return seg, seg.overlay(max_side)


@tool
async def segment(x: int, y: int, w: int, h: int, model: str, ctx: ToolContext) -> ToolResult:
    """Run a registered segmentation model over a region: per-class areas in µm² (tissue-class
    models), or nuclei found one by one with their count, density per mm² and morphometry (area,
    perimeter, eccentricity, solidity; and per-type counts when the model types nuclei). Returns an
    overlay image with a legend. The region is tiled at the model's resolution with overlapping
    patches stitched seamlessly; keep it to about 1-2 mm across.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        model: Name of a registered segmentation model (output mask or instances).
    """
    slide = ctx.require_slide()
    box, clamped = _region(slide, x, y, w, h)
    card = _expert_card(model)
    c = card.card
    if not c.spatial:
        raise ToolError(f"model {card.name!r} is a {c.output} model, not a segmentation model; use "
                        f"{'zero_shot' if c.output == 'zero_shot' else 'patch_classifier'} for it")
    _needs_mpp(slide, card)
    device, limiter = _device(ctx)
    call = functools.partial(_segment, slide, card, box, device, ctx.max_side, ctx.cancel_event)
    try:
        seg, over = await anyio.to_thread.run_sync(call, limiter=limiter)
    except ConfigError as exc:
        raise ToolError(f"expert model {card.name!r} cannot be used: {exc}") from None
    summary = seg.summary()
    stats = seg.stats.to_dict() if seg.stats else {}
    text = (f"Expert {c.describe()}. Region with top-left ({box.x},{box.y}) and size {box.w}×{box.h} level-0 "
            f"px, segmented at {seg.mpp:g} µm/px in {len(seg.plan)} overlapping patches: {seg.describe()}."
            f"{_clamp_note(box, clamped)} Overlay: {over.legend}.")
    if seg.notes:
        text += " Note: " + "; ".join(seg.notes) + "."
    data = {**summary, "patches": len(seg.plan), "stats": stats, "overlay": {
        "box": list(over.box.as_tuple()), "mpp": over.mpp, "legend": over.legend}}
    img = ToolImage(image=over.image, box=over.box, mpp=over.mpp, label="segmentation overlay")
    return ToolResult(text=text, images=[img], data=data)


TOOLS = [segment]

__all__ = ["TOOLS", "segment"]
