"""Stain normalisation before a model: Macenko, Vahadane and Reinhard, fitted once per slide (or
region) and applied to every patch.

- **Macenko** (Macenko et al., ISBI 2009): optical density ``-ln((I + 1) / Io)`` (Io = 240) of
  the pixels whose every channel is above ``beta`` = 0.15; the plane of the two largest
  eigenvectors of its covariance; the stain vectors at the 1st and 99th percentile of the angle
  in that plane (haematoxylin first: the larger red density); concentrations by least squares,
  scaled so their 99th percentiles match the target's; the image rebuilt with the target's
  stain matrix. The default target is the reference matrix and maximum concentrations of
  Macenko's published implementation (as torchstain and others carry them).
- **Vahadane** (Vahadane et al., IEEE TMI 2016): the same optical density, but the stain
  matrix from a sparse non-negative factorisation ``OD ≈ W H`` (W ≥ 0, H ≥ 0, an L1 penalty
  ``lam`` = 0.1 on H), here by multiplicative updates started from the Macenko estimate; the
  concentrations and rebuild as above.
- **Reinhard** (Reinhard et al., IEEE CG&A 2001): each channel of CIE L*a*b* shifted and scaled
  to the target's mean and standard deviation (needs a target image).

The source is fitted on the tissue pixels of a low-resolution view of the slide (or of the
region a tool looks at), so every patch of one slide gets the same transform; a patch alone is
often too small or too empty to estimate stains from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.errors import ConfigError
from slidescout.slides.tissue import tissue_mask

METHODS = ("macenko", "vahadane", "reinhard")
IO = 240.0
BETA = 0.15
ALPHA = 1.0  # percentile of the angle (Macenko)
LAMBDA = 0.1  # L1 weight on the concentrations (Vahadane)
# Macenko's published reference: stain vectors (columns H, E) and 99th-percentile concentrations
HE_REF = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
MAXC_REF = np.array([1.9705, 1.0308])
MAX_FIT_PIXELS = 200_000


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) float64 optical density of uint8 pixels, as Macenko's reference code computes it."""
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1.0) / IO)


def macenko_stains(od: np.ndarray, alpha: float = ALPHA, beta: float = BETA) -> np.ndarray:
    """(3, 2) stain matrix, haematoxylin first, from (N, 3) optical densities."""
    od_hat = od[~np.any(od < beta, axis=1)]
    if len(od_hat) < 10:
        raise ValueError("too few stained pixels to estimate the stains")
    _, vecs = np.linalg.eigh(np.cov(od_hat.T))
    plane = vecs[:, 1:3]
    t = od_hat @ plane
    phi = np.arctan2(t[:, 1], t[:, 0])
    lo, hi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v_lo = plane @ np.array([np.cos(lo), np.sin(lo)])
    v_hi = plane @ np.array([np.cos(hi), np.sin(hi)])
    return np.stack([v_lo, v_hi] if v_lo[0] > v_hi[0] else [v_hi, v_lo], axis=1)


def vahadane_stains(
    od: np.ndarray, lam: float = LAMBDA, beta: float = BETA, iterations: int = 300
) -> np.ndarray:
    """(3, 2) stain matrix, haematoxylin first, by sparse non-negative factorisation."""
    od_hat = od[~np.any(od < beta, axis=1)]
    if len(od_hat) < 10:
        raise ValueError("too few stained pixels to estimate the stains")
    v = od_hat.T  # (3, N)
    w = np.abs(macenko_stains(od, beta=beta)) + 1e-3
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    h = np.maximum(np.linalg.lstsq(w, v, rcond=None)[0], 1e-3)
    eps = 1e-9
    for _ in range(iterations):
        h *= (w.T @ v) / (w.T @ w @ h + lam + eps)
        w *= (v @ h.T) / (w @ (h @ h.T) + eps)
        norm = np.linalg.norm(w, axis=0, keepdims=True) + eps
        w /= norm
        h *= norm.T
    return w if w[0, 0] >= w[0, 1] else w[:, ::-1]


def concentrations(od: np.ndarray, stains: np.ndarray) -> np.ndarray:
    """(2, N) stain concentrations of (N, 3) densities by least squares."""
    return np.linalg.pinv(stains) @ od.T


@dataclass
class StainState:
    stains: np.ndarray  # (3, 2)
    max_c: np.ndarray  # (2,)


class StainNormalizer:
    """Fit a target (or take Macenko's reference), fit a source once, then normalise patches."""

    def __init__(self, method: str, target: np.ndarray | None = None) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown stain normalisation {method!r}; use {', '.join(METHODS)}")
        self.method = method
        self.target: StainState | None = None
        self.lab_target: tuple[np.ndarray, np.ndarray] | None = None
        self.source: Any = None
        if target is not None:
            self.fit_target(target)
        elif method == "reinhard":
            raise ConfigError(
                "Reinhard normalisation needs a target image (card field stain_norm.target, or "
                "--stain-target): an image stained the way the model was trained"
            )
        else:
            self.target = StainState(HE_REF.copy(), MAXC_REF.copy())

    # -- fitting -----------------------------------------------------------------------------
    def _state(self, rgb: np.ndarray) -> StainState:
        od = optical_density(rgb)
        est = macenko_stains if self.method == "macenko" else vahadane_stains
        stains = est(od)
        c = concentrations(od, stains)
        return StainState(stains, np.percentile(c, 99, axis=1))

    def fit_target(self, rgb: np.ndarray) -> None:
        rgb = _sample(rgb)
        if self.method == "reinhard":
            self.lab_target = _lab_stats(rgb)
        else:
            self.target = self._state(rgb)

    def fit_source(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Fit the source on ``rgb`` (H, W, 3), or on its pixels where ``mask`` is true."""
        px = rgb.reshape(-1, 3) if mask is None else rgb[mask]
        px = _sample(px)
        try:
            self.source = _lab_stats(px) if self.method == "reinhard" else self._state(px)
        except ValueError as exc:
            raise ConfigError(f"stain normalisation ({self.method}): {exc}") from None

    # -- applying ----------------------------------------------------------------------------
    def __call__(self, tile: np.ndarray) -> np.ndarray:
        """``tile`` (H, W, 3) uint8, normalised (a source must be fitted first)."""
        if self.source is None:
            raise RuntimeError("fit_source() first")
        h, w = tile.shape[:2]
        if self.method == "reinhard":
            assert self.lab_target is not None
            return _reinhard(tile, self.source, self.lab_target)
        assert self.target is not None
        od = optical_density(tile)
        c = concentrations(od, self.source.stains)
        c /= (self.source.max_c / self.target.max_c)[:, None]
        out = IO * np.exp(-(self.target.stains @ c))
        return np.minimum(out, 255).T.reshape(h, w, 3).astype(np.uint8)


def _sample(px: np.ndarray) -> np.ndarray:
    px = px.reshape(-1, 3)
    if len(px) > MAX_FIT_PIXELS:
        idx = np.random.default_rng(0).choice(len(px), MAX_FIT_PIXELS, replace=False)
        px = px[np.sort(idx)]
    return px


def _lab_stats(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import rgb2lab

    lab = rgb2lab(px.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def _reinhard(
    tile: np.ndarray, src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(tile.astype(np.float64) / 255.0)
    lab = (lab - src[0]) / np.maximum(src[1], 1e-6) * dst[1] + dst[0]
    return (np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)


def read_target(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"stain target {path}: not a readable image ({exc})") from None


def normalizer_for(slide: Any, method: str, target: Path | None, region: Any = None) -> Any:
    """A :class:`StainNormalizer` whose source is fitted on the tissue of ``region`` (or of the
    whole slide)."""
    norm = StainNormalizer(method, read_target(target) if target is not None else None)
    view = slide.thumbnail(2048) if region is None else slide.read(region, max_side=1024)
    rgb = np.asarray(view.image)[..., :3]
    mask = tissue_mask(rgb)
    norm.fit_source(rgb, mask if mask.sum() >= 100 else None)
    return norm


__all__ = [
    "HE_REF",
    "MAXC_REF",
    "METHODS",
    "StainNormalizer",
    "concentrations",
    "macenko_stains",
    "normalizer_for",
    "optical_density",
    "vahadane_stains",
]
