"""Tissue detection over the whole slide: the pieces of tissue, their level-0 boxes and areas.

The mask comes from :func:`slidescout.slides.tissue.tissue_mask` on a thumbnail, closed (to join
a piece's pale parts), hole-filled and cleared of specks; connected parts are the pieces, largest
first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from slidescout.core.types import Box
from slidescout.slides.tissue import label_components, tissue_mask

THUMB_SIDE = 2048
MIN_PIECE_SHARE = 0.002  # pieces smaller than this share of all tissue are specks
MIN_PIECE_PX = 24  # ... or than this many thumbnail pixels


@dataclass
class TissuePiece:
    index: int  # 1-based, largest first
    box: Box  # level-0 bounding box
    area_px: float  # level-0 px²
    area_mm2: float | None
    share: float  # fraction of all tissue
    centroid: tuple[int, int]  # level-0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": list(self.box.as_tuple()),
            "area_mm2": None if self.area_mm2 is None else round(self.area_mm2, 4),
            "area_px": round(self.area_px),
            "share": round(self.share, 4),
            "centroid": list(self.centroid),
        }


@dataclass
class TissueMap:
    pieces: list[TissuePiece]
    mask: np.ndarray  # cleaned mask at thumbnail resolution
    thumb: Any  # the View the mask was computed on
    slide_area_px: float
    mpp: float | None
    dropped: int = 0  # specks left out
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def total_mm2(self) -> float | None:
        if self.mpp is None:
            return None
        return float(sum(p.area_mm2 or 0.0 for p in self.pieces))


def clean_mask(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = xx * xx + yy * yy <= radius * radius
    m = ndi.binary_closing(mask, structure=disk, border_value=0)
    m = ndi.binary_fill_holes(m)
    return ndi.binary_opening(m, structure=np.ones((2, 2), bool))


def find_tissue(slide: Any, max_side: int = THUMB_SIDE) -> TissueMap:
    """The tissue pieces of ``slide`` (largest first)."""
    from scipy import ndimage as ndi

    view = slide.thumbnail(max_side)
    mask = clean_mask(tissue_mask(np.asarray(view.image)))
    labels, n = label_components(mask, structure=np.ones((3, 3), bool))
    vb = view.box
    fx, fy = vb.w / mask.shape[1], vb.h / mask.shape[0]  # level-0 px per mask px
    mpp = getattr(slide, "mpp", None)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    total = float(sizes.sum())
    keep = [i + 1 for i, s in enumerate(sizes) if s >= max(MIN_PIECE_PX, MIN_PIECE_SHARE * total)]
    slices = ndi.find_objects(labels)
    pieces: list[TissuePiece] = []
    for lab in keep:
        sl = slices[lab - 1]
        ys, xs = sl
        sub = labels[sl] == lab
        cy, cx = ndi.center_of_mass(sub)
        area_px = float(sizes[lab - 1]) * fx * fy
        x0, y0 = vb.x + int(np.floor(xs.start * fx)), vb.y + int(np.floor(ys.start * fy))
        x1, y1 = vb.x + int(np.ceil(xs.stop * fx)), vb.y + int(np.ceil(ys.stop * fy))
        pieces.append(
            TissuePiece(
                index=0,
                box=Box(x0, y0, x1 - x0, y1 - y0),
                area_px=area_px,
                area_mm2=area_px * mpp * mpp / 1e6 if mpp else None,
                share=float(sizes[lab - 1] / total) if total else 0.0,
                centroid=(
                    vb.x + int((xs.start + cx + 0.5) * fx),
                    vb.y + int((ys.start + cy + 0.5) * fy),
                ),
            )
        )
    pieces.sort(key=lambda p: -p.area_px)
    for i, p in enumerate(pieces, 1):
        p.index = i
    kept = np.isin(labels, keep)
    return TissueMap(
        pieces=pieces,
        mask=kept,
        thumb=view,
        slide_area_px=float(vb.w * vb.h),
        mpp=mpp,
        dropped=n - len(keep),
    )


def overlay(tmap: TissueMap, max_side: int = 1000, limit: int = 20) -> tuple[np.ndarray, float]:
    """The thumbnail with the tissue outline (green) and numbered piece boxes (blue); returns the
    image and its level-0 px per image px."""
    from scipy import ndimage as ndi

    base = Image.fromarray(np.asarray(tmap.thumb.image)).convert("RGB")
    vb = tmap.thumb.box
    scale = min(1.0, max_side / max(base.size))
    size = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
    img = base.resize(size, Image.Resampling.LANCZOS) if size != base.size else base.copy()
    mask = (
        np.asarray(
            Image.fromarray(tmap.mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        )
        > 0
    )
    edge = mask & ~np.asarray(ndi.binary_erosion(mask, iterations=2), bool)
    arr = np.array(img)
    arr[edge] = (0, 170, 0)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    fx, fy = size[0] / vb.w, size[1] / vb.h
    for p in tmap.pieces[:limit]:
        b = p.box
        x0, y0 = (b.x - vb.x) * fx, (b.y - vb.y) * fy
        x1, y1 = x0 + b.w * fx, y0 + b.h * fy
        draw.rectangle(
            [x0, y0, max(x0 + 1, x1 - 1), max(y0 + 1, y1 - 1)], outline=(20, 60, 220), width=2
        )
        tx, ty = x0 + 3, y0 + 2
        draw.rectangle(
            [tx - 2, ty - 1, tx + 7 * len(str(p.index)) + 2, ty + 11], fill=(20, 60, 220)
        )
        draw.text((tx, ty), str(p.index), fill=(255, 255, 255))
    return np.asarray(img), vb.w / size[0]


__all__ = ["TissueMap", "TissuePiece", "clean_mask", "find_tissue", "overlay"]
