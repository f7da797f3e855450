"""A box read the way GIANT reads it (``util.crop_to_image``), for the ``giant`` level rule.

GIANT asks OpenSlide for ``round(w / d) x round(h / d)`` pixels of level ``L`` (its level rule,
``render.giant_level``) starting at the box's level-0 origin, then scales that down with Pillow's
LANCZOS to ``round(side * target / long side)`` (never up). Two things make its pixels what they
are, and both are reproduced here:

- OpenSlide places a level-0 origin that does not fall on the level's pixel grid (``x / d`` not
  whole) by shifting the level's pixels with bilinear interpolation (cairo over pixman: 7-bit
  weights, rounded), instead of starting at a whole pixel;
- pixels of the read that fall outside the level come back transparent, so black in GIANT's RGB
  image.

A read that would be larger than ``MAX_READ_PX`` (a slide without a pyramid, say) is not done
this way: the caller renders the box with its usual resampler (GIANT would read it whole).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from slidescout.core.types import Box
from slidescout.slides.backends import Backend
from slidescout.slides.render import giant_level

__all__ = ["MAX_READ_PX", "giant_read"]

MAX_READ_PX = 64_000_000  # level pixels read at once (about 190 MB of RGB)
_WEIGHT_BITS = 7  # pixman's bilinear weights


def _level_pixels(backend: Backend, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    """(h, w, 3) of the level from (x, y); what lies outside the level is black."""
    lw, lh = backend.level_dimensions[level]
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(lw, x + w), min(lh, y + h)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = backend.read_level(level, x0, y0, x1 - x0, y1 - y0)
    return out


def _shifted(pixels: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """``pixels`` (one row and column larger than the result) sampled ``fx``, ``fy`` px to the
    right and down, bilinearly, with pixman's quantised weights and rounding."""
    one = 1 << 8
    wx = int(fx * (1 << _WEIGHT_BITS)) << (8 - _WEIGHT_BITS)
    wy = int(fy * (1 << _WEIGHT_BITS)) << (8 - _WEIGHT_BITS)
    a = pixels.astype(np.int32)
    top = a[:-1, :-1] * (one - wx) + a[:-1, 1:] * wx
    bottom = a[1:, :-1] * (one - wx) + a[1:, 1:] * wx
    total = top * (one - wy) + bottom * wy  # at most 255 * 2**16: int32 holds it
    return ((total + (1 << 15)) >> 16).astype(np.uint8)


def giant_read(backend: Backend, box: Box, target: int) -> tuple[np.ndarray, int] | None:
    """``(RGB image, level)`` of ``box`` (inside level 0) as GIANT's crop gives them, at most
    ``target`` px on the long side; None when the level read would exceed ``MAX_READ_PX``."""
    downsamples = list(backend.level_downsamples)
    long_box = max(box.w, box.h)
    long_out = min(target, long_box)
    out_w = max(1, round(box.w * long_out / long_box))
    out_h = max(1, round(box.h * long_out / long_box))
    level = giant_level(downsamples, box.w, box.h, out_w, out_h)
    d = float(downsamples[level])
    rw, rh = max(1, round(box.w / d)), max(1, round(box.h / d))
    if rw * rh > MAX_READ_PX:
        return None
    x, y = box.x / d, box.y / d
    ix, iy = math.floor(x), math.floor(y)
    fx, fy = x - ix, y - iy
    if fx or fy:
        pixels = _shifted(_level_pixels(backend, level, ix, iy, rw + 1, rh + 1), fx, fy)
    else:
        pixels = _level_pixels(backend, level, ix, iy, rw, rh)
    image = Image.fromarray(pixels, "RGB")
    if max(rw, rh) > target:
        scale = target / max(rw, rh)
        size = (max(1, round(rw * scale)), max(1, round(rh * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image), level
