"""What the offline expert planner sees in an image: tissue pieces, hotspots, and findings."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from slidescout.slides.tissue import label_components, tissue_mask
from slidescout.tools.experts.nuclei import NucleiStats, hematoxylin, segment_nuclei

CLASSES = ("tumor", "lymphocytes", "necrosis", "normal")
STROMA_COVER = 0.05  # nuclear cover of ordinary stroma at 40x (SynthPath calibration)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def clean_guides(rgb: np.ndarray) -> np.ndarray:
    """Whiten GIANT-style guides: green lines, the red border and the grey/black coordinate labels.

    H&E has none of these colours: nuclei are saturated purple, never neutral grey or black.
    """
    from scipy import ndimage as ndi

    img = rgb.astype(np.int16)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    mx, mn = img.max(axis=2), img.min(axis=2)
    guide = ((g > r + 15) & (g > b + 15)) | ((r > 180) & (g < 80) & (b < 80))
    text = (mx < 110) & (mx - mn < 40)  # black label outlines (and JPEG halos around them)
    if text.any():
        guide |= np.asarray(ndi.binary_dilation(text, iterations=3), bool)
    out = rgb.copy()
    out[guide] = 245
    return out


@dataclass(frozen=True)
class Piece:
    """A tissue piece on the overview, in level-0 pixels."""

    box: tuple[int, int, int, int]
    area_px0: float


@dataclass(frozen=True)
class Overview:
    pieces: tuple[Piece, ...]
    candidates: tuple[tuple[int, int, int, int], ...]  # ranked mid-magnification boxes
    slide_box: tuple[int, int, int, int]


@lru_cache(maxsize=64)
def analyze_overview(
    data: bytes, box: tuple[int, int, int, int], mpp: float | None, mid_side: int
) -> Overview:
    """Tissue pieces and a ranked list of level-0 boxes of ``mid_side`` px that cover the tissue."""
    from scipy import ndimage as ndi

    rgb = clean_guides(decode(data))
    h, w = rgb.shape[:2]
    sx, sy = box[2] / w, box[3] / h
    opened = ndi.binary_opening(tissue_mask(rgb), iterations=1)
    mask = np.asarray(ndi.binary_fill_holes(ndi.binary_closing(opened, iterations=2)), bool)
    labels, n = label_components(mask)
    pieces = []
    min_px = max(20, int(0.002 * w * h))
    for i, sl in enumerate(ndi.find_objects(labels), 1):
        if sl is None:
            continue
        area = int((labels[sl] == i).sum())
        if area < min_px:
            continue
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        pieces.append(
            Piece(
                (
                    int(box[0] + x0 * sx),
                    int(box[1] + y0 * sy),
                    int((x1 - x0) * sx),
                    int((y1 - y0) * sy),
                ),
                area * sx * sy,
            )
        )
    pieces.sort(key=lambda p: -p.area_px0)
    # candidate windows: a grid over each piece, ranked by tissue cover, then by haematoxylin texture
    hem = hematoxylin(rgb)
    cands: list[tuple[float, tuple[int, int, int, int]]] = []
    step = mid_side * 0.9
    for p in pieces:
        px, py, pw, ph = p.box
        nx, ny = max(1, int(np.ceil(pw / step))), max(1, int(np.ceil(ph / step)))
        for j in range(ny):
            for i in range(nx):
                cx = px + (i + 0.5) * pw / nx
                cy = py + (j + 0.5) * ph / ny
                # keep the window on the slide when the slide is larger than the window
                bx = int(
                    min(max(cx - mid_side / 2, box[0]), max(box[0], box[0] + box[2] - mid_side))
                )
                by = int(
                    min(max(cy - mid_side / 2, box[1]), max(box[1], box[1] + box[3] - mid_side))
                )
                x0, y0 = int((bx - box[0]) / sx), int((by - box[1]) / sy)
                x1, y1 = int((bx + mid_side - box[0]) / sx), int((by + mid_side - box[1]) / sy)
                win = mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
                if win.size == 0 or win.mean() < 0.15:
                    continue
                tex = (
                    float(hem[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)][win].std())
                    if win.any()
                    else 0.0
                )
                cands.append((win.mean() + 5 * tex, (bx, by, mid_side, mid_side)))
    cands.sort(key=lambda c: -c[0])
    # one per piece first (breadth), then the rest
    ordered: list[tuple[int, int, int, int]] = []
    for p in pieces:
        for _, c in cands:
            if _inside(c, p.box) and c not in ordered:
                ordered.append(c)
                break
    ordered += [c for _, c in cands if c not in ordered]
    return Overview(tuple(pieces), tuple(ordered), box)


def _inside(c: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    cx, cy = c[0] + c[2] / 2, c[1] + c[3] / 2
    return box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]


@lru_cache(maxsize=256)
def hotspots(
    data: bytes, box: tuple[int, int, int, int], mpp: float | None, block_um: float = 120.0
) -> list[tuple[float, tuple[int, int]]]:
    """Blocks of a mid-magnification view that look least like the view's typical tissue.

    Returns (score, level-0 centre) pairs, most unusual first. The score combines the block's
    nuclear cover and nuclear size against the median block (robust z-scores); tissue without
    nuclei (necrosis) scores high too.
    """
    rgb = clean_guides(decode(data))
    h, w = rgb.shape[:2]
    view_mpp = mpp or 1.0
    bs = max(8, int(block_um / view_mpp))
    tissue = tissue_mask(rgb)
    hem = hematoxylin(rgb)
    nuc = (
        hem > max(0.05, float(np.percentile(hem[tissue], 75)) if tissue.any() else 0.05)
    ) & tissue
    rows = []
    for y in range(0, h - bs + 1, max(1, bs // 2)):
        for x in range(0, w - bs + 1, max(1, bs // 2)):
            t = tissue[y : y + bs, x : x + bs].mean()
            if t < 0.6:
                continue
            n = nuc[y : y + bs, x : x + bs].mean() / max(t, 1e-6)
            dark = float(hem[y : y + bs, x : x + bs][tissue[y : y + bs, x : x + bs]].mean())
            rows.append((x + bs / 2, y + bs / 2, n, dark))
    if not rows:
        return []
    arr = np.array(rows)
    out = []
    for col in (2, 3):
        med = np.median(arr[:, col])
        mad = np.median(np.abs(arr[:, col] - med)) + 1e-3
        out.append(np.abs(arr[:, col] - med) / mad)
    score = out[0] + out[1]
    sx, sy = box[2] / w, box[3] / h
    order = np.argsort(-score)
    return [
        (float(score[i]), (int(box[0] + arr[i, 0] * sx), int(box[1] + arr[i, 1] * sy)))
        for i in order[:20]
    ]


@dataclass
class Finding:
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    stats: NucleiStats
    step: int


def classify(stats: NucleiStats) -> tuple[str, float]:
    """A lesion class from nuclear morphometry at ~0.25 µm/px (40x), with a rough confidence.

    Thresholds were set on SynthPath views (docs/benchmarks.md): necrosis has almost no nuclear
    area; lymphocytic infiltrates and carcinoma have two to three times the nuclear cover of
    stroma, carcinoma with larger (> ~29 µm²) and more variable nuclei.
    """
    if stats.tissue_fraction < 0.2:
        return "normal", 0.3
    dark = stats.dark_fraction
    area = stats.mean_area_um2 or 0.0
    cv = stats.area_cv or 0.0
    base = STROMA_COVER
    if dark < 0.6 * base or stats.count < 5:
        return "necrosis", min(0.95, 0.6 + 0.4 * (1 - dark / max(base, 1e-3)))
    if dark > 1.5 * base:
        if area > 29.0 or (cv > 0.5 and area > 26.0):
            return "tumor", min(0.95, 0.55 + (area - 29.0) / 20 + (dark / base - 1.5) / 4)
        return "lymphocytes", min(0.95, 0.55 + (dark / base - 1.5) / 3 + max(0.0, 0.45 - cv))
    return "normal", 0.6


@lru_cache(maxsize=256)
def morphometry(data: bytes, mpp: float | None, block_um: float = 100.0) -> NucleiStats:
    """Morphometry of a detail view: the whole view, or its most cellular ~100 µm block when that
    block is hypercellular (a small infiltrate or tumour focus rarely fills a view, and measuring
    the whole view would dilute it). Necrosis (few nuclei) is judged on the whole view."""
    rgb = clean_guides(decode(data))
    labels, whole = segment_nuclei(rgb, mpp)
    h, w = labels.shape
    bs = int(block_um / (mpp or 0.5))
    if bs * 1.5 >= min(h, w):
        return whole
    tissue = tissue_mask(rgb)
    nuc = labels > 0
    best, best_score = None, -1.0
    step = max(8, bs // 2)
    for y in range(0, h - bs + 1, step):
        for x in range(0, w - bs + 1, step):
            t = tissue[y : y + bs, x : x + bs]
            if t.mean() < 0.7:
                continue
            score = float(nuc[y : y + bs, x : x + bs][t].mean())  # the most cellular block
            if score > best_score:
                best, best_score = (y, x), score
    if best is None:
        return whole
    y, x = best
    block = segment_nuclei(rgb[y : y + bs, x : x + bs], mpp)[1]
    return block if block.dark_fraction > 2.0 * STROMA_COVER else whole
