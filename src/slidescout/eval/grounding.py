"""Trace scores and grounding: what the agent looked at, at which resolution, and whether that was
where the lesions are.

Every image a model saw is recorded with its level-0 box and output mpp (``ImageRef``), so a trace
says exactly which part of the slide was seen at which resolution. From that:

- :func:`trace_scores`: steps, images sent, views, tokens, cost, model latency, and the area of
  the slide (and of its tissue) seen per magnification bucket.
- :func:`grounding`: for samples with ground-truth regions (SynthPath), whether and at which step
  each lesion was seen at sufficient resolution (a view whose box overlaps the lesion and whose
  mpp is at most ``max_mpp``), and the fraction of the agent's views that touched a lesion.

Steps are numbered as ``slidescout trace show`` numbers them: a view returned by a tool called in
model call *k* (1-based) is at step *k*; the overview shown before the first call is step 0.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from slidescout.core.trace import ImageEvent, ToolEvent, Trace
from slidescout.slides.tissue import tissue_mask

__all__ = [
    "DEFAULT_MAX_MPP",
    "MAG_BUCKETS",
    "GroundingScore",
    "LesionHit",
    "TraceScores",
    "View",
    "grounding",
    "mag_bucket",
    "score_trace",
    "trace_scores",
    "trace_views",
]

DEFAULT_MAX_MPP = 1.0  # µm/px: 10x or finer counts as "seen at sufficient resolution"
DEFAULT_MIN_OVERLAP = 0.1  # of the smaller of (lesion box, view box)

# name, upper mpp bound (bounds at the geometric means of 40x=0.25, 20x=0.5, 10x=1, 5x=2)
MAG_BUCKETS: tuple[tuple[str, float], ...] = (
    ("40x", 0.354),
    ("20x", 0.707),
    ("10x", 1.414),
    ("5x", 2.83),
    ("<5x", math.inf),
)

_WHOLE_SLIDE_PURPOSES = ("overview", "thumbnail")


def mag_bucket(mpp: float | None) -> str:
    """The magnification bucket of an output resolution (``"unknown"`` when mpp is unknown)."""
    if mpp is None or not mpp > 0:
        return "unknown"
    for name, upper in MAG_BUCKETS:
        if mpp <= upper:
            return name
    return MAG_BUCKETS[-1][0]


@dataclass
class View:
    """One image the model saw, where it came from on the slide, and when."""

    index: int  # order among the trace's images (0-based)
    step: int  # 0: the overview before the first call; k: returned by a tool in model call k
    box: tuple[int, int, int, int] | None
    mpp: float | None  # output microns per pixel (computed from the slide's mpp if not recorded)
    width: int
    height: int
    kind: str  # overview | thumbnail | patch | tool name
    sha256: str = ""
    source: str | None = None

    @property
    def whole_slide(self) -> bool:
        return self.kind in _WHOLE_SLIDE_PURPOSES


def trace_views(trace: Trace) -> list[View]:
    """Every image of the trace with a level-0 box, in the order the model saw them."""
    slide_mpp = trace.slide.mpp
    out: list[View] = []
    n = 0
    for ev in trace.events:
        kind: str
        if isinstance(ev, ImageEvent):
            refs, kind = [ev.image], ev.purpose
            step = 0 if ev.purpose in _WHOLE_SLIDE_PURPOSES else (ev.step or 0) + 1
        elif isinstance(ev, ToolEvent):
            refs, kind, step = ev.images, ev.call.name, (ev.step or 0) + 1
        else:
            continue
        for ref in refs:
            mpp = ref.mpp
            if mpp is None and slide_mpp and ref.box and ref.width:
                mpp = slide_mpp * ref.box[2] / ref.width
            out.append(
                View(
                    index=n,
                    step=step,
                    box=ref.box,
                    mpp=mpp,
                    width=ref.width,
                    height=ref.height,
                    kind=kind,
                    sha256=ref.sha256,
                    source=ref.source,
                )
            )
            n += 1
    return out


# ---- trace scores ---------------------------------------------------------------------------


class TraceScores(BaseModel):
    n_steps: int = 0  # model calls
    n_images: int = 0  # images shown to the model (overview included)
    n_views: int = 0  # images of a part of the slide returned by tools (or patches)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    model_latency_s: float = 0.0  # sum over model calls
    tool_s: float = 0.0  # sum over tool calls
    viewed_mm2: dict[str, float] = Field(
        default_factory=dict
    )  # slide area seen, per magnification bucket
    tissue_mm2: dict[str, float] = Field(
        default_factory=dict
    )  # tissue area seen, per bucket (needs the overview)
    finest_mpp: float | None = None


_MASK_SIDE = 512  # long side of the tissue grid (cells of ~200 level-0 px on a 100k px slide)
_MASKS: dict[
    str, np.ndarray
] = {}  # overview sha256 -> tissue mask (the same overview recurs across repeats)
_MASKS_LOCK = threading.Lock()


def _tissue_grid(blobs: Any, sha: str) -> np.ndarray:
    with _MASKS_LOCK:
        hit = _MASKS.get(sha)
    if hit is not None:
        return hit
    from PIL import Image

    with Image.open(io.BytesIO(blobs.get(sha))) as im:
        scale = min(1.0, _MASK_SIDE / max(im.size))
        if scale < 1.0:  # JPEG: decode at a reduced DCT scale, much cheaper than full size
            im.draft(
                "RGB",
                (max(1, math.ceil(im.size[0] * scale)), max(1, math.ceil(im.size[1] * scale))),
            )
        rgb = im.convert("RGB")
        if max(rgb.size) > _MASK_SIDE:
            rgb.thumbnail((_MASK_SIDE, _MASK_SIDE))
        mask = tissue_mask(np.asarray(rgb))
    with _MASKS_LOCK:
        if len(_MASKS) > 256:
            _MASKS.clear()
        _MASKS[sha] = mask
    return mask


def _overview_grid(
    views: list[View], blobs: Any
) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
    """The tissue mask of the whole-slide image the model was shown, and the box it covers."""
    if blobs is None:
        return None, None
    for v in views:
        if v.whole_slide and v.box and v.sha256:
            try:
                return _tissue_grid(blobs, v.sha256), v.box
            except Exception:  # a missing or unreadable blob: no tissue estimate
                return None, None
    return None, None


def _rasterise(
    box: tuple[int, int, int, int], frame: tuple[int, int, int, int], shape: tuple[int, int]
) -> tuple[slice, slice] | None:
    fx, fy, fw, fh = frame
    gh, gw = shape
    x, y, w, h = box
    c0 = int(math.floor((x - fx) / fw * gw))
    c1 = int(math.ceil((x + w - fx) / fw * gw))
    r0 = int(math.floor((y - fy) / fh * gh))
    r1 = int(math.ceil((y + h - fy) / fh * gh))
    c0, c1, r0, r1 = max(0, c0), min(gw, c1), max(0, r0), min(gh, r1)
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _slide_frame(trace: Trace, views: list[View]) -> tuple[int, int, int, int] | None:
    if trace.slide.width and trace.slide.height:
        return (0, 0, int(trace.slide.width), int(trace.slide.height))
    boxes = [v.box for v in views if v.box]
    if not boxes:
        return None
    x2 = max(b[0] + b[2] for b in boxes)
    y2 = max(b[1] + b[3] for b in boxes)
    return (0, 0, x2, y2)


def trace_scores(trace: Trace, blobs: Any = None, *, grid: int = 1024) -> TraceScores:
    """Steps, images, tokens, cost, latency, and area seen per magnification of one trace.

    Area is the union of the boxes seen in each bucket (on a grid of ``grid`` cells along the long
    side), in mm² when the slide's mpp is known. ``tissue_mm2`` counts only tissue, detected on the
    overview image the model was shown (read from ``blobs``, the run's blob store).
    """
    views = trace_views(trace)
    calls = trace.model_calls
    out = TraceScores(
        n_steps=len(calls),
        n_images=len(views) if views else len(trace.images()),
        n_views=sum(1 for v in views if not v.whole_slide),
        input_tokens=trace.usage.input_tokens,
        output_tokens=trace.usage.output_tokens,
        cost_usd=trace.usage.cost_usd,
        model_latency_s=round(sum(c.latency_s for c in calls), 3),
        tool_s=round(sum(e.duration_s for e in trace.tool_events), 3),
    )
    mpps = [v.mpp for v in views if v.mpp]
    out.finest_mpp = round(min(mpps), 4) if mpps else None
    frame = _slide_frame(trace, views)
    slide_mpp = trace.slide.mpp
    if frame is None or trace.slide.kind == "imageset" or not slide_mpp:
        return out  # areas need the slide's mpp
    tissue, tissue_frame = _overview_grid(views, blobs)
    if tissue is not None and tissue_frame is not None:
        shape, frame = tissue.shape, tissue_frame
    else:
        long_side = max(frame[2], frame[3])
        shape = (
            max(1, round(grid * frame[3] / long_side)),
            max(1, round(grid * frame[2] / long_side)),
        )
    cell_mm2 = (frame[2] / shape[1]) * (frame[3] / shape[0]) * slide_mpp**2 / 1e6
    masks: dict[str, np.ndarray] = {}
    for v in views:
        if v.whole_slide or not v.box:
            continue
        sl = _rasterise(v.box, frame, shape)
        if sl is None:
            continue
        m = masks.setdefault(mag_bucket(v.mpp), np.zeros(shape, dtype=bool))
        m[sl] = True
    order = [name for name, _ in MAG_BUCKETS] + ["unknown"]
    for name in order:
        if name not in masks:
            continue
        out.viewed_mm2[name] = round(float(masks[name].sum()) * cell_mm2, 4)
        if tissue is not None:
            out.tissue_mm2[name] = round(float((masks[name] & tissue).sum()) * cell_mm2, 4)
    return out


# ---- grounding ------------------------------------------------------------------------------


class LesionHit(BaseModel):
    id: str
    label: str
    box: tuple[int, int, int, int]
    seen: bool = False  # seen at sufficient resolution
    first_step: int | None = None  # step of the first sufficient view
    first_view: int | None = None  # index of that view among the trace's images
    best_mpp: float | None = None  # finest resolution of any view touching it
    n_views: int = 0  # sufficient views touching it
    touched: bool = False  # touched by any view at any resolution (overview excluded)


class GroundingScore(BaseModel):
    max_mpp: float = DEFAULT_MAX_MPP
    n_lesions: int = 0
    n_seen: int = 0
    fraction_seen: float | None = None  # of lesions seen at sufficient resolution
    first_step: int | None = None  # step at which the first lesion was seen
    n_views: int = 0  # views of part of the slide (overview and thumbnails excluded)
    n_views_on_lesion: int = 0
    fraction_views_on_lesion: float | None = None
    answer_lesion_seen: bool | None = (
        None  # a lesion of the true answer's class was seen (when it has one)
    )
    lesions: list[LesionHit] = Field(default_factory=list)


def _overlap(a: Sequence[int], b: Sequence[int]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return float(max(0, x2 - x1) * max(0, y2 - y1))


def _touches(view_box: Sequence[int], lesion_box: Sequence[int], min_overlap: float) -> bool:
    inter = _overlap(view_box, lesion_box)
    if inter <= 0:
        return False
    smaller = min(view_box[2] * view_box[3], lesion_box[2] * lesion_box[3])
    return inter >= min_overlap * max(1.0, float(smaller))


def _regions(trace: Trace, regions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if regions is not None:
        return regions
    return list(trace.truth.regions) if trace.truth else []


def _box4(values: Any) -> tuple[int, int, int, int]:
    """A region's ``[x, y, w, h]`` as four ints."""
    x, y, w, h = (int(v) for v in values)
    return x, y, w, h


def grounding(
    trace: Trace,
    regions: list[dict[str, Any]] | None = None,
    *,
    max_mpp: float = DEFAULT_MAX_MPP,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    answer_label: str | None = None,
) -> GroundingScore | None:
    """Which lesions the agent saw at sufficient resolution, and when. None without regions.

    Args:
        trace: the sample's trace.
        regions: ``[{"id", "label", "box": [x, y, w, h]}]`` in level-0 pixels; default the trace's
            ``truth.regions``.
        max_mpp: a view counts when its output mpp is at most this (1.0 µm/px ≈ 10x).
        min_overlap: the overlap must cover this fraction of the smaller of the two boxes.
        answer_label: the true answer's label; ``answer_lesion_seen`` says whether a lesion of that
            class was seen.
    """
    regs = [r for r in _regions(trace, regions) if r.get("box")]
    if not regs:
        return None
    views = [v for v in trace_views(trace) if v.box and not v.whole_slide]
    hits = [
        LesionHit(
            id=str(r.get("id") or f"lesion{i + 1}"),
            label=str(r.get("label") or r.get("class") or ""),
            box=_box4(r["box"]),
        )
        for i, r in enumerate(regs)
    ]
    on_lesion = 0
    for v in views:
        touched_any = False
        for hit in hits:
            if not _touches(v.box, hit.box, min_overlap):  # type: ignore[arg-type]
                continue
            touched_any = True
            hit.touched = True
            if v.mpp is not None and (hit.best_mpp is None or v.mpp < hit.best_mpp):
                hit.best_mpp = round(v.mpp, 4)
            if v.mpp is not None and v.mpp <= max_mpp:
                hit.n_views += 1
                if not hit.seen:
                    hit.seen, hit.first_step, hit.first_view = True, v.step, v.index
        on_lesion += touched_any
    seen = [h for h in hits if h.seen]
    out = GroundingScore(
        max_mpp=max_mpp,
        n_lesions=len(hits),
        n_seen=len(seen),
        fraction_seen=len(seen) / len(hits),
        first_step=min((h.first_step for h in seen if h.first_step is not None), default=None),
        n_views=len(views),
        n_views_on_lesion=on_lesion,
        fraction_views_on_lesion=on_lesion / len(views) if views else None,
        lesions=hits,
    )
    if answer_label:
        matching = [h for h in hits if _same_class(h.label, answer_label)]
        out.answer_lesion_seen = any(h.seen for h in matching) if matching else None
    return out


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if len(w) >= 4]


def _same_class(lesion: str, answer: str) -> bool:
    """A lesion class names the answer: ``tumor`` / "Carcinoma (tumor)", ``lymphocytes`` /
    "Dense lymphocytic infiltrate" (a shared word, or a shared stem of 6 letters)."""
    a, b = _words(lesion), _words(answer)
    if not a or not b:
        return lesion.strip().lower() == answer.strip().lower()
    return any(x == y or (len(x) >= 6 and len(y) >= 6 and x[:6] == y[:6]) for x in a for y in b)


def score_trace(
    trace: Trace,
    blobs: Any = None,
    *,
    regions: list[dict[str, Any]] | None = None,
    max_mpp: float = DEFAULT_MAX_MPP,
    answer_label: str | None = None,
) -> dict[str, Any]:
    """The extra fields a result record gets: trace scores, and ``grounding`` when there are regions."""
    ts = trace_scores(trace, blobs)
    out: dict[str, Any] = {
        "n_images": ts.n_images,
        "n_views": ts.n_views,
        "model_latency_s": ts.model_latency_s,
        "tool_s": ts.tool_s,
        "finest_mpp": ts.finest_mpp,
        "viewed_mm2": ts.viewed_mm2,
    }
    if ts.tissue_mm2:
        out["tissue_mm2"] = ts.tissue_mm2
    g = grounding(trace, regions, max_mpp=max_mpp, answer_label=answer_label)
    if g is not None:
        out["grounding"] = g.model_dump(mode="json")
    return out
