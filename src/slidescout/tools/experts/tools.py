"""Built-in expert tools: tissue map, nuclear morphometry, stain summary (no weights needed), and
``patch_classifier``, which runs a registered checkpoint (``slidescout experts add CARD``) over a
region through the torch runtime and returns class fractions and a heatmap.

Importing this module never imports torch: models load on the first ``patch_classifier`` call,
once per device, and are shared by every sample.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from PIL import Image
from pydantic import Field

from slidescout.core.types import Box
from slidescout.errors import ConfigError, ToolError
from slidescout.tools.base import ToolImage, ToolResult, tool
from slidescout.tools.context import ToolContext

NUCLEI_MAX_SIDE = 2048  # analysis image side for nuclei_morphometry
NUCLEI_MPP_RANGE = (0.2, 1.0)
STAIN_SIDE = 1024
DEFAULT_MAX_PATCHES = 2000  # per patch_classifier call; ctx.extras["experts.max_patches"] overrides
PATCH_MIN_TISSUE = 0.1
# a model-backed call may load weights on its first use: a longer limit than the default
MODEL_TOOL_TIMEOUT_S = 600.0
MAX_LISTED_PIECES = 12


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _region(slide: Any, x: int, y: int, w: int, h: int) -> tuple[Box, bool]:
    """The requested box clamped to the slide, and whether it was clamped; ToolError when empty
    or wholly outside."""
    sw, sh = (int(v) for v in slide.dimensions)
    if w <= 0 or h <= 0:
        raise ToolError(
            f"the region must have a positive width and height (got w={w}, h={h}); the "
            f"slide is {sw} x {sh} level-0 pixels"
        )
    box = Box(x, y, w, h)
    inside = box.intersect(Box(0, 0, sw, sh))
    if inside is None:
        raise ToolError(
            f"the region ({x},{y},{w},{h}) lies entirely outside the slide, which is "
            f"{sw} x {sh} level-0 pixels (x from 0 to {sw - 1}, y from 0 to {sh - 1})"
        )
    return inside, inside != box


def _clamp_note(box: Box, clamped: bool) -> str:
    return (
        f" The requested box extended past the slide edge and was clamped to {box}."
        if clamped
        else ""
    )


def _fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` scaled down to ``max_side`` (LANCZOS) and the factor applied (≤ 1)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(w, h))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.LANCZOS)
    ), scale


def _centred_box(box: Box, side: int, slide: Any) -> str:
    sw, sh = (int(v) for v in slide.dimensions)
    cx, cy = box.x + box.w // 2, box.y + box.h // 2
    x0 = min(max(0, cx - side // 2), max(0, sw - side))
    y0 = min(max(0, cy - side // 2), max(0, sh - side))
    return f"({x0},{y0},{min(side, sw)},{min(side, sh)})"


# ---------------------------------------------------------------------------------------------
# tissue_map
# ---------------------------------------------------------------------------------------------
@tool(limiter="cpu")
def tissue_map(ctx: ToolContext) -> ToolResult:
    """Find the tissue on the whole slide: each piece of tissue with its level-0 bounding box and
    area in mm², largest first, and an overview image with the pieces outlined and numbered.
    """
    from slidescout.tools.experts.tissue import find_tissue, overlay

    slide = ctx.require_slide()
    key = ("tissue_map", getattr(slide, "slide_id", id(slide)))
    tmap = ctx.state.get("_experts_cache", {}).get(key)
    if tmap is None:
        tmap = find_tissue(slide)
        ctx.state.setdefault("_experts_cache", {})[key] = tmap
    sw, sh = (int(v) for v in slide.dimensions)
    image, l0_per_px = overlay(tmap, ctx.max_side)
    mpp = tmap.mpp * l0_per_px if tmap.mpp else None
    if not tmap.pieces:
        text = (
            f"No tissue detected on the slide ({sw} x {sh} level-0 pixels): it looks blank or "
            "very faint at overview scale."
        )
    else:
        total = tmap.total_mm2
        area = f"{total:.2f} mm² of tissue, " if total is not None else ""
        text = (
            f"Found {len(tmap.pieces)} tissue piece(s): {area}{tmap.tissue_fraction:.0%} of the slide "
            f"area ({sw} x {sh} level-0 pixels). Largest first:"
        )
        for p in tmap.pieces[:MAX_LISTED_PIECES]:
            b = p.box
            size = f"{p.area_mm2:.2f} mm²" if p.area_mm2 is not None else f"{p.area_px:,.0f} px²"
            text += (
                f"\n{p.index}. box ({b.x},{b.y},{b.w},{b.h}), area {size} ({p.share:.0%} of the "
                f"tissue), centre ({p.centroid[0]},{p.centroid[1]})"
            )
        if len(tmap.pieces) > MAX_LISTED_PIECES:
            text += f"\n... and {len(tmap.pieces) - MAX_LISTED_PIECES} smaller pieces."
        text += "\nThe image shows the tissue outlined in green and the numbered boxes in blue."
    if not tmap.mpp:
        text += " The slide's resolution is unknown, so areas are in level-0 pixels."
    data = {
        "pieces": [p.to_dict() for p in tmap.pieces],
        "tissue_fraction": round(tmap.tissue_fraction, 4),
        "total_mm2": None if tmap.total_mm2 is None else round(tmap.total_mm2, 4),
        "slide_size": [sw, sh],
        "specks_dropped": tmap.dropped,
    }
    img = ToolImage(image=image, box=tmap.thumb.box, mpp=mpp, label="tissue map")
    return ToolResult(text=text, images=[img], data=data)


# ---------------------------------------------------------------------------------------------
# nuclei_morphometry
# ---------------------------------------------------------------------------------------------
@tool(limiter="cpu")
def nuclei_morphometry(
    x: int,
    y: int,
    w: int,
    h: int,
    ctx: ToolContext,
    mpp: Annotated[float, Field(gt=0)] = 0.5,
) -> ToolResult:
    """Segment and measure the nuclei in a region (colour deconvolution, thresholding, watershed):
    count, density per mm² of tissue, mean nuclear area and its variation (CV, a pleomorphism
    measure), shape (eccentricity, solidity), and an image with the nucleus outlines drawn.

    The region is analysed at ``mpp`` µm/px (0.5 ≈ 20x); at most 2048 px per side, so at 0.5 µm/px
    choose a box of at most about 1 mm (4096 level-0 px on a 40x scan).

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        mpp: Analysis resolution in µm per pixel, 0.2 to 1.0 (default 0.5 ≈ 20x).
    """
    from slidescout.tools.experts.nuclei import outline_overlay, segment_nuclei

    slide = ctx.require_slide()
    box, clamped = _region(slide, x, y, w, h)
    lo, hi = NUCLEI_MPP_RANGE
    if not lo <= mpp <= hi:
        raise ToolError(
            f"nuclei need an analysis resolution from {lo} to {hi} µm/px (got mpp={mpp:g}); "
            "use 0.5 (≈20x) unless nuclei are tiny"
        )
    view, note = _nuclei_view(slide, box, mpp)
    ctx.check_cancelled()
    rgb = np.asarray(view.image)
    labels, stats = segment_nuclei(rgb, view.mpp)
    shown, scale = _fit(outline_overlay(rgb, labels), ctx.max_side)
    res = f"{view.mpp:.3g} µm/px" if view.mpp else "level-0 resolution"
    text = (
        f"Nuclei in the region with top-left ({box.x},{box.y}) and size {box.w}×{box.h} level-0 px, "
        f"analysed at {res}: {stats.summary()}{note}{_clamp_note(box, clamped)} The image shows the "
        "nucleus outlines in green."
    )
    data = {
        **stats.to_dict(),
        "box": list(box.as_tuple()),
        "analysis_mpp": view.mpp,
        "level": view.level,
        "analysis_size": [view.width, view.height],
        "clamped": clamped,
    }
    img = ToolImage(
        image=shown,
        box=view.box,
        level=view.level,
        mpp=(view.mpp / scale) if view.mpp else None,
        label="nuclei overlay",
    )
    return ToolResult(text=text, images=[img], data=data)


def _nuclei_view(slide: Any, box: Box, mpp: float) -> tuple[Any, str]:
    """The region read at ``mpp`` (never finer than the scan; level 0 when the resolution is
    unknown), and a note on what changed; too large a region is a ``ToolError`` naming a box
    that fits."""
    base = slide.mpp
    note = ""
    if base:
        used = max(float(mpp), float(base))
        if mpp < base * 0.99:
            note = (
                f" Asked for {mpp:g} µm/px, finer than the scan ({base:.3g} µm/px): analysed at the "
                "scan's resolution."
            )
        out_w, out_h = box.w * base / used, box.h * base / used
        if max(out_w, out_h) > NUCLEI_MAX_SIDE:
            side = int(NUCLEI_MAX_SIDE * used / base)
            raise ToolError(
                f"at {used:g} µm/px the region {box} would be {out_w:.0f} x {out_h:.0f} px; nuclei are "
                f"measured on at most {NUCLEI_MAX_SIDE} px per side: choose a box of at most {side} x "
                f"{side} level-0 pixels (≈{side * base / 1000:.2f} mm), e.g. {_centred_box(box, side, slide)} "
                "around the same centre"
            )
        view = slide.read_mpp(box, used, max_side=NUCLEI_MAX_SIDE)
    else:
        if max(box.w, box.h) > NUCLEI_MAX_SIDE:
            raise ToolError(
                f"this slide's resolution is unknown, so nuclei are measured at level 0 on at "
                f"most {NUCLEI_MAX_SIDE} px per side: choose a box of at most {NUCLEI_MAX_SIDE} x "
                f"{NUCLEI_MAX_SIDE} level-0 pixels, e.g. {_centred_box(box, NUCLEI_MAX_SIDE, slide)}"
            )
        view = slide.read(box, max_side=NUCLEI_MAX_SIDE)
        note = " The slide's resolution is unknown: areas and density cannot be given in µm."
    return view, note


# ---------------------------------------------------------------------------------------------
# stain_summary
# ---------------------------------------------------------------------------------------------
@tool(limiter="cpu")
def stain_summary(x: int, y: int, w: int, h: int, ctx: ToolContext) -> ToolResult:
    """Summarise the staining and colour of a region: haematoxylin and eosin optical densities, the
    H:E balance, mean tissue colour, background brightness, pen/marker ink and very dark areas,
    with notes on stain quality and artefacts.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
    """
    from slidescout.tools.experts.stain import stain_stats

    slide = ctx.require_slide()
    box, clamped = _region(slide, x, y, w, h)
    view = slide.read(box, max_side=STAIN_SIDE)
    stats = stain_stats(np.asarray(view.image))
    res = f" (measured at {view.mpp:.3g} µm/px)" if view.mpp else ""
    text = (
        f"Stain summary of the region with top-left ({box.x},{box.y}) and size {box.w}×{box.h} "
        f"level-0 px{res}: {stats.summary()}{_clamp_note(box, clamped)}"
    )
    data = {
        **stats.to_dict(),
        "box": list(box.as_tuple()),
        "mpp": view.mpp,
        "level": view.level,
        "clamped": clamped,
    }
    return ToolResult(text=text, data=data)


# ---------------------------------------------------------------------------------------------
# patch_classifier
# ---------------------------------------------------------------------------------------------
def _expert_card(model: str) -> Any:
    from slidescout.tools.experts import catalog

    name = (model or "").strip()
    known = catalog.names()
    if name not in known:
        raise ToolError(catalog.unknown_message(name, known))
    try:
        return catalog.get(name)
    except ConfigError as exc:
        raise ToolError(f"expert model {name!r} cannot be used: {exc}") from None


def _classify(
    slide: Any,
    card: Any,
    box: Box,
    label: str | None,
    device: str,
    max_patches: int,
    max_side: int,
    cancel: Any,
) -> tuple[Any, Any]:
    from slidescout.tools.experts.runtime import run_patches

    run = _cached_embeddings(slide, card, box) if card.card.output == "embedding" else None
    if run is None:
        run = run_patches(
            slide,
            card,
            box,
            device=device,
            min_tissue=PATCH_MIN_TISSUE,
            max_patches=max_patches,
            cancel=cancel,
        )
    heat = run.heatmap(slide, label, max_side=max_side) if len(run.plan) else None
    return run, heat


def _cached_embeddings(slide: Any, card: Any, box: Box) -> Any:
    """The region's patches from the slide's cached features of this encoder (``experts embed``
    or an earlier tool call), as a run; None when there are none."""
    from slidescout.tools.experts.features import find_cached
    from slidescout.tools.experts.runtime import PatchRun, RuntimeStats

    fs = find_cached(slide, card)
    if fs is None:
        return None
    plan, keep = fs.plan(slide, box)
    if not len(keep):
        return None
    stats = RuntimeStats(patches=len(keep), batches=0, batch_size=0, workers=0, device="cache")
    return PatchRun(
        plan=plan,
        outputs=fs.features[keep],
        output_kind="embedding",
        labels=[],
        stats=stats,
        model_name=card.name,
        notes=[f"embeddings read from the cached features {fs.path.name} (no model run)"],
    )


def _describe_run(run: Any, label: str | None) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {}
    if run.is_classifier:
        fr, mp = run.class_fractions(), run.mean_probs()
        data.update(
            class_fractions={k: round(v, 4) for k, v in fr.items()},
            mean_probs={k: round(v, 4) for k, v in mp.items()},
        )
        text = (
            "Most probable class per patch: "
            + ", ".join(f"{k} {v:.0%}" for k, v in fr.items())
            + ". Mean probability: "
            + ", ".join(f"{k} {v:.2f}" for k, v in mp.items())
            + "."
        )
        target = label or run.heatmap_label or (run.labels[-1] if len(run.labels) == 2 else None)
        if target:
            top = run.top(target)
            data["top"] = {"label": target, "patches": top}
            text += (
                f" Highest P({target}): "
                + "; ".join(
                    f"{t['value']:.2f} at ({t['box'][0]},{t['box'][1]},{t['box'][2]},{t['box'][3]})"
                    for t in top
                )
                + "."
            )
    elif run.is_scalar:
        i = run.label_index(label) or 0
        v = run.outputs[:, i]
        name = run.labels[i] if run.labels else "score"
        top = run.top(label)
        data.update(
            score={
                "label": name,
                "mean": float(v.mean()),
                "min": float(v.min()),
                "max": float(v.max()),
            },
            top={"label": name, "patches": top},
        )
        text = (
            f"{name}: mean {v.mean():.3g}, min {v.min():.3g}, max {v.max():.3g}; highest at "
            + "; ".join(f"({t['box'][0]},{t['box'][1]},{t['box'][2]},{t['box'][3]})" for t in top)
            + "."
        )
    else:
        data["embedding_dim"] = int(run.outputs.shape[1])
        text = f"Computed a {run.outputs.shape[1]}-value embedding per patch (no classes)."
    return text, data


@tool(timeout_s=MODEL_TOOL_TIMEOUT_S)
async def patch_classifier(
    x: int,
    y: int,
    w: int,
    h: int,
    model: str,
    ctx: ToolContext,
    label: str | None = None,
) -> ToolResult:
    """Run a registered expert model (a patch classifier or scorer) over a region, patch by patch at
    the model's own resolution, and return the share of patches per class and a heatmap of the
    region. Glass is skipped. Large regions are refused: pick a region of interest first.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        model: Name of a registered expert model.
        label: Class whose probability the heatmap shows (default: the model's heatmap class, or a
            colour per most probable class).
    """
    slide = ctx.require_slide()
    box, clamped = _region(slide, x, y, w, h)
    card = _classifier_card(model, label, slide)
    c = card.card
    device, limiter = _device_limiter(ctx)
    max_patches = int(ctx.extras.get("experts.max_patches", DEFAULT_MAX_PATCHES))
    call = functools.partial(
        _classify, slide, card, box, label, device, max_patches, ctx.max_side, ctx.cancel_event
    )
    try:
        run, heat = await anyio.to_thread.run_sync(call, limiter=limiter)
    except ConfigError as exc:
        raise ToolError(f"expert model {card.name!r} cannot be used: {exc}") from None
    head = (
        f"Expert {c.describe()}. Region with top-left ({box.x},{box.y}) and size {box.w}×{box.h} "
        f"level-0 px: {run.plan.describe()}.{_clamp_note(box, clamped)}"
    )
    data: dict[str, Any] = {
        "model": card.name,
        "labels": list(c.labels),
        "output": c.output,
        "box": list(box.as_tuple()),
        "patches": len(run.plan),
        "patch_box_side": round(run.plan.patch_l0),
        "stats": run.stats.to_dict(),
    }
    if not len(run.plan):
        return ToolResult(
            text=head + " No tissue in this region: nothing to classify; choose a region "
            "with tissue.",
            data=data,
        )
    body, extra = _describe_run(run, label)
    data.update(extra)
    if run.notes:
        body += " Note: " + "; ".join(run.notes) + "."
    data["heatmap"] = {"box": list(heat.box.as_tuple()), "mpp": heat.mpp, "legend": heat.legend}
    data.update(_grid_data(run, label))
    text = f"{head} {body} Heatmap: {heat.legend}. ({run.stats.describe()}.)"
    img = ToolImage(image=heat.image, box=heat.box, level=heat.level, mpp=heat.mpp, label="heatmap")
    return ToolResult(text=text, images=[img], data=data)


def _classifier_card(model: str, label: str | None, slide: Any) -> Any:
    """The card of a patch-classifier ``model`` that has ``label`` and can run on ``slide``."""
    card = _expert_card(model)
    c = card.card
    if c.kind.tool != "patch_classifier":
        raise ToolError(
            f"model {card.name!r} has output {c.output!r}; use the {c.kind.tool} tool for it"
        )
    if label is not None and label not in c.labels:
        raise ToolError(
            f"model {card.name!r} has no label {label!r}; its labels are "
            f"{', '.join(c.labels) or 'none (it returns embeddings)'}"
        )
    if not slide.mpp:
        raise ToolError(
            f"this slide's resolution is unknown, and model {card.name!r} needs patches at "
            f"{c.mpp:g} µm/px; it cannot be run on this slide"
        )
    return card


def _device_limiter(ctx: ToolContext) -> tuple[str, anyio.CapacityLimiter | None]:
    """The device expert models run on, and the limiter for that kind of device."""
    from slidescout.tools.experts.loading import device_kind, resolve_device

    try:
        device = resolve_device(ctx.device)
    except ConfigError as exc:
        raise ToolError(str(exc)) from None
    return device, ctx.limiters.get(device_kind(device), ctx.limiter)


def _grid_data(run: Any, label: str | None) -> dict[str, Any]:
    """The per-patch values as a grid (scores or one class's probability), when small enough."""
    scalar = run.is_scalar or (run.is_classifier and (label or run.heatmap_label))
    if not scalar or run.plan.rows * run.plan.cols > 4096:
        return {}
    return {
        "grid": [
            [None if np.isnan(v) else round(float(v), 3) for v in row] for row in run.grid(label)
        ],
        "grid_origin": [round(v, 1) for v in run.plan.origin],
        "grid_step": round(run.plan.stride_l0, 2),
    }


TOOLS = [tissue_map, nuclei_morphometry, stain_summary, patch_classifier]

__all__ = ["TOOLS", "nuclei_morphometry", "patch_classifier", "stain_summary", "tissue_map"]
