"""Where things are: tissue pieces and lesions, as level-0 polygons and low-resolution masks.

Masks live on a coarse grid (``scale`` level-0 pixels per mask pixel, a power of two so the
long side is at most about 1,500 mask pixels). The renderer upsamples them lazily; a mask
pixel ``(i, j)`` covers level-0 ``[j*scale, (j+1)*scale) x [i*scale, (i+1)*scale)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from slidescout.slides.synth.textures import CLASSES, periodic_noise

_SUPERSAMPLE = 4
ABNORMAL = ("tumor", "lymphocytes", "necrosis")


@dataclass
class Region:
    """A tissue piece or a lesion: polygon (N, 2) of level-0 ``(x, y)``, its box and a soft mask.

    ``mask`` is float32 coverage (0-1) on the coarse grid, whose top-left cell is ``origin``
    (column, row) in mask pixels.
    """

    id: str
    polygon: np.ndarray
    cls: str = "tissue"
    mask: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)

    @property
    def box(self) -> tuple[int, int, int, int]:
        x0, y0 = np.floor(self.polygon.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.polygon.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


@dataclass
class Layout:
    width: int
    height: int
    scale: int
    tissue: np.ndarray  # float32 soft mask of all pieces on the coarse grid
    pieces: list[Region]
    tone: np.ndarray  # float32 (rows, cols, 2): smooth multipliers of h and e (staining unevenness)
    lesions: list[Region] = field(default_factory=list)
    holes: list[Region] = field(default_factory=list)  # vessel lumens and fat vacuoles
    primary: str = "normal"
    quadrant_clear: bool = False  # the single primary lesion lies inside one quadrant


def mask_scale(width: int, height: int) -> int:
    """Level-0 pixels per mask pixel: a power of two, at least 2, long side <= ~1,500."""
    return (
        max(2, 2 ** math.ceil(math.log2(max(width, height) / 1500)))
        if max(width, height) > 3000
        else 2
    )


def blob(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    *,
    wobble: float,
    n: int = 160,
    harmonics: int = 6,
    angle: float | None = None,
) -> np.ndarray:
    """An irregular closed outline (n, 2) of level-0 ``(x, y)`` around an ellipse."""
    from scipy import ndimage  # ~0.5 s to import: only when a slide is generated

    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 2 + harmonics):
        r += wobble / k**0.8 * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r += ndimage.gaussian_filter1d(rng.normal(0.0, wobble * 0.25, n), 2.0, mode="wrap")
    r = np.clip(r, 0.45, None)
    a = rng.uniform(0, np.pi) if angle is None else angle
    x, y = rx * r * np.cos(t), ry * r * np.sin(t)
    return np.stack([cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a)], 1)


def rasterise(poly: np.ndarray, scale: int, pad: int = 3) -> tuple[np.ndarray, tuple[int, int]]:
    """Anti-aliased coverage of ``poly`` on the coarse grid, over its bounding cells plus ``pad``:
    (mask, (col0, row0)); ``col0``/``row0`` may be negative near the slide's edge."""
    from scipy import ndimage  # ~0.5 s to import: only when a slide is generated

    pts = poly / scale  # in mask pixels, continuous (corner) coordinates
    c0, r0 = np.floor(pts.min(axis=0)).astype(int) - pad
    c1, r1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    rows, cols = int(r1 - r0), int(c1 - c0)
    s = _SUPERSAMPLE
    canvas = Image.new("L", (cols * s, rows * s), 0)
    fine_pts = (pts - [c0, r0]) * s - 0.5  # PIL puts pixel centres on integers
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in fine_pts], fill=255)
    fine = np.asarray(canvas, np.float32) / 255.0
    mask = fine.reshape(rows, s, cols, s).mean(axis=(1, 3))
    return ndimage.gaussian_filter(mask, 0.6).astype(np.float32), (int(c0), int(r0))


def paste_max(grid: np.ndarray, mask: np.ndarray, origin: tuple[int, int]) -> None:
    """``grid = max(grid, mask)`` with ``mask``'s top-left cell at ``origin`` (col, row), clipped."""
    c0, r0 = origin
    rows, cols = mask.shape
    gr0, gc0 = max(0, r0), max(0, c0)
    gr1, gc1 = min(grid.shape[0], r0 + rows), min(grid.shape[1], c0 + cols)
    if gr1 <= gr0 or gc1 <= gc0:
        return
    sub = mask[gr0 - r0 : gr1 - r0, gc0 - c0 : gc1 - c0]
    np.maximum(grid[gr0:gr1, gc0:gc1], sub, out=grid[gr0:gr1, gc0:gc1])


def _piece_cells(n: int, landscape: bool) -> list[tuple[float, float, float, float]]:
    """Cells (x, y, w, h as fractions of the slide) that hold one tissue piece each."""
    if n <= 1:
        cells = [(0.0, 0.0, 1.0, 1.0)]
    elif n == 2:
        cells = [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 0.5, 1.0)]
    elif n == 3:
        cells = [(0.0, 0.0, 1 / 3, 1.0), (1 / 3, 0.0, 1 / 3, 1.0), (2 / 3, 0.0, 1 / 3, 1.0)]
    else:
        cells = [
            (0.0, 0.0, 0.5, 0.5),
            (0.5, 0.0, 0.5, 0.5),
            (0.0, 0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5, 0.5),
        ]
    if not landscape:
        cells = [(y, x, h, w) for x, y, w, h in cells]
    return cells


def tissue_layout(
    rng: np.random.Generator, width: int, height: int, n_pieces: int, mpp: float = 0.25
) -> Layout:
    """``n_pieces`` (1-4) separate irregular tissue pieces, one per cell of a grid."""
    scale = mask_scale(width, height)
    grid = (-(-height // scale), -(-width // scale))
    tissue = np.zeros(grid, np.float32)
    pieces: list[Region] = []
    for i, (fx, fy, fw, fh) in enumerate(_piece_cells(n_pieces, width >= height)):
        cw, ch = fw * width, fh * height
        margin = 0.06 * min(width, height)
        rx = rng.uniform(0.34, 0.42) * cw - margin / 2
        ry = rng.uniform(0.34, 0.42) * ch - margin / 2
        cx = fx * width + cw / 2 + rng.uniform(-0.04, 0.04) * cw
        cy = fy * height + ch / 2 + rng.uniform(-0.04, 0.04) * ch
        poly = blob(
            rng, cx, cy, rx, ry, wobble=0.12, n=240, harmonics=9, angle=rng.uniform(-0.2, 0.2)
        )
        poly[:, 0] = poly[:, 0].clip(margin / 2, width - margin / 2)
        poly[:, 1] = poly[:, 1].clip(margin / 2, height - margin / 2)
        mask, origin = rasterise(poly, scale)
        paste_max(tissue, mask, origin)
        pieces.append(Region(id=f"tissue-{i + 1}", polygon=poly))
    return Layout(
        width=width,
        height=height,
        scale=scale,
        tissue=tissue,
        pieces=pieces,
        tone=_tone(rng, grid, scale, mpp),
    )


def _tone(rng: np.random.Generator, grid: tuple[int, int], scale: int, mpp: float) -> np.ndarray:
    """Smooth, non-repeating staining unevenness: multipliers of h and e around 1."""
    sigma = max(1.0, 350.0 / (mpp * scale))  # ~0.35 mm blotches, on broader swells
    out = np.empty((*grid, 2), np.float32)
    for band, amount in ((0, 0.07), (1, 0.10)):
        n = (
            periodic_noise(rng, grid, sigma)
            + 0.8 * periodic_noise(rng, grid, 3 * sigma)
            + 0.5 * periodic_noise(rng, grid, max(1.0, sigma / 3.5))
        )
        n /= n.std() or 1.0
        out[..., band] = 1.0 + amount * np.clip(n, -2.5, 2.5)
    return out


def _edge_distance(mask: np.ndarray) -> np.ndarray:
    """For each pixel inside ``mask``, its distance to the nearest pixel outside (float64)."""
    from scipy import ndimage  # ~0.5 s to import: only when a slide is generated

    return np.asarray(ndimage.distance_transform_edt(mask), np.float64)


def add_holes(
    rng: np.random.Generator, layout: Layout, mpp: float, per_piece: tuple[int, int] = (1, 6)
) -> None:
    """Punch vessel lumens / fat vacuoles (40-250 microns) into the tissue, away from lesions."""

    s = layout.scale
    inside = _edge_distance(layout.tissue > 0.5) * s
    ys, xs = np.nonzero(inside > 0)
    if len(ys) == 0:
        return
    keep_out = [(*les.centre, max(les.box[2], les.box[3]) * 0.75) for les in layout.lesions]
    n_total = sum(int(rng.integers(per_piece[0], per_piece[1] + 1)) for _ in layout.pieces)
    for _ in range(n_total):
        for _attempt in range(50):
            radius = rng.uniform(20, 125) / mpp
            i = int(rng.integers(len(ys)))
            cx, cy = (xs[i] + rng.random()) * s, (ys[i] + rng.random()) * s
            if inside[ys[i], xs[i]] < radius * 1.5 + 2 * s:
                continue
            if any(math.hypot(cx - px, cy - py) < radius * 1.4 + pr for px, py, pr in keep_out):
                continue
            poly = blob(
                rng, cx, cy, radius, radius * rng.uniform(0.5, 0.9), wobble=0.08, n=48, harmonics=3
            )
            mask, origin = rasterise(poly, s, pad=2)
            _subtract(layout.tissue, mask, origin)
            layout.holes.append(
                Region(id=f"hole-{len(layout.holes) + 1}", polygon=poly, cls="hole")
            )
            keep_out.append((cx, cy, radius * 1.3))
            break


def _subtract(grid: np.ndarray, mask: np.ndarray, origin: tuple[int, int]) -> None:
    c0, r0 = origin
    rows, cols = mask.shape
    gr0, gc0 = max(0, r0), max(0, c0)
    gr1, gc1 = min(grid.shape[0], r0 + rows), min(grid.shape[1], c0 + cols)
    if gr1 > gr0 and gc1 > gc0:
        sub = mask[gr0 - r0 : gr1 - r0, gc0 - c0 : gc1 - c0]
        grid[gr0:gr1, gc0:gc1] = np.minimum(grid[gr0:gr1, gc0:gc1], 1.0 - sub)


def _inside_quadrant(
    box: tuple[int, int, int, int], width: int, height: int, margin: float
) -> bool:
    x, y, w, h = box
    mx, my = width / 2, height / 2
    return (x + w + margin <= mx or x - margin >= mx) and (y + h + margin <= my or y - margin >= my)


def place_lesions(
    rng: np.random.Generator,
    layout: Layout,
    classes: list[str],
    diameter: tuple[float, float],
    *,
    want_quadrant: bool = False,
) -> None:
    """Put one lesion per entry of ``classes`` inside the tissue, apart from each other.

    A lesion that does not fit is shrunk, then left out. With ``want_quadrant`` the first
    lesion is kept inside one quadrant of the slide (so "where is it?" has one answer).
    """

    s = layout.scale
    inside = _edge_distance(layout.tissue > 0.5) * s  # level-0 px to the edge
    ys, xs = np.nonzero(inside > 0)
    if len(ys) == 0:
        return
    placed: list[tuple[float, float, float]] = []
    for k, cls in enumerate(classes):
        radius = rng.uniform(*diameter) / 2
        for attempt in range(400):
            if attempt and attempt % 100 == 0:
                radius *= 0.8
            extent = radius * 1.45
            i = int(rng.integers(len(ys)))
            cx = (xs[i] + rng.random()) * s
            cy = (ys[i] + rng.random()) * s
            if inside[ys[i], xs[i]] < extent + 0.05 * radius + 2 * s:
                continue
            if any(
                math.hypot(cx - px, cy - py) < extent + pr + 0.6 * (radius + pr)
                for px, py, pr in placed
            ):
                continue
            poly = blob(
                rng,
                cx,
                cy,
                radius * rng.uniform(0.85, 1.15),
                radius * rng.uniform(0.75, 1.0),
                wobble=0.16,
                n=128,
                harmonics=7,
            )
            region = Region(id=f"lesion-{k + 1}", polygon=poly, cls=cls)
            if (
                want_quadrant
                and k == 0
                and not _inside_quadrant(
                    region.box, layout.width, layout.height, 0.02 * min(layout.width, layout.height)
                )
            ):
                continue
            rows = np.clip(((poly[:, 1] / s).astype(int)), 0, inside.shape[0] - 1)
            cols = np.clip(((poly[:, 0] / s).astype(int)), 0, inside.shape[1] - 1)
            if (inside[rows, cols] < 2 * s).any():
                continue
            region.mask, region.origin = rasterise(poly, s)
            layout.lesions.append(region)
            placed.append((cx, cy, extent))
            if want_quadrant and k == 0:
                layout.quadrant_clear = True
            break
    for n, region in enumerate(layout.lesions, 1):
        region.id = f"lesion-{n}"


def lesion_classes(rng: np.random.Generator, primary: str, n_lesions: int) -> list[str]:
    """The classes of a slide's lesions: 1-3 of the primary (abnormal) class, the rest normal."""
    if primary not in CLASSES:
        raise ValueError(f"unknown lesion class {primary!r}; expected one of {', '.join(CLASSES)}")
    if primary == "normal" or n_lesions <= 0:
        return ["normal"] * max(0, n_lesions)
    n_primary = 1 if rng.random() < 0.5 else int(rng.integers(1, 4))
    n_primary = min(n_primary, n_lesions)
    return [primary] * n_primary + ["normal"] * (n_lesions - n_primary)
