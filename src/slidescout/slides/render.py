"""Level-0 geometry of a view: validate a box, fit the output size, pick the pyramid level.

Rules:
- the output long side is ``min(max_side, box long side)``: never more pixels than level 0 has;
- the level read is the coarsest that still has the output's pixel count across the box (less
  one pixel, for level sizes that were rounded), so any box, even the whole slide, is read from
  a level at most one pyramid step finer than the output;
- the box is mapped into that level's pixel grid exactly (fractional), and the backend resamples
  that rectangle, so the image shows exactly the requested box;
- except when the box is exactly the output's size in that level's pixels, within the rounding of
  the level's size (a 1024 px box at the origin of a 2999 px slide is 512 px of its 1499 px
  level 1, not 511.8): then the level's stored pixels are copied 1:1, never resampled.

``rule="giant"`` picks the level as GIANT does instead: ``ds = box long side / output long side``,
the coarsest level whose downsample is at most ``max(1, 0.85 * ds)``, then one level finer when
the box read at that level would be smaller than the output.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from slidescout.core.types import Box, LevelRule
from slidescout.errors import SlideError
from slidescout.slides.backends import Backend, Region

MAX_SIDE_LIMIT = 4096  # largest output side a view may have
MIN_SIDE = 8


def size_text(width: int, height: int) -> str:
    return f"level 0 is {width} x {height} px"


def parse_box(value: object, name: str, width: int, height: int) -> Box:
    """A positive-size ``Box`` from anything ``Box.of`` accepts, or a ``SlideError``."""
    try:
        box = Box.of(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise SlideError(
            f"bad box for slide {name} ({size_text(width, height)}): {exc}; "
            "give x,y,w,h as numbers in level-0 pixels"
        ) from None
    if box.w <= 0 or box.h <= 0:
        raise SlideError(
            f"box {box} has zero or negative size on slide {name} ({size_text(width, height)}); "
            "width and height must be at least 1 px"
        )
    return box


def clamp_box(box: Box, name: str, width: int, height: int) -> Box:
    """The part of ``box`` inside the slide; ``SlideError`` when nothing of it is."""
    inside = box.intersect(Box(0, 0, width, height))
    if inside is None:
        raise SlideError(
            f"box {box} lies outside the slide {name} ({size_text(width, height)}); "
            f"x must be in 0..{width - 1}, y in 0..{height - 1}, and the box must overlap the slide"
        )
    return inside


def check_max_side(max_side: object, what: str = "max_side") -> int:
    side = (
        float(max_side)
        if isinstance(max_side, numbers.Real) and not isinstance(max_side, bool)
        else math.nan
    )
    if math.isfinite(side) and side.is_integer() and MIN_SIDE <= side <= MAX_SIDE_LIMIT:
        return int(side)
    raise SlideError(
        f"{what} must be a whole number from {MIN_SIDE} to {MAX_SIDE_LIMIT} px, got {max_side!r}"
    )


def fit_output(box: Box, max_side: int) -> tuple[int, int]:
    """Output size for ``box`` with long side ``min(max_side, box long side)``, aspect kept."""
    long_side = max(box.w, box.h)
    target = min(max_side, long_side)
    scale = target / long_side
    return max(1, min(box.w, round(box.w * scale))), max(1, min(box.h, round(box.h * scale)))


def choose_level(
    scales: Sequence[tuple[float, float]], box_w: float, box_h: float, out_w: int, out_h: int
) -> int:
    """Coarsest level that still has at least ``out - 1`` pixels across the box on both axes.

    So a view is never upsampled by more than one pixel in total (level sizes are rounded: a
    nominal 16x level of a 3000 px slide is 187 px wide, a downsample of 16.04).
    """
    best = 0
    for level, (sx, sy) in enumerate(scales):
        if box_w / sx >= out_w - 1 and box_h / sy >= out_h - 1 and sx >= scales[best][0]:
            best = level
    return best


def giant_level(
    downsamples: Sequence[float], box_w: float, box_h: float, out_w: int, out_h: int
) -> int:
    """GIANT's level: ``best_level_for_downsample(max(1, 0.85 * ds))``, one level finer when the
    read would be smaller than the output (``ds`` = box long side / output long side)."""
    long_box, long_out = max(box_w, box_h), max(out_w, out_h)
    target = max(1.0, 0.85 * long_box / max(1, long_out))
    level = 0
    for i, ds in enumerate(downsamples):
        if ds <= target * 1.0001:  # OpenSlide's best_level_for_downsample: largest ds not above
            level = i
    d = downsamples[level]  # GIANT compares the rounded read size: max(1, round(side / d))
    if level > 0 and max(max(1, round(box_w / d)), max(1, round(box_h / d))) < long_out:
        level -= 1
    return level


def nominal_downsample(dims: Sequence[tuple[int, int]], level: int) -> int | None:
    """The whole downsample a level was made with, when its rounded size is consistent with one.

    Pyramid writers halve (or quarter) level 0 and round the size: 2999 px gives 1499, 749, 374,
    187. Level pixel ``k`` then covers level-0 pixels ``[d*k, d*(k+1))``, while the ratio of the
    sizes (2999/1499 = 2.00067) is off by the rounding. A power of two is preferred where both fit
    (a 46 px level of 3000 px fits 64 and 65)."""
    (w0, h0), (lw, lh) = dims[0], dims[level]
    ratio = w0 / lw
    for d in (2 ** round(math.log2(ratio)), round(ratio)):
        if d >= 1 and abs(w0 / d - lw) < 1 and abs(h0 / d - lh) < 1:
            return d
    return None


def copy_region(
    dims: Sequence[tuple[int, int]],
    scale: tuple[float, float],
    level: int,
    box: Box,
    out_w: int,
    out_h: int,
) -> Region | None:
    """The level's own pixels, 1:1, when ``box`` is exactly ``out_w x out_h`` of them under the
    level's scale or its nominal downsample (so within the rounding of the level's size)."""
    lw, lh = dims[level]
    d = nominal_downsample(dims, level)
    for sx, sy in (scale, (d, d)) if d else (scale,):
        x, y, w, h = box.x / sx, box.y / sy, box.w / sx, box.h / sy
        if all(abs(v - round(v)) < 1e-6 for v in (x, y, w, h)):
            x0, y0 = round(x), round(y)
            if (round(w), round(h)) == (out_w, out_h) and x0 + out_w <= lw and y0 + out_h <= lh:
                return Region(level, x0, y0, out_w, out_h, out_w, out_h)
    return None


def plan_region(
    backend: Backend, box: Box, out_w: int, out_h: int, rule: LevelRule = "fine"
) -> Region:
    """The level and exact level-pixel rectangle to resample for ``box`` at ``out_w x out_h``;
    the level's pixels themselves when the box is exactly the output's size there."""
    scales = [backend.level_scale(i) for i in range(len(backend.level_dimensions))]
    if rule == "giant":
        level = giant_level(list(backend.level_downsamples), box.w, box.h, out_w, out_h)
    else:
        level = choose_level(scales, box.w, box.h, out_w, out_h)
    copy = copy_region(backend.level_dimensions, scales[level], level, box, out_w, out_h)
    if copy is not None:
        return copy
    sx, sy = scales[level]
    lw, lh = backend.level_dimensions[level]
    x0, y0 = min(box.x / sx, lw - 1.0), min(box.y / sy, lh - 1.0)
    x1, y1 = min(box.x2 / sx, float(lw)), min(box.y2 / sy, float(lh))
    if level == 0:  # level-0 boxes are whole pixels already
        x0, y0, x1, y1 = float(box.x), float(box.y), float(box.x2), float(box.y2)
    return Region(level, x0, y0, max(x1 - x0, 1e-6), max(y1 - y0, 1e-6), out_w, out_h)
