"""Segmentation over a whole slide (or any region larger than one call covers), in tiles.

The region is cut into *cores* of at most ``MAX_SIDE - 2 * margin`` px at the model's mpp; each
core is segmented with a ``margin`` of context on every side (the same overlapping-patch
stitching as one region), and an instance is kept by the tile whose core holds its centroid, so
a nucleus on a core border is counted once and drawn whole. Cores without tissue (on a tissue
mask of the slide's thumbnail) are skipped. Instances stream out as GeoJSON features; the summary
adds up counts, areas and per-type counts over the tiles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slidescout.core.types import Box
from slidescout.slides.tissue import tissue_mask
from slidescout.tools.experts import geojson as gj
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.segment import MAX_SIDE, SegRun, run_segmentation

MARGIN_PX = 64  # context around each core at the model's mpp (larger than a nucleus)


@dataclass
class SlideSegmentation:
    """What a tiled run found: totals over the tiles (instances) or areas per class (mask)."""

    card: Card
    region: Box
    tiles: int = 0
    skipped: int = 0
    analysed_mm2: float = 0.0
    count: int = 0
    types: dict[str, int] = field(default_factory=dict)
    areas_um2: dict[str, float] = field(default_factory=dict)
    area_sum_um2: float = 0.0
    features: int = 0
    patches: int = 0
    last: SegRun | None = None

    def summary(self) -> dict[str, Any]:
        c = self.card.card
        out: dict[str, Any] = {
            "model": self.card.name,
            "output": c.output,
            "box": list(self.region.as_tuple()),
            "tiles": self.tiles,
            "tiles_without_tissue": self.skipped,
            "patches": self.patches,
            "analysed_mm2": round(self.analysed_mm2, 6),
            "geojson_features": self.features,
        }
        if c.output == "instances":
            out["count"] = self.count
            out["density_per_mm2"] = (
                round(self.count / self.analysed_mm2, 1) if self.analysed_mm2 > 0 else None
            )
            if self.count:
                out["mean_area_um2"] = round(self.area_sum_um2 / self.count, 2)
            if self.types:
                out["types"] = dict(self.types)
        else:
            out["classes_um2"] = {k: round(v, 1) for k, v in self.areas_um2.items()}
        return out

    def describe(self) -> str:
        s = self.summary()
        head = f"{s['tiles']} tiles ({s['tiles_without_tissue']} without tissue skipped), {s['analysed_mm2']:.3f} mm² analysed"
        if "count" in s:
            text = f"{head}: {s['count']} nuclei ({s['density_per_mm2']} per mm²)"
            if s.get("types"):
                text += "; types: " + ", ".join(f"{k} {v}" for k, v in s["types"].items())
            return text
        return f"{head}: " + ", ".join(
            f"{k} {v / 1e6:.4f} mm²" for k, v in s["classes_um2"].items()
        )


def core_boxes(slide: Any, card: Card, region: Box, margin_px: int = MARGIN_PX) -> list[Box]:
    """Level-0 cores tiling ``region``, each small enough that core + margins fit one call."""
    f = card.card.mpp / float(slide.mpp)  # level-0 px per model px
    side_px = MAX_SIDE - 2 * margin_px - 2 * card.card.patch_size
    step = max(1, int(side_px * f))
    boxes = []
    for y in range(region.y, region.y2, step):
        for x in range(region.x, region.x2, step):
            boxes.append(Box(x, y, min(step, region.x2 - x), min(step, region.y2 - y)))
    return boxes


def _has_tissue(slide: Any, boxes: list[Box]) -> list[bool]:
    thumb = slide.thumbnail(2048)
    mask = tissue_mask(np.asarray(thumb.image)[..., :3])
    vb = thumb.box
    fx, fy = mask.shape[1] / vb.w, mask.shape[0] / vb.h
    out = []
    for b in boxes:
        c0, c1 = int((b.x - vb.x) * fx), int(np.ceil((b.x2 - vb.x) * fx))
        r0, r1 = int((b.y - vb.y) * fy), int(np.ceil((b.y2 - vb.y) * fy))
        out.append(bool(mask[max(0, r0) : max(r0 + 1, r1), max(0, c0) : max(c0 + 1, c1)].any()))
    return out


def segment_slide(
    slide: Any,
    card: Card,
    region: Box | None = None,
    *,
    writer: gj.GeoJSONWriter | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    stain: str | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SlideSegmentation:
    """Segment ``region`` (None: the whole slide) tile by tile; features go to ``writer``."""
    sw, sh = (int(v) for v in slide.dimensions)
    if region is None:
        region = getattr(slide, "bounds", None) or Box(0, 0, sw, sh)
    assert region is not None
    c = card.card
    f = c.mpp / float(slide.mpp)
    margin = int(MARGIN_PX * f)
    cores = core_boxes(slide, card, region)
    tissue = _has_tissue(slide, cores)
    out = SlideSegmentation(card, region)
    todo = sum(tissue)
    for core, has in zip(cores, tissue, strict=True):
        if not has:
            out.skipped += 1
            continue
        tile = Box(core.x - margin, core.y - margin, core.w + 2 * margin, core.h + 2 * margin)
        tile = tile.intersect(Box(0, 0, sw, sh)) or core
        seg = run_segmentation(
            slide,
            card,
            tile,
            device=device,
            batch_size=batch_size,
            workers=workers,
            min_tissue=0.05,
            cancel=cancel,
            stain=stain,
        )
        out.tiles += 1
        out.patches += len(seg.plan)
        out.last = seg
        _add_tile(out, seg, core, writer)
        if progress is not None:
            progress(out.tiles, todo)
    return out


def _add_tile(
    out: SlideSegmentation, seg: SegRun, core: Box, writer: gj.GeoJSONWriter | None
) -> None:
    c = seg.card.card
    f = seg.plan.patch_l0 / seg.plan.patch_size  # level-0 px per model px
    origin = (float(seg.box.x), float(seg.box.y))
    # the core's pixels in this tile's arrays
    c0, c1 = round((core.x - seg.box.x) / f), round((core.x2 - seg.box.x) / f)
    r0, r1 = round((core.y - seg.box.y) / f), round((core.y2 - seg.box.y) / f)
    core_px = (slice(max(0, r0), r1), slice(max(0, c0), c1))
    out.analysed_mm2 += float(seg.covered[core_px].sum()) * seg.mpp**2 / 1e6
    if c.output == "instances":
        t = seg.table
        x0 = origin[0] + (t["x"] + 0.5) * f
        y0 = origin[1] + (t["y"] + 0.5) * f
        keep = (x0 >= core.x) & (x0 < core.x2) & (y0 >= core.y) & (y0 < core.y2)
        out.count += int(keep.sum())
        out.area_sum_um2 += float(t["area_um2"][keep].sum())
        if "type" in t and c.labels:
            counts = np.bincount(t["type"][keep], minlength=len(c.labels))
            for k, lab in enumerate(c.labels):
                out.types[lab] = out.types.get(lab, 0) + int(counts[k])
        if writer is not None and seg.instances is not None:
            out.features += writer.add(
                gj.instance_features(seg.instances, t, origin, f, list(c.labels), keep)
            )
        return
    px = np.bincount(seg.classes[core_px][seg.covered[core_px]].ravel(), minlength=len(c.labels))
    for k, lab in enumerate(c.labels):
        out.areas_um2[lab] = out.areas_um2.get(lab, 0.0) + float(px[k]) * seg.mpp**2
    if writer is not None:
        out.features += writer.add(
            gj.class_features(
                seg.classes, seg.covered, origin, f, list(c.labels), c.background, core_px
            )
        )


__all__ = ["MARGIN_PX", "SlideSegmentation", "core_boxes", "segment_slide"]
