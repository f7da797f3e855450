"""Tools that run registered deep models beyond patch classifiers: ``segment`` (mask and nuclei
instance models) and ``zero_shot`` (CLIP / SigLIP models asked about labels in words).

Importing this module never imports torch; models load on the first call, once per device.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread

from slidescout.core.types import Box
from slidescout.errors import ConfigError, ToolError
from slidescout.tools.base import ToolImage, ToolResult, tool
from slidescout.tools.context import ToolContext
from slidescout.tools.experts.tools import (
    MODEL_TOOL_TIMEOUT_S,
    PATCH_MIN_TISSUE,
    _clamp_note,
    _expert_card,
    _region,
)

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
        raise ToolError(
            f"this slide's resolution is unknown, and model {card.name!r} needs patches at "
            f"{card.card.mpp:g} µm/px; it cannot be run on this slide"
        )


# ---------------------------------------------------------------------------------------------
# segment
# ---------------------------------------------------------------------------------------------
def _segment(slide: Any, card: Any, box: Box, device: str, max_side: int, cancel: Any) -> Any:
    from slidescout.tools.experts.segment import run_segmentation

    seg = run_segmentation(
        slide,
        card,
        box,
        device=device,
        max_side=SEGMENT_MAX_SIDE,
        min_tissue=PATCH_MIN_TISSUE / 2,
        cancel=cancel,
    )
    return seg, seg.overlay(max_side)


@tool(timeout_s=MODEL_TOOL_TIMEOUT_S)
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
    if c.kind.tool != "segment":
        raise ToolError(
            f"model {card.name!r} is a {c.output} model, not a segmentation model; use "
            f"{c.kind.tool} for it"
        )
    _needs_mpp(slide, card)
    device, limiter = _device(ctx)
    call = functools.partial(_segment, slide, card, box, device, ctx.max_side, ctx.cancel_event)
    try:
        seg, over = await anyio.to_thread.run_sync(call, limiter=limiter)
    except ConfigError as exc:
        raise ToolError(f"expert model {card.name!r} cannot be used: {exc}") from None
    stats = seg.stats.to_dict() if seg.stats else {}
    if not len(seg.plan):
        return ToolResult(
            text=f"Expert {c.describe()}. Region with top-left ({box.x},{box.y}) and size "
            f"{box.w}×{box.h} level-0 px: no patch holds tissue.{_clamp_note(box, clamped)} "
            "No tissue in this region: nothing to segment; choose a region with tissue.",
            data={"model": card.name, "box": list(box.as_tuple()), "patches": 0, "stats": stats},
        )
    summary = seg.summary()
    text = (
        f"Expert {c.describe()}. Region with top-left ({box.x},{box.y}) and size {box.w}×{box.h} level-0 "
        f"px, segmented at {seg.mpp:g} µm/px in {len(seg.plan)} overlapping patches: {seg.describe()}."
        f"{_clamp_note(box, clamped)} Overlay: {over.legend}."
    )
    if seg.notes:
        text += " Note: " + "; ".join(seg.notes) + "."
    data = {
        **summary,
        "patches": len(seg.plan),
        "stats": stats,
        "overlay": {"box": list(over.box.as_tuple()), "mpp": over.mpp, "legend": over.legend},
    }
    img = ToolImage(image=over.image, box=over.box, mpp=over.mpp, label="segmentation overlay")
    return ToolResult(text=text, images=[img], data=data)


# ---------------------------------------------------------------------------------------------
# zero_shot
# ---------------------------------------------------------------------------------------------
def zero_shot_run(
    slide: Any,
    card: Any,
    box: Box | None,
    labels: list[str],
    device: str,
    max_patches: int,
    cancel: Any = None,
    *,
    min_tissue: float = PATCH_MIN_TISSUE,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Any = None,
) -> Any:
    """The region's tissue patches through a zero-shot card: a ``PatchRun`` of label probabilities."""
    from slidescout.tools.experts.pool import model_pool
    from slidescout.tools.experts.runtime import run_patches

    base: Any = model_pool().get(card, device)  # a ZeroShotRunner
    c = card.card
    return run_patches(
        slide,
        base.classifier(labels),
        box,
        mpp=c.mpp,
        patch_size=c.patch_size,
        min_tissue=min_tissue,
        max_patches=max_patches,
        cancel=cancel,
        device=device,
        labels=labels,
        output="probabilities",
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )


def zero_shot_labels(card: Any, labels: list[str] | None) -> list[str]:
    """The labels asked about (stripped, unique), or the card's; ToolError when none or too many."""
    chosen = [s.strip() for s in (labels or []) if s and s.strip()] or list(card.card.labels)
    chosen = list(dict.fromkeys(chosen))
    if len(chosen) < 2:
        raise ToolError(
            f"give at least two labels to choose between (model {card.name!r} has "
            f"{'no default labels' if not card.card.labels else 'default labels ' + ', '.join(card.card.labels)})"
        )
    if len(chosen) > MAX_LABELS:
        raise ToolError(f"at most {MAX_LABELS} labels per call (got {len(chosen)})")
    return chosen


def zero_shot_summary(run: Any) -> tuple[str, dict[str, Any]]:
    mean, wins = run.mean_probs(), run.class_fractions()
    best = max(mean, key=mean.__getitem__)
    text = (
        f"Mean probability over {len(run.plan)} tissue patches: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(mean.items(), key=lambda kv: -kv[1]))
        + ". Share of patches where each label wins: "
        + ", ".join(f"{k} {v:.0%}" for k, v in wins.items())
        + f". Best label: {best}."
    )
    top = run.top(best)
    if top:
        text += (
            f" Highest P({best}): "
            + "; ".join(
                f"{t['value']:.2f} at ({t['box'][0]},{t['box'][1]},{t['box'][2]},{t['box'][3]})"
                for t in top
            )
            + "."
        )
    data = {
        "labels": list(run.labels),
        "probabilities": {k: round(v, 4) for k, v in mean.items()},
        "win_fractions": {k: round(v, 4) for k, v in wins.items()},
        "best": best,
        "top": {"label": best, "patches": top},
    }
    return text, data


def _zero_shot(
    slide: Any,
    card: Any,
    box: Box,
    labels: list[str],
    device: str,
    max_patches: int,
    max_side: int,
    cancel: Any,
) -> tuple[Any, Any]:
    run = zero_shot_run(slide, card, box, labels, device, max_patches, cancel)
    if not len(run.plan):
        return run, None
    best = max(run.mean_probs().items(), key=lambda kv: kv[1])[0]
    return run, run.heatmap(slide, best, max_side=max_side)


@tool(timeout_s=MODEL_TOOL_TIMEOUT_S)
async def zero_shot(
    x: int, y: int, w: int, h: int, labels: list[str], model: str, ctx: ToolContext
) -> ToolResult:
    """Ask a registered text-prompted (CLIP-style) pathology model which of several labels fits a
    region: it compares every tissue patch with a sentence per label (e.g. "an H&E image of
    {label}") and returns each label's mean probability, the share of patches each label wins, and
    a heatmap of the best label. Put a question's answer options (short tissue or diagnosis names)
    as the labels.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        labels: Two to twenty short names to choose between, e.g. ["lung adenocarcinoma", "lung squamous cell carcinoma"].
        model: Name of a registered zero-shot model.
    """
    slide = ctx.require_slide()
    box, clamped = _region(slide, x, y, w, h)
    card = _expert_card(model)
    if card.card.kind.tool != "zero_shot":
        raise ToolError(
            f"model {card.name!r} is a {card.card.output} model, not a zero-shot model; use "
            f"{card.card.kind.tool} for it"
        )
    chosen = zero_shot_labels(card, labels)
    _needs_mpp(slide, card)
    device, limiter = _device(ctx)
    max_patches = int(ctx.extras.get("experts.max_patches", ZERO_SHOT_MAX_PATCHES))
    call = functools.partial(
        _zero_shot, slide, card, box, chosen, device, max_patches, ctx.max_side, ctx.cancel_event
    )
    try:
        run, heat = await anyio.to_thread.run_sync(call, limiter=limiter)
    except ConfigError as exc:
        raise ToolError(f"expert model {card.name!r} cannot be used: {exc}") from None
    head = (
        f"Zero-shot {card.card.describe()}, prompts {card.card.prompts}. Region with top-left "
        f"({box.x},{box.y}) and size {box.w}×{box.h} level-0 px: {run.plan.describe()}.{_clamp_note(box, clamped)}"
    )
    data: dict[str, Any] = {
        "model": card.name,
        "box": list(box.as_tuple()),
        "patches": len(run.plan),
        "stats": run.stats.to_dict(),
    }
    if heat is None:
        return ToolResult(
            text=head + " No tissue in this region; choose a region with tissue.",
            data={**data, "labels": chosen},
        )
    body, extra = zero_shot_summary(run)
    data.update(
        extra, heatmap={"box": list(heat.box.as_tuple()), "mpp": heat.mpp, "legend": heat.legend}
    )
    text = f"{head} {body} Heatmap: {heat.legend}."
    img = ToolImage(
        image=heat.image, box=heat.box, level=heat.level, mpp=heat.mpp, label="zero-shot heatmap"
    )
    return ToolResult(text=text, images=[img], data=data)


TOOLS = [segment, zero_shot]

__all__ = [
    "TOOLS",
    "segment",
    "zero_shot",
    "zero_shot_labels",
    "zero_shot_run",
    "zero_shot_summary",
]
