"""Periodic texture tiles of H&E stain densities, one recipe per tissue class.

Every tile wraps around seamlessly (noise is filtered in the Fourier domain, nuclei are stamped
modulo the tile size), so the renderer can repeat it across the slide for free. A class texture
is a *base* tile (background densities and most nuclei) plus *extra* tiles of other periods that
carry more nuclei; the renderer combines them with a per-pixel maximum, so the pattern never
visibly repeats.

Sizes are physical: recipes are written in microns and converted with ``ppu`` (pixels per
micron, ``1 / mpp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASSES = ("tumor", "lymphocytes", "necrosis", "normal")


@dataclass
class Parts:
    """A periodic tile before colour matching: background densities plus nuclei over them.

    ``bg_h``/``bg_e`` are arrays or constants; ``cov`` is the nuclear coverage (0-1,
    anti-aliased edges) and ``nuc_h``/``nuc_e`` the nuclei's own densities, allocated by the
    first nucleus. Arrays are float32 of shape ``size``, densities in [0, 1].
    """

    bg_h: np.ndarray | float
    bg_e: np.ndarray | float
    size: tuple[int, ...]
    cov: np.ndarray | None = None
    nuc_h: np.ndarray | None = None
    nuc_e: np.ndarray | None = None
    centre: np.ndarray | None = (
        None  # (2, rows, cols) int16: offset (dx, dy) to the owning nucleus' centre
    )

    @classmethod
    def of(cls, h: np.ndarray | float, e: np.ndarray | float, shape: tuple[int, int]) -> Parts:
        def f32(v: np.ndarray | float) -> np.ndarray | float:
            return (
                np.clip(v, 0.0, 1.0).astype(np.float32) if isinstance(v, np.ndarray) else float(v)
            )

        return cls(bg_h=f32(h), bg_e=f32(e), size=tuple(shape))

    @property
    def shape(self) -> tuple[int, int]:
        return self.size  # type: ignore[return-value]

    def nuclei(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cov, nuc_h, nuc_e)``, allocated on first use."""
        if self.cov is None or self.nuc_h is None or self.nuc_e is None:
            self.cov, self.nuc_h, self.nuc_e = (np.zeros(self.size, np.float32) for _ in range(3))
        return self.cov, self.nuc_h, self.nuc_e

    def centres(self) -> np.ndarray:
        """Per pixel, the offset ``(dx, dy)`` from it to the centre of the nucleus covering it."""
        if self.centre is None:
            self.centre = np.zeros((2, *self.size), np.int16)
        return self.centre

    def compose(
        self, dh: float = 0.0, de: float = 0.0, kn: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Final ``(h, e)`` densities: ``dh``/``de`` added to the background, nuclei's
        hematoxylin scaled by ``kn``."""
        bh = np.broadcast_to(np.clip(np.float32(self.bg_h) + np.float32(dh), 0.0, 1.0), self.size)
        be = np.broadcast_to(np.clip(np.float32(self.bg_e) + np.float32(de), 0.0, 1.0), self.size)
        if self.cov is None or self.nuc_h is None or self.nuc_e is None:
            return np.array(bh, np.float32), np.array(be, np.float32)
        cov, nuc_h, nuc_e = self.nuclei()
        h = bh + cov * (nuc_h * np.float32(kn) - bh)
        e = be + cov * (nuc_e - be)
        return np.clip(h, 0.0, 1.0), np.clip(e, 0.0, 1.0)


Densities = tuple[np.ndarray, np.ndarray]  # final (h, e) of a tile


@dataclass
class ClassTexture:
    """One class's tiles, combined by the renderer as
    ``max(blend(max(base_k, *own_k) for each variant k), *extra)``.

    Normal tissue has two variants (stroma of different density and fibre direction, each with
    its own spindle nuclei on a tile of another period) blended by a smooth random map, which
    gives large-scale variation and hides the repetition. A lesion class has one base tile,
    composed once per entry of ``offsets``: background offsets ``(dh, de)`` that match its mean
    colour to each stroma variant, blended with the same map.
    """

    name: str
    parts: list[Parts]
    extra: list[Densities]  # nuclei-only tiles over every variant
    own: list[list[Densities]] = field(default_factory=list)  # nuclei-only tiles per variant
    # per own tile, (rows, cols, 2) int16 offsets to each nucleus' centre: the renderer shows a
    # nucleus of a variant whole or not at all, by the blend at its centre
    own_centres: list[list[np.ndarray]] = field(default_factory=list)
    offsets: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    nuclear_scale: float = (
        1.0  # hematoxylin of every nucleus, lowered only when colour matching needs it
    )

    def _scaled(self, tiles: list[Densities]) -> list[Densities]:
        k = self.nuclear_scale
        return tiles if k == 1.0 else [(h * k, e) for h, e in tiles]

    def variants(self) -> list[tuple[Densities, list[Densities]]]:
        """``(base, own nuclei tiles)`` per variant, in the order the renderer blends them."""
        if len(self.parts) > 1:
            own = self.own or [[] for _ in self.parts]
            return [
                (p.compose(kn=self.nuclear_scale), self._scaled(o))
                for p, o in zip(self.parts, own, strict=True)
            ]
        own0 = self._scaled(self.own[0]) if self.own else []
        return [
            (self.parts[0].compose(dh, de, self.nuclear_scale), own0) for dh, de in self.offsets
        ]

    def extra_tiles(self) -> list[Densities]:
        return self._scaled(self.extra)


# --------------------------------------------------------------------------------------------
# noise


def periodic_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    along_px: float,
    across_px: float | None = None,
    angle: float = 0.0,
) -> np.ndarray:
    """Gaussian-filtered white noise that wraps around: zero mean, unit std, float32.

    ``along_px``/``across_px`` are the correlation lengths along and across ``angle`` (radians,
    x axis towards y); equal lengths give isotropic noise.
    """
    from scipy import fft as sfft  # scipy takes ~0.5 s to import: only when a slide is generated

    rows, cols = shape
    across = along_px if across_px is None else across_px
    fy = sfft.fftfreq(rows).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(cols).astype(np.float32)[None, :]
    k = np.float32(2.0 * np.pi**2)
    if across == along_px:  # isotropic: the filter is separable
        sig = np.float32(along_px)
        filt = np.exp(-k * (sig * fy) ** 2) * np.exp(-k * (sig * fx) ** 2)
    else:
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        u = fx * c + fy * s
        v = fy * c - fx * s
        filt = np.exp(-k * ((np.float32(along_px) * u) ** 2 + (np.float32(across) * v) ** 2))
    white = rng.standard_normal(shape, dtype=np.float32)
    spec = sfft.rfft2(white, workers=2)
    spec *= filt
    out = np.asarray(sfft.irfft2(spec, s=shape, workers=2), np.float32)
    out -= out.mean()
    sd = float(out.std())
    out /= sd if sd > 0 else 1.0
    return out.astype(np.float32, copy=False)


def _warp(field: np.ndarray, dy: np.ndarray, dx: np.ndarray, block: int = 256) -> np.ndarray:
    """``field`` sampled at ``(y + dy, x + dx)`` with wrap-around (bilinear), a block of rows at
    a time to keep the coordinate arrays small."""
    from scipy import ndimage  # scipy takes ~0.5 s to import: only when a slide is generated

    rows, cols = field.shape
    out = np.empty_like(field, dtype=np.float32)
    xx = np.arange(cols, dtype=np.float32)[None, :]
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        yy = np.arange(r0, r1, dtype=np.float32)[:, None]
        coords = [yy + dy[r0:r1], xx + dx[r0:r1]]
        out[r0:r1] = ndimage.map_coordinates(field, coords, order=1, mode="grid-wrap")
    return out


def _zoom_wrap(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a periodic field to ``shape`` (keeps it periodic)."""
    rows, cols = shape
    yy = (np.arange(rows, dtype=np.float32) + 0.5) * small.shape[0] / rows - 0.5
    xx = (np.arange(cols, dtype=np.float32) + 0.5) * small.shape[1] / cols - 0.5
    zero = np.zeros((rows, cols), np.float32)
    return _warp_from(small, yy[:, None] + zero, xx[None, :] + zero)


def _warp_from(field: np.ndarray, yy: np.ndarray, xx: np.ndarray, block: int = 256) -> np.ndarray:
    from scipy import ndimage  # scipy takes ~0.5 s to import: only when a slide is generated

    out = np.empty(yy.shape, np.float32)
    for r0 in range(0, yy.shape[0], block):
        r1 = min(yy.shape[0], r0 + block)
        out[r0:r1] = ndimage.map_coordinates(
            field, [yy[r0:r1], xx[r0:r1]], order=1, mode="grid-wrap"
        )
    return out


def _voronoi(
    shape: tuple[int, int], centres: np.ndarray, step: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Periodic Voronoi cells of ``centres`` (N, 2 as y, x): (cell index, border distance in px)."""
    from scipy.spatial import (
        KDTree,  # scipy takes ~0.5 s to import: only when a slide is generated
    )

    rows, cols = shape
    sr, sc = -(-rows // step), -(-cols // step)
    gy, gx = np.meshgrid(
        (np.arange(sr) + 0.5) * rows / sr, (np.arange(sc) + 0.5) * cols / sc, indexing="ij"
    )
    tree = KDTree(np.mod(centres, [rows, cols]), boxsize=[rows, cols])
    found = tree.query(np.stack([gy.ravel(), gx.ravel()], 1), k=2)
    d, idx = np.asarray(found[0]), np.asarray(found[1])
    border = ((d[:, 1] - d[:, 0]) / 2.0).reshape(sr, sc).astype(np.float32)
    label = idx[:, 0].reshape(sr, sc)
    ys = (np.arange(rows) * sr) // rows
    xs = (np.arange(cols) * sc) // cols
    return label[np.ix_(ys, xs)], _zoom_wrap(border, shape)


def _jittered_grid(
    rng: np.random.Generator, shape: tuple[int, int], spacing: float, jitter: float = 0.45
) -> np.ndarray:
    """Points on a grid that tiles ``shape`` exactly, each moved by up to ``jitter`` spacings."""
    rows, cols = shape
    ny, nx = max(1, round(rows / spacing)), max(1, round(cols / spacing))
    gy, gx = np.meshgrid(
        (np.arange(ny) + 0.5) * rows / ny, (np.arange(nx) + 0.5) * cols / nx, indexing="ij"
    )
    pts = np.stack([gy.ravel(), gx.ravel()], 1)
    pts[:, 0] += rng.uniform(-jitter, jitter, len(pts)) * rows / ny
    pts[:, 1] += rng.uniform(-jitter, jitter, len(pts)) * cols / nx
    return pts


# --------------------------------------------------------------------------------------------
# nuclei


@dataclass
class NucleusStyle:
    """How one kind of nucleus looks (lengths in microns)."""

    radius: tuple[float, float]  # semi-major axis range (log-uniform)
    aspect: tuple[float, float]  # major/minor ratio range
    h: tuple[float, float]  # peak hematoxylin density range
    e: float = 0.12  # eosin density inside the nucleus
    vesicular: float = 0.0  # 0 solid; up to 1, a pale centre and a dark rim
    chromatin: float = 0.15  # strength of the chromatin grain
    irregular: float = 0.04  # boundary wobble (fraction of the radius)
    nucleolus: float = 0.0  # chance of a prominent (eosinophilic) nucleolus


def _nucleus_window(
    cy: float, cx: float, a: float, b: float, theta: float, terms: list[tuple[int, float, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and normalised radius ``r`` of the window holding a whole nucleus.

    ``r`` is 1 on the outline (semi-axes ``a``, ``b`` along ``theta``, the outline scaled by
    ``1 + sum(amp * cos(k * angle + phase))`` over ``terms``); coverage reaches zero at
    ``r = 1 + 0.5 / (0.9 b)``. The window reaches that far on every side, so no nucleus is ever
    cut by a straight window edge (the wobble may stretch it to twice ``a``)."""
    wmin = max(0.5, 1.0 - sum(abs(amp) for _, amp, _ in terms))
    reach = int(np.ceil(a * (1.0 + 0.6 / max(b, 0.5)) / wmin)) + 2
    ys = np.arange(int(np.floor(cy)) - reach, int(np.floor(cy)) + reach + 2)
    xs = np.arange(int(np.floor(cx)) - reach, int(np.floor(cx)) + reach + 2)
    yy = (ys - cy)[:, None]
    xx = (xs - cx)[None, :]
    c, s = np.cos(theta), np.sin(theta)
    u = (xx * c + yy * s) / a
    v = (-xx * s + yy * c) / b
    r = np.sqrt(u * u + v * v)
    if terms:
        ang = np.arctan2(v, u)
        wobble = 1.0
        for k, amp, phase in terms:
            wobble = wobble + amp * np.cos(k * ang + phase)
        r = r / np.maximum(wobble, 0.5)
    return ys, xs, r


def stamp_nuclei(
    parts: Parts,
    rng: np.random.Generator,
    centres: np.ndarray,
    style: NucleusStyle,
    ppu: float,
    grain: np.ndarray,
    angles: np.ndarray | None = None,
) -> None:
    """Draw one nucleus of ``style`` at each centre (y, x px), wrapping around the tile edges."""
    rows, cols = parts.shape
    n = len(centres)
    lo, hi = style.radius
    radii = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) * ppu
    aspects = rng.uniform(*style.aspect, n)
    thetas = rng.uniform(0, np.pi, n) if angles is None else angles
    peaks = rng.uniform(*style.h, n)
    for i in range(n):
        a = radii[i]
        b = a / aspects[i]
        cy, cx = centres[i]
        terms = (
            [
                (k, amp * style.irregular * rng.normal(), rng.uniform(0, 2 * np.pi))
                for k, amp in ((2, 1.0), (3, 0.7), (4, 0.4))
            ]
            if style.irregular > 0
            else []
        )
        ys, xs, r = _nucleus_window(cy, cx, a, b, thetas[i], terms)
        yy = (ys - cy)[:, None]
        xx = (xs - cx)[None, :]
        cov = np.clip((1.0 - r) * b * 0.9 + 0.5, 0.0, 1.0)
        if not cov.any():
            continue
        iy, ix = np.ix_(ys % rows, xs % cols)
        profile = 1.0 - style.vesicular * np.clip(1.0 - r / 0.8, 0.0, 1.0) ** 0.5 * 0.6
        g = grain[iy, ix]
        hval = np.clip(peaks[i] * profile * (1.0 + style.chromatin * g), 0.0, 1.0)
        eval_ = np.full_like(hval, style.e)
        if style.nucleolus > 0 and rng.random() < style.nucleolus:
            oy, ox = rng.uniform(-0.3, 0.3, 2) * b
            rn = rng.uniform(0.7, 1.2) * ppu
            dn = np.sqrt((yy - oy) ** 2 + (xx - ox) ** 2) / rn
            nuc = np.clip((1.0 - dn) * rn * 0.9 + 0.5, 0.0, 1.0)
            hval = hval + nuc * (0.55 - hval)
            eval_ = eval_ + nuc * (0.75 - eval_)
        cov_all, nuc_h, nuc_e = parts.nuclei()
        old = cov_all[iy, ix]
        take = cov > old
        nuc_h[iy, ix] = np.where(take, hval, nuc_h[iy, ix])
        nuc_e[iy, ix] = np.where(take, eval_, nuc_e[iy, ix])
        cov_all[iy, ix] = np.maximum(old, cov)
        cen = parts.centres()
        cen[0][iy, ix] = np.where(take, np.rint(cx - xs)[None, :].astype(np.int16), cen[0][iy, ix])
        cen[1][iy, ix] = np.where(take, np.rint(cy - ys)[:, None].astype(np.int16), cen[1][iy, ix])


def _random_points(
    rng: np.random.Generator, shape: tuple[int, int], per_um2: float, ppu: float
) -> np.ndarray:
    rows, cols = shape
    n = rng.poisson(per_um2 * rows * cols / ppu**2)
    return np.stack([rng.uniform(0, rows, n), rng.uniform(0, cols, n)], 1)


def _nuclei_only(shape: tuple[int, int]) -> Parts:
    return Parts.of(0.0, 0.0, shape)


def _final_nuclei(parts: Parts) -> tuple[np.ndarray, np.ndarray]:
    """An extra tile: nuclei over zero densities (so a per-pixel max leaves the base alone)."""
    cov, nuc_h, _ = parts.nuclei()
    return np.clip(cov * nuc_h, 0.0, 1.0), np.broadcast_to(np.float32(0.0), parts.shape)


# --------------------------------------------------------------------------------------------
# class recipes

_SPINDLE = NucleusStyle(
    radius=(5.0, 8.5), aspect=(3.0, 5.0), h=(0.55, 0.75), chromatin=0.1, irregular=0.03
)
_LYMPHOCYTE = NucleusStyle(
    radius=(2.7, 3.4), aspect=(1.0, 1.15), h=(0.78, 0.92), e=0.1, chromatin=0.12, irregular=0.03
)
_TUMOUR = NucleusStyle(
    radius=(4.2, 7.5),
    aspect=(1.05, 1.5),
    h=(0.55, 0.8),
    e=0.1,
    vesicular=0.8,
    chromatin=0.3,
    irregular=0.06,
    nucleolus=0.7,
)
_MITOSIS = NucleusStyle(
    radius=(3.5, 5.0), aspect=(1.3, 2.2), h=(0.9, 1.0), e=0.1, chromatin=0.2, irregular=0.2
)
_GHOST = NucleusStyle(
    radius=(3.5, 6.0), aspect=(1.0, 1.4), h=(0.10, 0.18), e=0.5, chromatin=0.2, irregular=0.05
)
_DUST = NucleusStyle(
    radius=(0.5, 1.1), aspect=(1.0, 1.5), h=(0.45, 0.6), e=0.2, chromatin=0.0, irregular=0.0
)


def _size(base_um: float, ppu: float) -> int:
    """A tile side near ``base_um`` microns that the FFT handles fast."""
    from scipy import fft as sfft  # scipy takes ~0.5 s to import: only when a slide is generated

    fast = sfft.next_fast_len(max(64, int(round(base_um * ppu))))
    if fast is None:  # only for a target its tables do not cover
        raise ValueError(f"no fast FFT length near {base_um} µm")
    return int(fast)


def stroma_parts(
    rng: np.random.Generator, shape: tuple[int, int], ppu: float, angle: float, density: float = 1.0
) -> Parts:
    """Collagenous stroma without cells: wavy eosinophilic bundles split by thin pale cracks."""
    warp_y = periodic_noise(rng, shape, 45 * ppu) * 7 * ppu
    warp_x = periodic_noise(rng, shape, 45 * ppu) * 7 * ppu
    crack = _warp(periodic_noise(rng, shape, 60 * ppu, 9.0 * ppu, angle), warp_y, warp_x)
    fibril = _warp(periodic_noise(rng, shape, 10 * ppu, 0.7 * ppu, angle), warp_y, warp_x)
    del warp_y, warp_x
    bundle = periodic_noise(rng, shape, 60 * ppu, 20 * ppu, angle)
    fine = periodic_noise(rng, shape, 0.6 * ppu)
    e = 0.44 * density + 0.05 * fibril + 0.05 * bundle + 0.025 * fine
    del fibril
    e *= 1.0 - 0.6 * np.exp(-((crack / 0.12) ** 2))  # thin pale cracks where the noise crosses zero
    del crack
    h = 0.05 + 0.012 * fine + 0.008 * bundle
    return Parts.of(h, e, shape)


def spindle_nuclei(
    rng: np.random.Generator, shape: tuple[int, int], ppu: float, angle: float, per_um2: float
) -> tuple[Densities, np.ndarray]:
    """A nuclei-only tile of fibroblast nuclei lying along ``angle``, and its centre offsets."""
    cells = _nuclei_only(shape)
    grain = periodic_noise(rng, shape, 0.5 * ppu)
    pts = _random_points(rng, shape, per_um2, ppu)
    stamp_nuclei(
        cells, rng, pts, _SPINDLE, ppu, grain, angles=angle + rng.normal(0.0, 0.2, len(pts))
    )
    return _final_nuclei(cells), np.ascontiguousarray(cells.centres().transpose(1, 2, 0))


def normal_texture(rng: np.random.Generator, ppu: float, tile: float = 1.0) -> ClassTexture:
    """Benign stroma in two variants (denser collagen; looser, paler and more cellular) with
    different fibre directions, and a few scattered round cells."""
    a0 = rng.uniform(0, np.pi)
    a1 = a0 + rng.uniform(0.8, 1.6)
    dense = stroma_parts(rng, (_size(352 * tile, ppu), _size(365 * tile, ppu)), ppu, a0)
    loose = stroma_parts(
        rng, (_size(339 * tile, ppu), _size(371 * tile, ppu)), ppu, a1, density=0.85
    )
    s0 = spindle_nuclei(rng, (_size(287 * tile, ppu), _size(331 * tile, ppu)), ppu, a0, 1 / 900)
    s1 = spindle_nuclei(rng, (_size(323 * tile, ppu), _size(277 * tile, ppu)), ppu, a1, 1 / 700)
    own, own_centres = [[s0[0]], [s1[0]]], [[s0[1]], [s1[1]]]
    shape = (_size(301 * tile, ppu), _size(317 * tile, ppu))
    cells = _nuclei_only(shape)
    grain = periodic_noise(rng, shape, 0.5 * ppu)
    stamp_nuclei(cells, rng, _random_points(rng, shape, 1 / 9000, ppu), _LYMPHOCYTE, ppu, grain)
    return ClassTexture(
        "normal", [dense, loose], [_final_nuclei(cells)], own=own, own_centres=own_centres
    )


def tumor_texture(rng: np.random.Generator, ppu: float, tile: float = 1.0) -> ClassTexture:
    """Carcinoma: sheets of cells with pale cytoplasm and borders, large pleomorphic vesicular
    nuclei with nucleoli, crowded and overlapping, the odd mitosis."""
    shape = (_size(347 * tile, ppu), _size(359 * tile, ppu))
    fine = periodic_noise(rng, shape, 0.7 * ppu)
    centres = _jittered_grid(rng, shape, 21.0 * ppu, 0.4)
    label, border = _voronoi(shape, centres)
    shade = rng.normal(0.0, 1.0, len(centres)).astype(np.float32)[label]
    membrane = np.clip(1.0 - border / (0.7 * ppu), 0.0, 1.0)
    e = 0.28 + 0.03 * shade + 0.03 * fine + 0.16 * membrane
    h = 0.06 + 0.015 * fine + 0.01 * shade
    parts = Parts.of(h, e, shape)
    grain = periodic_noise(rng, shape, 0.6 * ppu)
    jitter = rng.normal(0.0, 2.0 * ppu, centres.shape)
    stamp_nuclei(parts, rng, centres + jitter, _TUMOUR, ppu, grain)
    mitoses = centres[rng.random(len(centres)) < 0.012]
    stamp_nuclei(parts, rng, mitoses, _MITOSIS, ppu, grain)
    shape2 = (_size(311 * tile, ppu), _size(293 * tile, ppu))
    extra = _nuclei_only(shape2)
    grain2 = periodic_noise(rng, shape2, 0.6 * ppu)
    stamp_nuclei(extra, rng, _random_points(rng, shape2, 1 / 9000, ppu), _TUMOUR, ppu, grain2)
    return ClassTexture("tumor", [parts], [_final_nuclei(extra)])


def lymphocyte_texture(rng: np.random.Generator, ppu: float, tile: float = 1.0) -> ClassTexture:
    """A dense lymphocytic infiltrate: crowded small, round, dark nuclei in scant pale stroma."""
    shape = (_size(343 * tile, ppu), _size(337 * tile, ppu))
    fine = periodic_noise(rng, shape, 0.6 * ppu)
    fib = periodic_noise(rng, shape, 20 * ppu, 1.5 * ppu, rng.uniform(0, np.pi))
    e = 0.24 + 0.03 * fine + 0.05 * (1.0 - np.abs(np.tanh(fib)))
    h = 0.05 + 0.015 * fine
    parts = Parts.of(h, e, shape)
    grain = periodic_noise(rng, shape, 0.5 * ppu)
    pts = _jittered_grid(rng, shape, 11.5 * ppu, 0.5)
    pts = pts[rng.random(len(pts)) < 0.65]
    stamp_nuclei(parts, rng, pts, _LYMPHOCYTE, ppu, grain)
    shape2 = (_size(307 * tile, ppu), _size(299 * tile, ppu))
    extra = _nuclei_only(shape2)
    grain2 = periodic_noise(rng, shape2, 0.5 * ppu)
    stamp_nuclei(extra, rng, _random_points(rng, shape2, 1 / 1500, ppu), _LYMPHOCYTE, ppu, grain2)
    return ClassTexture("lymphocytes", [parts], [_final_nuclei(extra)])


def necrosis_texture(rng: np.random.Generator, ppu: float, tile: float = 1.0) -> ClassTexture:
    """Coagulative necrosis: eosinophilic granular debris, ghost cell outlines and ghost nuclei,
    fine basophilic dust; no intact nuclei."""
    shape = (_size(349 * tile, ppu), _size(341 * tile, ppu))
    fine = periodic_noise(rng, shape, 0.8 * ppu)
    clumps = periodic_noise(rng, shape, 3.0 * ppu)
    smudge = periodic_noise(rng, shape, 12.0 * ppu)
    centres = _jittered_grid(rng, shape, 16.0 * ppu, 0.45)
    _, border = _voronoi(shape, centres)
    ghost_wall = np.clip(1.0 - border / (1.2 * ppu), 0.0, 1.0)
    e = 0.52 + 0.08 * fine + 0.06 * clumps + 0.03 * smudge + 0.07 * ghost_wall
    e = e * (1.0 - 0.6 * np.clip((clumps - 1.4) * 2.0, 0.0, 1.0))  # small holes in the debris
    h = 0.10 + 0.02 * smudge + 0.015 * clumps + 0.02 * fine
    parts = Parts.of(h, e, shape)
    grain = periodic_noise(rng, shape, 0.6 * ppu)
    ghosts = centres[rng.random(len(centres)) < 0.5] + rng.normal(0.0, 2.0 * ppu, (1, 2))
    stamp_nuclei(parts, rng, ghosts, _GHOST, ppu, grain)
    stamp_nuclei(parts, rng, _random_points(rng, shape, 1 / 250, ppu), _DUST, ppu, grain)
    return ClassTexture("necrosis", [parts], [])


_RECIPES = {"tumor": tumor_texture, "lymphocytes": lymphocyte_texture, "necrosis": necrosis_texture}


def class_texture(
    name: str, rng: np.random.Generator, ppu: float, tile: float = 1.0
) -> ClassTexture:
    """The texture of class ``name`` (one of :data:`CLASSES`); ``tile`` scales the tile periods
    (about 0.35 mm at 1; small slides use smaller tiles, which are faster to make)."""
    if name == "normal":
        return normal_texture(rng, ppu, tile)
    return _RECIPES[name](rng, ppu, tile)
