"""Colour matching: a lesion's mean colour equals the surrounding tissue's at thumbnail scale.

Crowded dark nuclei make a region darker and bluer on average; the lesion's background (stroma,
cytoplasm) is made paler to compensate, so only high magnification reveals the class. The mean
is estimated on random points of the plane, as the renderer combines the periodic tiles.
"""

from __future__ import annotations

import numpy as np

from slidescout.slides.synth.stain import Stain
from slidescout.slides.synth.textures import ClassTexture, Parts

_N_POINTS = 120_000


def _sample(parts: Parts, ys: np.ndarray, xs: np.ndarray) -> Parts:
    r, c = parts.shape
    iy, ix = ys % r, xs % c

    def take(a):
        return a[iy, ix] if isinstance(a, np.ndarray) else a

    return Parts(
        bg_h=take(parts.bg_h),
        bg_e=take(parts.bg_e),
        size=iy.shape,
        cov=take(parts.cov),
        nuc_h=take(parts.nuc_h),
        nuc_e=take(parts.nuc_e),
    )


def _gather(tiles: list[tuple[np.ndarray, np.ndarray]], ys: np.ndarray, xs: np.ndarray):
    return [
        (h[ys % h.shape[0], xs % h.shape[1]], e[ys % e.shape[0], xs % e.shape[1]]) for h, e in tiles
    ]


class _Sampler:
    """The texture gathered at fixed random points of the plane."""

    def __init__(self, tex: ClassTexture, rng: np.random.Generator) -> None:
        ys = rng.integers(0, 1 << 30, _N_POINTS)
        xs = rng.integers(0, 1 << 30, _N_POINTS)
        self.parts = [_sample(p, ys, xs) for p in tex.parts]
        own = tex.own or [[] for _ in tex.parts]
        self.own = [_gather(o, ys, xs) for o in own]
        self.extra = _gather(tex.extra, ys, xs)

    def mean_rgb(
        self, lut: np.ndarray, part: int = 0, dh: float = 0.0, de: float = 0.0, kn: float = 1.0
    ) -> np.ndarray:
        h, e = self.parts[part].compose(dh, de, kn)
        for xh, xe in self.own[part] + self.extra:
            h = np.maximum(h, xh * kn)
            e = np.maximum(e, xe)
        hb = np.rint(h * 255).astype(np.intp)
        eb = np.rint(e * 255).astype(np.intp)
        return lut[hb, eb].astype(np.float64).mean(axis=0)


def base_means(tex: ClassTexture, stain: Stain, rng: np.random.Generator) -> list[np.ndarray]:
    """Mean RGB of each variant of ``tex`` (with its nuclei) as rendered with ``stain``."""
    sampler = _Sampler(tex, rng)
    lut = stain.lut()
    if len(tex.parts) > 1:
        return [sampler.mean_rgb(lut, i, kn=tex.nuclear_scale) for i in range(len(tex.parts))]
    return [sampler.mean_rgb(lut, 0, dh, de, tex.nuclear_scale) for dh, de in tex.offsets]


def match_colour(
    tex: ClassTexture,
    stain: Stain,
    targets: list[np.ndarray],
    rng: np.random.Generator,
    tolerance: float = 1.5,
) -> float:
    """Set ``tex.offsets`` (one per target) so each composition's mean RGB is nearest its target;
    return the worst residual (largest per-channel difference, 0-255 units).

    Background offsets come first; when they cannot reach ``tolerance`` (crowded dark nuclei
    under a strong hematoxylin), the nuclei are made lighter, a step at a time, down to 60%.
    """
    sampler = _Sampler(tex, rng)
    lut = stain.lut()
    best: tuple[float, float, list[tuple[float, float]]] | None = None
    for kn in (1.0, 0.92, 0.84, 0.76, 0.68, 0.6):
        offsets: list[tuple[float, float]] = []
        worst = 0.0
        x = np.zeros(2)
        for target in targets:
            x, err = _solve(
                lambda d, k=kn: sampler.mean_rgb(lut, 0, float(d[0]), float(d[1]), k),
                np.asarray(target, float),
                x,
            )
            offsets.append((float(x[0]), float(x[1])))
            worst = max(worst, err)
        if best is None or worst < best[0] - 0.25:
            best = (worst, kn, offsets)
        if worst <= tolerance:
            break
    assert best is not None
    tex.offsets, tex.nuclear_scale = best[2], best[1]
    return best[0]


def _solve(fn, target: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, float]:
    """Damped Gauss-Newton on two unknowns with a numerical Jacobian.

    The map is smooth and monotone except where the background clips at zero density, so a
    step that does not help is halved before giving up.
    """
    x = np.array(x0, float)
    r = fn(x) - target
    eps = 0.01
    for _ in range(12):
        if np.abs(r).max() < 0.25:
            break
        jac = np.stack([(fn(x + eps * np.eye(2)[k]) - target - r) / eps for k in range(2)], 1)
        dx, *_ = np.linalg.lstsq(jac, -r, rcond=None)
        for _halving in range(6):
            x_new = np.clip(x + dx, -0.5, 0.5)
            r_new = fn(x_new) - target
            if float(r_new @ r_new) < float(r @ r):
                break
            dx = dx / 2
        else:
            break
        x, r = x_new, r_new
    return x, float(np.abs(r).max())
