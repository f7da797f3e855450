"""Segmentation experts over a region: tiled inference with overlap, stitching, decoding to
instances, measurements and an overlay.

    run = run_segmentation(slide, load_card("hovernet.yaml"), Box(20000, 14000, 2000, 2000))
    run.summary(), run.overlay().image

Tiling: patches ``patch_size`` px apart by ``card.stride`` (the card's ``overlap`` shared between
neighbours). Each patch's output map covers its centre (all of it when as large as the input); of
the part two neighbours share, each keeps the half nearer its own centre, so the kept cores tile the
region exactly and no patch border shows. Instance maps (HoVer-Net NP/HV, foreground) are stitched
*before* decoding, so a nucleus cut by a patch border is decoded whole; StarDist candidates (local
maxima of the probability, found on each patch's whole map) are kept from each patch's core and
their polygons drawn once over the region.

The canvas is at the model's mpp; its memory is bounded by ``max_side`` (a ``ToolError`` says which
box fits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from slidescout.core.types import Box
from slidescout.errors import ToolError
from slidescout.slides.tissue import tissue_mask
from slidescout.tools.experts import decoders
from slidescout.tools.experts import heatmap as hm
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.runtime import RuntimeStats, run_patches
from slidescout.tools.experts.tiling import PatchPlan, plan_patches

MAX_SIDE = 4096  # canvas px per side at the model's mpp
VIEW_SIDE = 1024  # long side of the overlay and of the tissue estimate


class Stitcher:
    """Pastes each patch's output core into region-wide canvases (see the module docstring)."""

    def __init__(self, plan: PatchPlan, card: Card) -> None:
        c = card.card
        self.plan, self.card = plan, card
        self.kind, self.decoder = c.output, c.decoder
        self.stride = c.stride
        self.shape = (
            (plan.rows - 1) * self.stride + c.patch_size,
            (plan.cols - 1) * self.stride + c.patch_size,
        )
        self.covered = np.zeros(self.shape, bool)
        self.classes = np.zeros(
            self.shape, np.uint8
        )  # mask: class; instances: type (0 without types)
        self.maps = (
            np.zeros((3, *self.shape), np.float32) if self.kind == "instances" else None
        )  # fg, h, v
        self.stars: list[
            tuple[np.ndarray, np.ndarray, np.ndarray]
        ] = []  # stardist: points, probs, rays
        self.ids = (
            np.zeros(self.shape, np.int64)
            if self.decoder == "label_map" and self.kind == "instances"
            else None
        )
        self._next_id = 1
        self.core_start = (
            0  # canvas offset of the first core seam within a patch (set on the first batch)
        )

    def add(self, first: int, y: np.ndarray) -> None:
        p, s = self.card.card.patch_size, self.stride
        out = y.shape[-1]
        off = (p - out) // 2  # a smaller output covers the centre of the input
        ov = out - s
        self.core_start = off + ov // 2
        for j in range(y.shape[0]):
            r, c = (int(v) for v in self.plan.cells[first + j])
            t0 = ov // 2 if r > 0 else 0
            b0 = ov - ov // 2 if r < self.plan.rows - 1 else 0
            l0 = ov // 2 if c > 0 else 0
            r0 = ov - ov // 2 if c < self.plan.cols - 1 else 0
            ys, xs = slice(t0, out - b0), slice(l0, out - r0)
            cy, cx = r * s + off + t0, c * s + off + l0
            dst = (slice(cy, cy + out - b0 - t0), slice(cx, cx + out - r0 - l0))
            if self.decoder == "stardist" and self.kind == "instances":
                pts, pr, d = decoders.stardist_candidates(
                    y[j][0], y[j][1:], ys, xs, threshold=self.card.card.postprocess.threshold
                )
                self.stars.append((pts + (cy, cx), pr, d))
            self._paste(y[j][:, ys, xs], dst)

    def merged_ids(self, window: tuple[int, int, int, int]) -> np.ndarray:
        """label_map: the pasted ids inside ``window`` (y0, y1, x0, x1), merged across the seams."""
        assert self.ids is not None
        y0, y1, x0, x1 = window
        rows = [r * self.stride + self.core_start - y0 for r in range(1, self.plan.rows)]
        cols = [k * self.stride + self.core_start - x0 for k in range(1, self.plan.cols)]
        return decoders.merge_at_seams(self.ids[y0:y1, x0:x1], rows, cols)

    def _paste(self, m: np.ndarray, dst: tuple[slice, slice]) -> None:
        self.covered[dst] = True
        if self.kind == "mask":
            self.classes[dst] = m.argmax(axis=0).astype(np.uint8)
            return
        assert self.maps is not None
        if self.ids is not None:  # instance ids, made unique per patch
            local = np.rint(m[0]).astype(np.int64)
            fg = local > 0
            self.ids[dst] = np.where(fg, local + self._next_id, 0)
            self.maps[0][dst] = fg
            self._next_id += int(local.max()) + 1 if fg.any() else 0
            return
        if self.decoder == "stardist":
            self.maps[0][dst] = m[0]
            return
        self.maps[0][dst] = decoders.softmax(m[:2], axis=0)[1]
        if self.decoder == "hovernet":
            self.maps[1][dst], self.maps[2][dst] = m[2], m[3]
            if m.shape[0] > 4:
                self.classes[dst] = m[4:].argmax(axis=0).astype(np.uint8)


@dataclass
class SegRun:
    """A stitched, decoded segmentation of one region (arrays cropped to the region, model mpp)."""

    card: Card
    plan: PatchPlan
    box: Box  # level-0 box the arrays cover
    mpp: float
    covered: np.ndarray
    classes: np.ndarray  # mask: class per pixel; instances: type per pixel (when typed)
    instances: np.ndarray | None  # int32 labels
    table: dict[str, np.ndarray] = field(default_factory=dict)
    stats: RuntimeStats | None = None
    view: Any = None
    tissue_fraction: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.card.card.labels)

    @property
    def area_mm2(self) -> float:
        return float(self.covered.sum()) * self.mpp**2 / 1e6

    def summary(self) -> dict[str, Any]:
        """Areas (mask) or counts, densities and morphometry (instances), JSON-ready."""
        c = self.card.card
        out: dict[str, Any] = {
            "model": self.card.name,
            "output": c.output,
            "box": list(self.box.as_tuple()),
            "mpp": self.mpp,
            "analysed_mm2": round(self.area_mm2, 6),
            "size_px": [int(self.covered.shape[1]), int(self.covered.shape[0])],
        }
        if self.tissue_fraction is not None:
            out["tissue_mm2"] = round(self.area_mm2 * self.tissue_fraction, 6)
        if c.output == "mask":
            px = np.bincount(self.classes[self.covered].ravel(), minlength=len(c.labels))[
                : len(c.labels)
            ]
            total = max(1, int(self.covered.sum()))
            fg = [i for i, lab in enumerate(c.labels) if lab != c.background]
            fg_px = max(1, int(sum(px[i] for i in fg)))
            out["classes"] = {
                lab: {
                    "area_um2": round(float(px[i]) * self.mpp**2, 1),
                    "fraction": round(float(px[i]) / total, 4),
                    **(
                        {"fraction_of_foreground": round(float(px[i]) / fg_px, 4)}
                        if c.background and i in fg
                        else {}
                    ),
                }
                for i, lab in enumerate(c.labels)
            }
            return out
        t = self.table
        n = int(len(t.get("label", [])))
        out["count"] = n
        out["density_per_mm2"] = round(n / self.area_mm2, 1) if self.area_mm2 > 0 else None
        tissue = out.get("tissue_mm2")
        out["density_per_mm2_tissue"] = round(n / tissue, 1) if tissue else None
        if n:
            a = t["area_um2"]
            out["morphometry"] = {
                "mean_area_um2": round(float(a.mean()), 2),
                "median_area_um2": round(float(np.median(a)), 2),
                "area_cv": round(float(a.std() / a.mean()), 3) if a.mean() > 0 else None,
                "mean_perimeter_um": round(float(t["perimeter_um"].mean()), 2),
                "mean_eccentricity": round(float(t["eccentricity"].mean()), 3),
                "mean_solidity": round(float(t["solidity"].mean()), 3),
                "mean_major_um": round(float(t["major_um"].mean()), 2),
                "mean_minor_um": round(float(t["minor_um"].mean()), 2),
            }
        if "type" in t and c.labels:
            counts = np.bincount(t["type"], minlength=len(c.labels))
            out["types"] = {lab: int(counts[i]) for i, lab in enumerate(c.labels)}
        return out

    def describe(self) -> str:
        s = self.summary()
        if s["output"] == "mask":
            parts = [
                f"{lab} {v['area_um2'] / 1e6:.4f} mm² ({v['fraction']:.0%})"
                for lab, v in s["classes"].items()
            ]
            return f"area per class over {s['analysed_mm2']:.4f} mm²: " + ", ".join(parts)
        text = f"{s['count']} {'nucleus' if s['count'] == 1 else 'nuclei'} in {s['analysed_mm2']:.4f} mm²"
        if s["density_per_mm2_tissue"] is not None:
            text += f" ({s['density_per_mm2_tissue']:.0f} per mm² of tissue)"
        if "morphometry" in s:
            m = s["morphometry"]
            text += (
                f"; area mean {m['mean_area_um2']:.1f} µm² (median {m['median_area_um2']:.1f}, CV "
                f"{m['area_cv']}), eccentricity {m['mean_eccentricity']:.2f}, solidity {m['mean_solidity']:.2f}"
            )
        if s.get("types"):
            text += "; types: " + ", ".join(f"{k} {v}" for k, v in s["types"].items())
        return text

    def overlay(self, max_side: int = VIEW_SIDE) -> OverlayImage:
        """The region with the classes (mask) or nuclei outlines (instances) drawn, and a legend."""
        view = self.view
        base = (
            np.asarray(view.image)
            if view is not None
            else np.full((*self.covered.shape, 3), 255, np.uint8)
        )
        base, _ = _fit(base, max_side)
        h, w = base.shape[:2]
        c = self.card.card
        img = base.astype(np.float32)
        entries: list[tuple[tuple[int, int, int], str, str]] = []
        if c.output == "mask":
            cls = _resize_nearest(self.classes, (w, h))
            for i, lab in enumerate(c.labels):
                if lab == c.background:
                    continue
                colour, cname = hm.class_colour(i)
                sel = cls == i
                img[sel] = img[sel] * 0.55 + np.asarray(colour, np.float32) * 0.45
                entries.append((colour, cname, lab))
        else:
            from skimage.segmentation import find_boundaries

            assert self.instances is not None
            lab_img = _resize_nearest(self.instances, (w, h))
            edge = find_boundaries(lab_img, mode="inner")
            typed = "type" in self.table and bool(c.labels)
            if typed:
                per_pixel = np.zeros(int(lab_img.max()) + 1, np.int32)
                per_pixel[self.table["label"]] = self.table["type"]
                tmap = per_pixel[lab_img]
                for i, lab in enumerate(c.labels):
                    colour, cname = hm.class_colour(i)
                    img[edge & (tmap == i)] = colour
                    entries.append((colour, cname, lab))
            else:
                img[edge] = (0, 200, 0)
                entries.append(((0, 200, 0), "green", "nucleus outline"))
        out = _with_legend(np.clip(img, 0, 255).astype(np.uint8), entries)
        mpp = self.mpp * self.covered.shape[1] / w
        return OverlayImage(
            image=out,
            box=self.box,
            mpp=mpp,
            legend=", ".join(f"{cname} = {lab}" for _, cname, lab in entries),
        )


@dataclass
class OverlayImage:
    image: np.ndarray  # the region, with the legend in its bottom-left corner
    box: Box
    mpp: float
    legend: str


def _fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(w, h))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.LANCZOS)
    ), scale


def _resize_nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size:
        return a
    return np.asarray(
        Image.fromarray(a.astype(np.int32)).resize(size, Image.Resampling.NEAREST)
    ).astype(a.dtype)


def _with_legend(
    img: np.ndarray, entries: list[tuple[tuple[int, int, int], str, str]]
) -> np.ndarray:
    """The legend drawn in the image's bottom-left corner (the image keeps its size and geometry)."""
    if not entries:
        return img
    line, width = 16, 12 + 7 * max(len(t[:24]) for _, _, t in entries) + 14
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil, "RGBA")
    top = max(0, h - line * len(entries) - 6)
    draw.rectangle((0, top, min(w - 1, width), h - 1), fill=(255, 255, 255, 210))
    for k, (colour, _, text) in enumerate(entries):
        y = top + 3 + k * line
        draw.rectangle(
            (4, y + 1, 14, y + 11), fill=tuple(int(v) for v in colour), outline=(0, 0, 0)
        )
        draw.text((19, y), text[:24], fill=(0, 0, 0))
    return np.asarray(pil)


def canvas_side(plan: PatchPlan, card: Card) -> int:
    return max(plan.rows, plan.cols) * card.card.stride + card.card.patch_size - card.card.stride


def plan_segmentation(
    slide: Any, card: Card, region: Box, *, max_side: int = MAX_SIDE, min_tissue: float = 0.0
) -> PatchPlan:
    """The patch grid of ``region`` at the card's mpp, stride and patch size; ``ToolError`` when its
    canvas would exceed ``max_side`` px per side (the message gives a box that fits)."""
    c = card.card
    plan = plan_patches(
        slide,
        region,
        mpp=c.mpp,
        patch_size=c.patch_size,
        stride=c.stride,
        min_tissue=min_tissue,
        max_patches=None,
    )
    side = canvas_side(plan, card)
    if side > max_side:
        fit = int(
            ((max_side - c.patch_size) // c.stride * c.stride + c.patch_size)
            * c.mpp
            / plan.slide_mpp
        )
        cx, cy = region.x + region.w // 2, region.y + region.h // 2
        raise ToolError(
            f"the region {region} is {side} px across at {c.mpp:g} µm/px, more than the "
            f"{max_side} px one segmentation call covers; choose a box of at most {fit} x {fit} "
            f"level-0 pixels, e.g. ({max(0, cx - fit // 2)},{max(0, cy - fit // 2)},{fit},{fit})"
        )
    return plan


def run_segmentation(
    slide: Any,
    card: Card,
    region: Box | tuple,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    min_tissue: float = 0.0,
    max_side: int = MAX_SIDE,
    view_side: int = VIEW_SIDE,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
    stain: str | None = None,
) -> SegRun:
    """Segment ``region`` with a ``mask`` or ``instances`` card: stitch, decode, measure."""
    c = card.card
    if not c.spatial:
        raise ToolError(
            f"model {card.name!r} is a {c.output} model, not a segmentation model "
            "(output mask or instances)"
        )
    box = Box.of(region)
    plan = plan_segmentation(slide, card, box, max_side=max_side, min_tissue=min_tissue)
    stitch = Stitcher(plan, card)
    run = run_patches(
        slide,
        card,
        box,
        plan=plan,
        device=device,
        batch_size=batch_size,
        workers=workers,
        cancel=cancel,
        sink=stitch.add,
        progress=progress,
        stain=stain,
    )
    window, seg_box = _crop(plan, stitch.shape, box)
    y0, y1, x0, x1 = window
    crop = (slice(y0, y1), slice(x0, x1))
    covered, classes = stitch.covered[crop], stitch.classes[crop]
    instances: np.ndarray | None = None
    table: dict[str, np.ndarray] = {}
    if c.output == "instances":
        instances, table = _decode_instances(stitch, card, window, covered, classes, plan.mpp)
    view = slide.read(seg_box, max_side=view_side)
    return SegRun(
        card=card,
        plan=plan,
        box=seg_box,
        mpp=plan.mpp,
        covered=covered,
        classes=classes,
        instances=instances,
        table=table,
        stats=run.stats,
        view=view,
        tissue_fraction=_tissue_share(view, covered),
        notes=list(run.notes),
    )


def _crop(
    plan: PatchPlan, shape: tuple[int, ...], box: Box
) -> tuple[tuple[int, int, int, int], Box]:
    """The window ``(y0, y1, x0, x1)`` of the stitched canvas that ``box`` covers, and the
    level-0 box of that window."""
    f = plan.patch_l0 / plan.patch_size  # level-0 px per canvas px
    ox, oy = plan.origin
    x0, x1 = (max(0, min(shape[1], round((v - ox) / f))) for v in (box.x, box.x + box.w))
    y0, y1 = (max(0, min(shape[0], round((v - oy) / f))) for v in (box.y, box.y + box.h))
    seg_box = Box(
        round(ox + x0 * f),
        round(oy + y0 * f),
        max(1, round((x1 - x0) * f)),
        max(1, round((y1 - y0) * f)),
    )
    return (y0, y1, x0, x1), seg_box


def _decode_instances(
    stitch: Stitcher,
    card: Card,
    window: tuple[int, int, int, int],
    covered: np.ndarray,
    classes: np.ndarray,
    mpp: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The instance label map of the window, by the card's decoder, and its measurement table."""
    c = card.card
    y0, y1, x0, x1 = window
    assert stitch.maps is not None
    fg, hmap, vmap = (m[y0:y1, x0:x1] for m in stitch.maps)
    fg = fg * covered
    pp = c.postprocess
    if c.decoder == "stardist":
        instances = _stars_in(stitch, window)
    elif c.decoder == "label_map":
        instances = stitch.merged_ids(window)
    elif c.decoder == "hovernet":
        instances = decoders.hovernet_instances(
            fg,
            hmap,
            vmap,
            threshold=pp.threshold,
            edge=pp.edge,
            min_area=pp.min_area,
            sobel_size=pp.sobel_size,
            opening=pp.opening,
            blur=pp.blur,
        )
    else:
        instances = decoders.foreground_instances(
            fg, threshold=pp.threshold, min_area=pp.min_area, min_distance=pp.min_distance
        )
    typed = c.decoder == "hovernet" and bool(c.labels)
    bg = c.labels.index(c.background) if typed and c.background else None
    return instances, decoders.instance_table(instances, mpp, classes if typed else None, bg)


def _tissue_share(view: Any, covered: np.ndarray) -> float:
    """The share of the analysed (covered) area of the view that is tissue."""
    tissue_px = tissue_mask(np.asarray(view.image))
    seen = _resize_nearest(covered.astype(np.uint8), (tissue_px.shape[1], tissue_px.shape[0])) > 0
    return float((tissue_px & seen).sum() / max(1, seen.sum()))


def _stars_in(stitch: Stitcher, window: tuple[int, int, int, int]) -> np.ndarray:
    """StarDist polygons of the candidates inside the cropped window, in its coordinates."""
    y0, y1, x0, x1 = window
    if not stitch.stars:
        return np.zeros((y1 - y0, x1 - x0), np.int32)
    pts = np.concatenate([s[0] for s in stitch.stars])
    probs = np.concatenate([s[1] for s in stitch.stars])
    dists = np.concatenate([s[2] for s in stitch.stars])
    inside = (pts[:, 0] >= y0) & (pts[:, 0] < y1) & (pts[:, 1] >= x0) & (pts[:, 1] < x1)
    return decoders.star_instances(
        (y1 - y0, x1 - x0),
        pts[inside] - (y0, x0),
        probs[inside],
        dists[inside],
        overlap=stitch.card.card.postprocess.nms_overlap,
        min_area=stitch.card.card.postprocess.min_area,
    )


__all__ = [
    "MAX_SIDE",
    "OverlayImage",
    "SegRun",
    "Stitcher",
    "canvas_side",
    "plan_segmentation",
    "run_segmentation",
]
