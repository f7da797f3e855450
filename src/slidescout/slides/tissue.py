"""Fast tissue detection on a low-resolution RGB image (thumbnail scale)."""

from __future__ import annotations

import numpy as np


def tissue_mask(
    rgb: np.ndarray, *, min_saturation: float = 0.07, max_brightness: float = 0.92
) -> np.ndarray:
    """Boolean mask of stained tissue: saturated and not near-white, pen-free for typical H&E.

    Uses HSV-style saturation ((max-min)/max) and brightness, thresholds chosen for H&E on glass.
    """
    img = rgb.astype(np.float32) / 255.0
    mx = img.max(axis=2)
    mn = img.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return (
        (sat > min_saturation) & (mx < max_brightness + 0.07) & (img.mean(axis=2) < max_brightness)
    )


def tissue_fraction(rgb: np.ndarray) -> float:
    return float(tissue_mask(rgb).mean()) if rgb.size else 0.0


def clam_mask(rgb: np.ndarray, *, sthresh: int = 8, mthresh: int = 7, close: int = 4) -> np.ndarray:
    """Tissue as CLAM's segmentation presets find it: the HSV saturation channel, median-blurred
    (``mthresh`` px), above ``sthresh`` (0-255), then a morphological closing of ``close`` px."""
    from PIL import Image, ImageFilter

    sat = (
        Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), "RGB")
        .convert("HSV")
        .getchannel("S")
    )
    sat = sat.filter(ImageFilter.MedianFilter(mthresh | 1))
    mask = Image.fromarray(((np.asarray(sat) > sthresh) * 255).astype(np.uint8), "L")
    if close > 0:
        k = 2 * close + 1
        mask = mask.filter(ImageFilter.MaxFilter(k)).filter(ImageFilter.MinFilter(k))
    return np.asarray(mask) > 127


def clam_grid(mask: np.ndarray, region: tuple[int, int, int, int], patch_size: int) -> np.ndarray:
    """Level-0 top-left corners (N, 2) of the ``patch_size`` grid over ``region`` whose patches pass
    CLAM's "four_pt" test: the four points at the centre ± a quarter of the patch lie on tissue.
    ``mask`` covers ``region`` (x, y, w, h in level-0 px) at any scale."""
    x0, y0, w, h = region
    mh, mw = mask.shape
    xs = np.arange(x0, x0 + w - patch_size + 1, patch_size)
    ys = np.arange(y0, y0 + h - patch_size + 1, patch_size)
    if not len(xs) or not len(ys):
        return np.zeros((0, 2), dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys)
    ok = np.ones(gx.shape, dtype=bool)
    q = patch_size / 4
    for dx in (-q, q):
        for dy in (-q, q):
            px = np.clip(((gx + patch_size / 2 + dx - x0) * mw / w).astype(np.int64), 0, mw - 1)
            py = np.clip(((gy + patch_size / 2 + dy - y0) * mh / h).astype(np.int64), 0, mh - 1)
            ok &= mask[py, px]
    return np.stack([gx[ok], gy[ok]], axis=1).astype(np.int64)


def label_components(
    mask: np.ndarray, structure: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: (int32 labels, 0 = background; their number).

    ``scipy.ndimage.label`` returns either the labels and their count or, with an output array,
    the count only; this is the first form, typed."""
    from scipy import ndimage

    found = ndimage.label(mask, structure=structure)
    if not isinstance(found, tuple):  # scipy returns the count alone only with an output array
        raise TypeError("scipy.ndimage.label returned no labels")
    labels, n = found
    return np.asarray(labels, np.int32), int(n)
