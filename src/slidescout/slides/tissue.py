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
