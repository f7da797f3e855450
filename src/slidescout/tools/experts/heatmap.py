"""Heatmaps aligned to the slide: per-patch values painted over the region they came from.

Every output pixel takes the value of the patch whose centre is nearest (patches that were not run,
e.g. glass, stay unpainted). Scalars use a blue → yellow → red scale (0 → 1); class maps use one
colour per class with the strength of the winning probability.
"""

from __future__ import annotations

import numpy as np

from slidescout.tools.experts.tiling import PatchPlan

# RdYlBu reversed: low = blue, middle = pale yellow, high = red
_ANCHORS = np.array(
    [
        (49, 54, 149),
        (69, 117, 180),
        (116, 173, 209),
        (171, 217, 233),
        (255, 255, 191),
        (254, 224, 144),
        (253, 174, 97),
        (244, 109, 67),
        (215, 48, 39),
        (165, 0, 38),
    ],
    np.float32,
)
SCALE_TEXT = "blue = low (0), pale yellow = middle, red = high (1)"
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ],
    np.uint8,
)
PALETTE_NAMES = (
    "blue",
    "orange",
    "green",
    "red",
    "purple",
    "brown",
    "pink",
    "grey",
    "olive",
    "cyan",
)


def _lut() -> np.ndarray:
    pos = np.linspace(0, 1, len(_ANCHORS))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, pos, _ANCHORS[:, c]) for c in range(3)], axis=1).astype(np.uint8)


LUT = _lut()


def colormap(values: np.ndarray) -> np.ndarray:
    """RGB uint8 for values in [0, 1] (clipped; NaN maps to 0)."""
    v = np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0)
    return LUT[np.rint(v * 255).astype(np.intp)]


def class_colour(index: int) -> tuple[tuple[int, int, int], str]:
    i = index % len(PALETTE)
    r, g, b = (int(c) for c in PALETTE[i])
    return (r, g, b), PALETTE_NAMES[i]


def grid_of(plan: PatchPlan, values: np.ndarray) -> np.ndarray:
    """(rows, cols, ...) array with ``values`` at the kept cells and NaN elsewhere."""
    shape = (plan.rows, plan.cols) + tuple(values.shape[1:])
    grid = np.full(shape, np.nan, np.float32)
    grid[plan.cells[:, 0], plan.cells[:, 1]] = values
    return grid


def cell_index(
    plan: PatchPlan, box_x: int, box_y: int, box_w: int, box_h: int, out_w: int, out_h: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For an ``out_w x out_h`` image of a level-0 box: each column's grid col and each row's grid
    row (nearest patch centre), and whether that pixel lies inside some patch's footprint."""
    px = box_x + (np.arange(out_w) + 0.5) * box_w / out_w
    py = box_y + (np.arange(out_h) + 0.5) * box_h / out_h
    half = plan.patch_l0 / 2

    def nearest(p: np.ndarray, origin: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.rint((p - origin - half) / plan.stride_l0), 0, n - 1).astype(np.intp)
        centre = origin + i * plan.stride_l0 + half
        return i, np.abs(p - centre) <= half + 1e-6

    ci, cin = nearest(px, plan.origin[0], plan.cols)
    ri, rin = nearest(py, plan.origin[1], plan.rows)
    return ci, ri, cin, rin


def render(
    plan: PatchPlan,
    colours: np.ndarray,
    alpha: np.ndarray | float,
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Paint per-patch ``colours`` (M, 3) with per-patch ``alpha`` over ``background`` (or white).

    ``box`` is the level-0 region the image shows and ``size`` its (width, height).
    """
    out_w, out_h = size
    ci, ri, cin, rin = cell_index(plan, *box, out_w, out_h)
    col_grid = grid_of(plan, colours.astype(np.float32))
    a = np.broadcast_to(np.asarray(alpha, np.float32), (len(plan),))
    a_grid = np.nan_to_num(grid_of(plan, a), nan=0.0)
    pix = col_grid[ri[:, None], ci[None, :]]  # (H, W, 3), NaN where no patch
    pa = a_grid[ri[:, None], ci[None, :]] * (rin[:, None] & cin[None, :])
    pa = np.where(np.isnan(pix[..., 0]), 0.0, pa)[..., None]
    base = (
        np.full((out_h, out_w, 3), 255, np.float32)
        if background is None
        else np.asarray(background, np.float32)[..., :3]
    )
    out = base * (1 - pa) + np.nan_to_num(pix) * pa
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pca_colours(x: np.ndarray) -> np.ndarray:
    """(M, 3) colours from the first three principal components of embeddings (M, D)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return np.full((len(x), 3), 128.0)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = x @ vt[:3].T
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = np.percentile(comps, 2, axis=0), np.percentile(comps, 98, axis=0)
    return np.clip((comps - lo) / np.maximum(hi - lo, 1e-9), 0, 1) * 255


__all__ = [
    "LUT",
    "PALETTE",
    "SCALE_TEXT",
    "cell_index",
    "class_colour",
    "colormap",
    "grid_of",
    "pca_colours",
    "render",
]
