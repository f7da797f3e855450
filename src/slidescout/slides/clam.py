"""CLAM's tissue segmentation and patch grid (mahmoodlab/CLAM, ``WholeSlideImage.segmentTissue``
and ``process_contour``), for GIANT's patch baseline, whose coordinates came from CLAM run with the
presets its repository ships (``clam_presets/tcga.csv``, ``panda.csv``; ``data/clam_presets.json``).

The rules, on a mask instead of OpenCV contours:

- segmentation at CLAM's level (``seg_level=-1``: the pyramid level closest below a downsample of
  64): the HSV saturation channel, median-blurred (``mthresh``), above ``sthresh``, then a
  morphological closing with a ``close`` x ``close`` square;
- tissue pieces (8-connected) whose area, less their holes, is above ``a_t`` reference patches
  (512 x 512 level-0 px) are kept; of each piece's holes the ``max_n_holes`` largest above ``a_h``
  reference patches are kept, smaller ones count as tissue;
- each kept piece gets its own grid of ``patch_size`` px from the top-left of its bounding box
  (``use_padding``: to the box's end); a patch is kept when one of the four points at its centre
  +- a quarter of the patch lies in the piece (CLAM's ``four_pt``, its "easy" check) and its
  centre is not in a kept hole.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

__all__ = [
    "clam_grid",
    "clam_mask",
    "clam_preset",
    "clam_preset_for",
    "clam_seg_side",
    "clam_tissue",
]

REF_PATCH = 512  # CLAM's reference patch for a_t and a_h, in level-0 px


@cache
def _presets() -> dict[str, Any]:
    text = resources.files("slidescout").joinpath("data/clam_presets.json").read_text("utf-8")
    return dict(json.loads(text))


def clam_preset(name: str) -> dict[str, int]:
    """The segmentation and filter values of a CLAM preset in GIANT's repository."""
    return dict(_presets()["presets"][name])


def clam_preset_for(task: str) -> str:
    """The preset a MultiPathQA task uses (TCGA-derived tasks and GTEx: ``tcga``; PANDA: ``panda``)."""
    table = _presets()
    return str(table["tasks"].get(task, table["default"]))


def clam_seg_side(level_downsamples: list[float], long_side: int, limit: int = 4096) -> int:
    """The long side of CLAM's segmentation image: the slide at the coarsest level whose downsample
    is at most 64 (OpenSlide's best level for 64), at most ``limit`` px."""
    seg = max((d for d in level_downsamples if d <= 64), default=1.0)
    return int(min(limit, max(64, round(long_side / seg))))


def clam_mask(rgb: np.ndarray, *, sthresh: int = 8, mthresh: int = 7, close: int = 4) -> np.ndarray:
    """Tissue as CLAM segments it: HSV saturation, median-blurred over ``mthresh`` px, above
    ``sthresh`` (0-255), closed with a ``close`` x ``close`` square."""
    from PIL import Image, ImageFilter
    from scipy import ndimage

    sat = (
        Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), "RGB")
        .convert("HSV")
        .getchannel("S")
    )
    sat = sat.filter(ImageFilter.MedianFilter(mthresh | 1))
    mask = (np.asarray(sat) > sthresh).astype(np.uint8)
    if close > 0:  # OpenCV's closing: the border never counts (max then min, edges repeated)
        mask = ndimage.maximum_filter(mask, size=close, mode="nearest")
        mask = ndimage.minimum_filter(mask, size=close, mode="nearest")
    return mask > 0


def clam_tissue(
    mask: np.ndarray, scale: float, *, a_t: int, a_h: int, max_n_holes: int, **_: Any
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(pieces, holes, n)``: the kept tissue pieces labelled 1..n (holes filled) and the kept holes
    labelled with their piece, on ``mask`` whose pixels are ``scale`` level-0 px wide."""
    from scipy import ndimage

    ref_area = int(REF_PATCH**2 / (scale * scale))
    labels = np.zeros(mask.shape, np.int32)
    ndimage.label(mask, structure=np.ones((3, 3), bool), output=labels)
    pieces = np.zeros(mask.shape, np.int32)
    holes = np.zeros(mask.shape, np.int32)
    kept = 0
    for i, piece in enumerate(ndimage.find_objects(labels), 1):
        if piece is None:
            continue
        own = labels[piece] == i
        inside = np.asarray(ndimage.binary_fill_holes(own), dtype=bool)
        hole_labels = np.zeros(own.shape, np.int32)
        ndimage.label(inside & ~own, output=hole_labels)
        n_holes = int(hole_labels.max())
        areas = np.bincount(hole_labels.ravel(), minlength=n_holes + 1)[1:]
        big = [h + 1 for h in np.argsort(-areas)[:max_n_holes] if areas[h] > a_h * ref_area]
        if int(own.sum()) <= a_t * ref_area:  # CLAM: the piece's area less all its holes
            continue
        kept += 1
        pieces[piece][inside] = kept
        holes[piece][np.isin(hole_labels, big)] = kept
    return pieces, holes, kept


def clam_grid(
    pieces: np.ndarray,
    region: tuple[int, int, int, int],
    patch_size: int,
    holes: np.ndarray | None = None,
) -> np.ndarray:
    """Level-0 top-left corners (N, 2) of the patches CLAM keeps: per piece (label > 0 in
    ``pieces``, which covers ``region`` = x, y, w, h in level-0 px), a grid from its bounding box;
    one of the four points at the centre +- a quarter patch in the piece, the centre not in a
    kept hole of it."""
    from scipy import ndimage

    x0, y0, w, h = region
    mh, mw = pieces.shape
    sx, sy = w / mw, h / mh
    labels = pieces.astype(np.int32)
    holes = np.zeros_like(labels) if holes is None else holes.astype(np.int32)
    out: list[np.ndarray] = []

    def at(grid: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        ix = np.clip(((px - x0) / sx).astype(np.int64), 0, mw - 1)
        iy = np.clip(((py - y0) / sy).astype(np.int64), 0, mh - 1)
        return grid[iy, ix]

    shift = int(patch_size // 2 * 0.5)
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        bx, by = x0 + int(box[1].start * sx), y0 + int(box[0].start * sy)
        bw, bh = int((box[1].stop - box[1].start) * sx), int((box[0].stop - box[0].start) * sy)
        gx, gy = np.meshgrid(np.arange(bx, bx + bw, patch_size), np.arange(by, by + bh, patch_size))
        cx, cy = gx + patch_size // 2, gy + patch_size // 2
        near = np.zeros(gx.shape, bool)
        for dx, dy in ((-shift, -shift), (shift, shift), (shift, -shift), (-shift, shift)):
            near |= at(labels, cx + dx, cy + dy) == i
        ok = near & (at(holes, cx, cy) != i)
        out.append(np.stack([gx[ok], gy[ok]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)
