"""Turn a segmentation model's stitched maps into nuclei instances, and measure them.

- :func:`hovernet_instances`: the post-processing of HoVer-Net (Graham et al., *Medical Image
  Analysis* 58, 2019, section 3.4), step for step as its published code does it (the rules are in
  the function's docstring): the nuclear-pixel probability gives the foreground; the horizontal
  and vertical distance maps (each nucleus' pixels hold their normalised x / y offset from its
  centre, -1 to 1) jump back across the border of two touching nuclei, which a wide Sobel kernel
  turns into a band of high energy; markers are the foreground minus that band, and a
  marker-controlled watershed splits the foreground. Every threshold is a card field
  (``postprocess``).
- :func:`foreground_instances`: a two-class (background, nucleus) map split by a distance-transform
  watershed.
- :func:`stardist_candidates` / :func:`star_instances`: StarDist-style heads (Schmidt et al.,
  MICCAI 2018): an object probability and, per pixel, the distance to the object's border along
  ``n`` rays at angles ``2πk/n`` (y = sin, x = cos). Candidates are local maxima of the
  probability above a threshold; their star-convex polygons are drawn best first, and one that
  overlaps already-drawn nuclei by more than ``overlap`` of its area is suppressed (a rasterised
  form of StarDist's non-maximum suppression).
- :func:`merge_at_seams`: instance ids made unique per patch and pasted core by core; labels that
  touch across a seam between two patches' cores are one nucleus cut by the border and are merged
  (two distinct nuclei touching exactly on a seam are merged too: a known limit).
- :func:`instance_table`: per-instance morphometry (µm when the mpp is known) and the majority type.

All take float32 maps at one resolution and return int32 label images (0 = background).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_AREA_PX = 10  # instances smaller than this are dropped (noise)


def softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def hovernet_instances(
    fg_prob: np.ndarray,
    h_map: np.ndarray,
    v_map: np.ndarray,
    *,
    threshold: float = 0.5,
    edge: float = 0.4,
    min_area: int = MIN_AREA_PX,
    sobel_size: int = 21,
    opening: int = 5,
    blur: int = 3,
) -> np.ndarray:
    """Instances from a foreground probability and HoVer-Net's H and V distance maps (2-D arrays),
    by the rules of HoVer-Net's published post-processing (``models/hovernet/post_proc.py`` in
    vqdang/hover_net), re-implemented here:

    1. foreground = probability >= ``threshold``; its 4-connected parts under ``min_area`` px go;
    2. H and V are min-max normalised to [0, 1] over the whole map; their x and y derivatives are
       taken with a ``sobel_size``-tap Sobel kernel (OpenCV's construction, mirrored borders);
       each derivative is min-max normalised and inverted, so the steep *negative* slope between
       two touching nuclei (H and V jump from +1 back to -1) becomes ~1;
    3. energy = max of the two, kept on the foreground; distance = (1 - energy) on the foreground,
       blurred with OpenCV's ``blur``-tap Gaussian (sigma from the size), negated into basins;
    4. markers = foreground minus (energy >= ``edge``), holes filled, opened with an
       ``opening``-px ellipse (OpenCV's ``MORPH_ELLIPSE``), labelled (4-connected), parts under
       ``min_area`` px dropped;
    5. watershed of the distance from the markers, inside the foreground (scikit-image).
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    blb = _drop_small(_components(fg_prob >= threshold), min_area) > 0
    if not blb.any():
        return np.zeros(blb.shape, np.int32)
    h = _minmax(h_map.astype(np.float32))
    v = _minmax(v_map.astype(np.float32))
    sobel_h = 1.0 - _minmax(_sobel(h, sobel_size, axis=1))
    sobel_v = 1.0 - _minmax(_sobel(v, sobel_size, axis=0))
    energy = np.maximum(sobel_h, sobel_v) - (1.0 - blb)
    energy[energy < 0] = 0
    dist = (1.0 - energy) * blb
    if blur > 1:
        g = _gaussian_kernel(blur)
        dist = ndi.correlate1d(
            ndi.correlate1d(dist, g, axis=0, mode="mirror"), g, axis=1, mode="mirror"
        )
    markers = blb & ~(energy >= edge)
    markers = np.asarray(ndi.binary_fill_holes(markers), bool)
    if opening > 1:
        se = ellipse(opening)
        markers = ndi.binary_erosion(markers, se, border_value=1)
        markers = ndi.binary_dilation(markers, se, border_value=0)
    marker_ids = _drop_small(_components(markers), min_area)
    labels = watershed(-dist, markers=marker_ids, mask=blb)
    return _relabel(labels.astype(np.int32))


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected parts of a binary mask, labelled 1..n in raster order (0 = background)."""
    from skimage.measure import label

    return np.asarray(label(mask, connectivity=1, background=0), np.int32)


def _minmax(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to [0, 1] over the whole array (a constant array gives zeros), as OpenCV's
    ``normalize(..., NORM_MINMAX)``."""
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros(a.shape, np.float32)


def sobel_kernels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's Sobel kernels of ``size`` taps (odd): the first derivative, and the smoothing
    kernel across it (binomial). Both are built by repeated convolution: ``[1, 1]`` for each
    smoothing order, ``[-1, 1]`` for the derivative."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"a Sobel kernel needs an odd size >= 3 (got {size})")
    smooth = np.array([1.0])
    for _ in range(size - 1):
        smooth = np.convolve(smooth, [1.0, 1.0])
    deriv = np.array([1.0])
    for _ in range(size - 2):
        deriv = np.convolve(deriv, [1.0, 1.0])
    deriv = np.convolve(deriv, [-1.0, 1.0])
    return deriv, smooth


def _sobel(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The derivative of ``a`` along ``axis`` (1: x, 0: y), smoothed across it; float64,
    correlation with mirrored borders (OpenCV's default ``BORDER_REFLECT_101``)."""
    from scipy import ndimage as ndi

    deriv, smooth = sobel_kernels(size)
    out = ndi.correlate1d(a.astype(np.float64), deriv, axis=axis, mode="mirror")
    return ndi.correlate1d(out, smooth, axis=1 - axis, mode="mirror")


def _gaussian_kernel(size: int) -> np.ndarray:
    """OpenCV's Gaussian kernel of ``size`` taps with sigma derived from the size (sigma = 0):
    its fixed tables for 3 to 9 taps, else sampled with sigma = 0.3((size-1)/2 - 1) + 0.8."""
    fixed = {
        1: [1.0],
        3: [0.25, 0.5, 0.25],
        5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
        7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
        9: [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375]
        + [0.19921875, 0.1171875, 0.05078125, 0.015625],
    }
    if size in fixed:
        return np.asarray(fixed[size])
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = np.arange(size) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def ellipse(size: int) -> np.ndarray:
    """OpenCV's ``getStructuringElement(MORPH_ELLIPSE, (size, size))``: per row ``i``, the columns
    within ``round(c * sqrt(1 - (i - r)^2 / r^2))`` of the centre (r = c = size // 2)."""
    r = c = size // 2
    se = np.zeros((size, size), bool)
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = int(round(c * np.sqrt((r * r - dy * dy) / (r * r)))) if r else 0
            se[i, max(c - dx, 0) : min(c + dx + 1, size)] = True
    return se


def foreground_instances(
    fg_prob: np.ndarray,
    *,
    threshold: float = 0.5,
    min_area: int = MIN_AREA_PX,
    min_distance: int = 3,
) -> np.ndarray:
    """Instances from a foreground probability alone (distance-transform watershed)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    fg = np.asarray(ndi.binary_fill_holes(fg_prob >= threshold), bool)
    fg = _drop_small(_components(fg), min_area) > 0
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    dist = ndi.distance_transform_edt(fg)
    smooth = ndi.gaussian_filter(dist, 1.0)
    peaks = peak_local_max(
        smooth, min_distance=min_distance, labels=_components(fg), exclude_border=False
    )
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-smooth, markers=markers, mask=fg)
    return _relabel(_drop_small(labels.astype(np.int32), min_area))


def stardist_candidates(
    prob: np.ndarray, dist: np.ndarray, rows: slice, cols: slice, *, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima (3x3, computed over the whole map) of ``prob`` (h, w) inside ``rows, cols`` with
    probability >= ``threshold``: their (y, x) within the window, probabilities, and ray distances
    (k, n_rays) from ``dist`` (n_rays, h, w)."""
    from scipy import ndimage as ndi

    peak = (prob >= threshold) & (prob >= ndi.maximum_filter(prob, size=3, mode="nearest"))
    win = peak[rows, cols]
    ys, xs = np.nonzero(win)
    p = prob[rows, cols][ys, xs]
    d = dist[:, rows, cols][:, ys, xs].T
    return np.stack([ys, xs], axis=1), p.astype(np.float32), d.astype(np.float32)


def star_instances(
    shape: tuple[int, int],
    points: np.ndarray,
    probs: np.ndarray,
    dists: np.ndarray,
    *,
    overlap: float = 0.4,
    min_area: int = MIN_AREA_PX,
) -> np.ndarray:
    """Label image of the star-convex polygons at ``points`` (k, 2: y, x) with ray lengths ``dists``
    (k, n_rays), drawn in order of ``probs``; see the module docstring for the suppression."""
    from skimage.draw import polygon

    labels = np.zeros(shape, np.int32)
    if not len(points):
        return labels
    n = dists.shape[1]
    phi = 2 * np.pi * np.arange(n) / n
    sin, cos = np.sin(phi), np.cos(phi)
    nxt = 1
    for i in np.argsort(-probs, kind="stable"):
        y, x = points[i]
        if labels[int(y), int(x)]:
            continue  # inside a better nucleus
        rr, cc = polygon(y + dists[i] * sin, x + dists[i] * cos, shape=shape)
        if len(rr) < min_area:
            continue
        taken = labels[rr, cc] > 0
        if taken.mean() > overlap:
            continue
        labels[rr[~taken], cc[~taken]] = nxt
        nxt += 1
    return _relabel(_drop_small(labels, min_area))


def merge_at_seams(ids: np.ndarray, seam_rows: list[int], seam_cols: list[int]) -> np.ndarray:
    """Relabel ``ids`` (int, 0 = background) so labels that touch across a seam (row ``y``: between
    rows y-1 and y; column likewise) become one; returns consecutive int32 labels."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    uniq, inv = np.unique(ids, return_inverse=True)
    lab: np.ndarray = np.asarray(inv).reshape(ids.shape).astype(np.int64)  # 0 stays 0 (ids >= 0)
    if uniq[0] != 0:
        lab += 1
    n = int(lab.max()) + 1
    a_parts = [lab[y - 1] for y in seam_rows if 0 < y < lab.shape[0]]
    b_parts = [lab[y] for y in seam_rows if 0 < y < lab.shape[0]]
    a_parts += [lab[:, x - 1] for x in seam_cols if 0 < x < lab.shape[1]]
    b_parts += [lab[:, x] for x in seam_cols if 0 < x < lab.shape[1]]
    if a_parts:
        a, b = np.concatenate(a_parts), np.concatenate(b_parts)
        keep = (a > 0) & (b > 0) & (a != b)
        a, b = a[keep], b[keep]
    else:
        a = b = np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    out = np.where(lab > 0, comp.astype(np.int64)[lab] + 1, 0)
    return _relabel(out.astype(np.int32))


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    if labels.max() == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_area
    small[0] = False
    out = labels.copy()
    out[small[labels]] = 0
    return out


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[labels]


def instance_table(
    labels: np.ndarray,
    mpp: float | None,
    types: np.ndarray | None = None,
    background: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-instance measurements: ``area_um2``, ``perimeter_um``, ``major_um``, ``minor_um``
    (pixels when ``mpp`` is None), ``eccentricity``, ``solidity``, centroid ``x``/``y`` (px of
    ``labels``) and, given a per-pixel ``types`` map, the majority ``type`` index."""
    from skimage.measure import regionprops_table

    props = (
        "label",
        "area",
        "perimeter",
        "major_axis_length",
        "minor_axis_length",
        "eccentricity",
        "solidity",
        "centroid",
    )
    t: dict[str, Any] = (
        regionprops_table(labels, properties=props)
        if labels.max()
        else {
            p: np.zeros(0)
            for p in (
                "label",
                "area",
                "perimeter",
                "major_axis_length",
                "minor_axis_length",
                "eccentricity",
                "solidity",
                "centroid-0",
                "centroid-1",
            )
        }
    )
    s = mpp or 1.0
    out: dict[str, np.ndarray] = {
        "label": np.asarray(t["label"], np.int32),
        "area_um2": np.asarray(t["area"], np.float64) * s * s,
        "perimeter_um": np.asarray(t["perimeter"], np.float64) * s,
        "major_um": np.asarray(t["major_axis_length"], np.float64) * s,
        "minor_um": np.asarray(t["minor_axis_length"], np.float64) * s,
        "eccentricity": np.asarray(t["eccentricity"], np.float64),
        "solidity": np.asarray(t["solidity"], np.float64),
        "y": np.asarray(t["centroid-0"], np.float64),
        "x": np.asarray(t["centroid-1"], np.float64),
    }
    if types is not None:
        out["type"] = majority_type(labels, types, background)
    return out


def majority_type(
    labels: np.ndarray, types: np.ndarray, background: int | None = None
) -> np.ndarray:
    """The most frequent value of ``types`` inside each instance 1..max (index i-1). With a
    ``background`` type, an instance whose most frequent type is the background takes its second
    most frequent type when it has one (HoVer-Net's rule)."""
    n = int(labels.max())
    if n == 0:
        return np.zeros(0, np.int32)
    k = max(int(types.max()) + 1, (background or 0) + 1)
    m = labels > 0
    counts = np.zeros((n + 1, k), np.int64)
    np.add.at(counts, (labels[m], types[m].astype(np.int64)), 1)
    counts = counts[1:]
    best = counts.argmax(axis=1)
    if background is not None:
        other = counts.copy()
        other[:, background] = -1
        second = other.argmax(axis=1)
        has = other[np.arange(n), second] > 0
        best = np.where((best == background) & has, second, best)
    return best.astype(np.int32)


__all__ = [
    "foreground_instances",
    "hovernet_instances",
    "instance_table",
    "majority_type",
    "ellipse",
    "sobel_kernels",
    "softmax",
    "merge_at_seams",
    "star_instances",
    "stardist_candidates",
]
