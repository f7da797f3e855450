"""Plan the patches a model sees: a grid over a level-0 region (or the whole slide) at a target
mpp and patch size, the pyramid level to read, and which grid cells hold tissue.

Geometry: a patch of ``patch_size`` px at ``mpp`` covers ``patch_size * mpp / slide_mpp`` level-0
px. Patches are read at the coarsest level whose downsample does not exceed that ratio (so they
are never upsampled from a coarser level) and resized to ``patch_size``. A region's grid is
centred on it (the outer patches may reach past its edges); the whole-slide grid starts at the
slide's bounds. Tissue comes from :func:`slidescout.slides.tissue.tissue_mask` on a low-resolution
view, summed per patch footprint with an integral image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slidescout.core.types import Box
from slidescout.errors import ToolError
from slidescout.slides import Slide
from slidescout.slides.tissue import tissue_mask

MASK_SIDE = 1024  # long side of the view the tissue mask is computed on (region mode)
THUMB_SIDE = 2048  # ... and for the whole slide


class PatchLimitExceeded(ToolError):
    """A region holds more patches than one call may run; the message says how to shrink it."""


@dataclass
class PatchPlan:
    """Where every patch lies, and how to read it.

    ``origin`` is the level-0 top-left of grid cell (0, 0); cell (r, c) starts at
    ``origin + (c, r) * stride_l0`` and spans ``patch_l0``. ``cells`` holds (row, col) of the
    patches kept (tissue filter applied), ``tissue`` their tissue fraction (NaN when not computed).
    """

    region: Box
    mpp: float
    patch_size: int
    slide_mpp: float
    patch_l0: float
    stride_l0: float
    origin: tuple[float, float]
    rows: int
    cols: int
    level: int
    level_scale: float  # level-0 px per level px
    read_size: int  # level px per patch side
    cells: np.ndarray  # (M, 2) int32 row, col
    tissue: np.ndarray  # (M,) float32
    min_tissue: float = 0.0

    def __len__(self) -> int:
        return int(self.cells.shape[0])

    @property
    def resized(self) -> bool:
        return self.read_size != self.patch_size

    def boxes(self) -> np.ndarray:
        """(M, 4) int64 level-0 boxes (x, y, w, h) of the kept patches."""
        x = np.rint(self.origin[0] + self.cells[:, 1] * self.stride_l0)
        y = np.rint(self.origin[1] + self.cells[:, 0] * self.stride_l0)
        side = np.full_like(x, round(self.patch_l0))
        return np.stack([x, y, side, side], axis=1).astype(np.int64)

    def level_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Top-left of every kept patch in the read level's pixels."""
        x = self.origin[0] + self.cells[:, 1] * self.stride_l0
        y = self.origin[1] + self.cells[:, 0] * self.stride_l0
        return (
            np.rint(x / self.level_scale).astype(np.int64),
            np.rint(y / self.level_scale).astype(np.int64),
        )

    def describe(self) -> str:
        return (
            f"{len(self)} patches of {self.patch_size} px at {self.mpp:g} µm/px "
            f"({self.patch_l0:.0f} level-0 px each, read at level {self.level})"
        )


def choose_read_level(
    level_dimensions: tuple[tuple[int, int], ...], target_scale: float
) -> tuple[int, float]:
    """Coarsest level whose level-0-per-level-px scale does not exceed ``target_scale``."""
    w0 = level_dimensions[0][0]
    best, best_scale = 0, 1.0
    for level, (lw, _lh) in enumerate(level_dimensions):
        scale = w0 / lw
        if scale <= target_scale * 1.001 and scale >= best_scale:
            best, best_scale = level, scale
    return best, best_scale


def _axis(start: int, length: int, patch: float, stride: float, centre: bool) -> tuple[float, int]:
    n = 1 if length <= patch else int(math.ceil((length - patch) / stride - 1e-9)) + 1
    covered = patch + (n - 1) * stride
    origin = start + (length - covered) / 2 if centre else float(start)
    return origin, n


def plan_patches(
    slide: Slide,
    region: Box | None,
    *,
    mpp: float,
    patch_size: int,
    stride: int | None = None,
    min_tissue: float = 0.0,
    max_patches: int | None = None,
    slide_mpp: float | None = None,
) -> PatchPlan:
    """The grid of patches over ``region`` (None: the whole slide), keeping cells whose tissue
    fraction is at least ``min_tissue``.

    Raises ``PatchLimitExceeded`` (a ``ToolError``) when more than ``max_patches`` remain, and
    ``ToolError`` when the slide's resolution is unknown and ``slide_mpp`` is not given.
    """
    base = slide_mpp or getattr(slide, "mpp", None)
    if not base:
        raise ToolError(
            "this slide has no resolution metadata (µm per pixel unknown), so patches "
            f"at {mpp:g} µm/px cannot be cut from it"
        )
    if patch_size < 1 or mpp <= 0:
        raise ToolError(f"patch_size and mpp must be positive (got {patch_size}, {mpp})")
    sw, sh = (int(v) for v in slide.dimensions)  # type: ignore[attr-defined]
    whole = region is None
    if region is None:
        bounds: Box | None = getattr(slide, "bounds", None)
        region = bounds or Box(0, 0, sw, sh)
    inside = region.intersect(Box(0, 0, sw, sh))
    if inside is None:
        raise ToolError(f"the region {region} lies outside the slide ({sw} x {sh} level-0 pixels)")
    region = inside
    patch_l0 = patch_size * mpp / base
    stride_l0 = (stride or patch_size) * mpp / base
    ox, cols = _axis(region.x, region.w, patch_l0, stride_l0, centre=not whole)
    oy, rows = _axis(region.y, region.h, patch_l0, stride_l0, centre=not whole)
    limit = max_patches if max_patches is not None else 1 << 62
    if rows * cols > 64 * limit or (min_tissue <= 0 and rows * cols > limit):
        raise _too_many(
            rows * cols, limit, region, patch_size, mpp, patch_l0, stride_l0, min_tissue
        )
    level, scale = choose_read_level(tuple(slide.level_dimensions), patch_l0 / patch_size)  # type: ignore[attr-defined]
    rr, cc = np.meshgrid(
        np.arange(rows, dtype=np.int32), np.arange(cols, dtype=np.int32), indexing="ij"
    )
    cells = np.stack([rr.ravel(), cc.ravel()], axis=1)
    tissue = np.full(len(cells), np.nan, np.float32)
    if min_tissue > 0:
        tissue = _tissue_fractions(slide, region, whole, cells, (ox, oy), patch_l0, stride_l0)
        keep = tissue >= min_tissue
        cells, tissue = cells[keep], tissue[keep]
    if len(cells) > limit:
        raise _too_many(len(cells), limit, region, patch_size, mpp, patch_l0, stride_l0, min_tissue)
    return PatchPlan(
        region=region,
        mpp=float(mpp),
        patch_size=int(patch_size),
        slide_mpp=float(base),
        patch_l0=patch_l0,
        stride_l0=stride_l0,
        origin=(ox, oy),
        rows=rows,
        cols=cols,
        level=level,
        level_scale=scale,
        read_size=max(1, round(patch_l0 / scale)),
        cells=cells,
        tissue=tissue,
        min_tissue=float(min_tissue),
    )


def _too_many(
    n: int,
    limit: int,
    region: Box,
    patch_size: int,
    mpp: float,
    patch_l0: float,
    stride_l0: float,
    min_tissue: float,
) -> PatchLimitExceeded:
    side = int(math.sqrt(limit) * stride_l0)
    what = "tissue patches" if min_tissue > 0 else "patches"
    return PatchLimitExceeded(
        f"the region {region} holds {n} {what} of {patch_size} px at {mpp:g} µm/px "
        f"({patch_l0:.0f} level-0 px each), more than the limit of {limit} per call; choose a smaller "
        f"region, at most about {side} x {side} level-0 pixels, or look at the tissue first to pick one"
    )


def _tissue_fractions(
    slide: Slide,
    region: Box,
    whole: bool,
    cells: np.ndarray,
    origin: tuple[float, float],
    patch_l0: float,
    stride_l0: float,
) -> np.ndarray:
    view = slide.thumbnail(THUMB_SIDE) if whole else slide.read(region, max_side=MASK_SIDE)
    mask = tissue_mask(np.asarray(view.image))
    vb = view.box
    fx, fy = mask.shape[1] / vb.w, mask.shape[0] / vb.h  # mask px per level-0 px
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.float64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1)
    x0 = origin[0] + cells[:, 1] * stride_l0
    y0 = origin[1] + cells[:, 0] * stride_l0

    def idx(v: np.ndarray, start: int, f: float, n: int) -> np.ndarray:
        return np.clip(np.rint((v - start) * f), 0, n).astype(np.int64)

    c0 = idx(x0, vb.x, fx, mask.shape[1])
    c1 = np.maximum(idx(x0 + patch_l0, vb.x, fx, mask.shape[1]), np.minimum(c0 + 1, mask.shape[1]))
    r0 = idx(y0, vb.y, fy, mask.shape[0])
    r1 = np.maximum(idx(y0 + patch_l0, vb.y, fy, mask.shape[0]), np.minimum(r0 + 1, mask.shape[0]))
    inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    footprint = np.maximum(
        1.0, (patch_l0 * fx) * (patch_l0 * fy)
    )  # outside the view counts as glass
    return np.clip(inside / footprint, 0.0, 1.0).astype(np.float32)


__all__ = ["PatchLimitExceeded", "PatchPlan", "choose_read_level", "plan_patches"]
