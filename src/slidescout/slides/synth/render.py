"""Compose the slide lazily with pyvips and write a pyramidal JPEG tiled TIFF.

Nothing the size of level 0 is ever held in memory: texture tiles are repeated with
``replicate`` (a different phase per tile), masks are upsampled from the coarse grid with
``resize``, lesions are pasted with ``insert`` inside their own boxes, and the stain table is
applied with ``maplut``. ``tiffsave`` then pulls the pixels strip by strip while it writes the
pyramid. The image is two bands of stain density (``h``, ``e``, 8 bits each) until the very
end, where both bands are read as one 16-bit index into the colour table.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np
import pyvips

from slidescout.slides.synth.layout import Layout
from slidescout.slides.synth.stain import Stain
from slidescout.slides.synth.textures import ClassTexture, periodic_noise

TILE = 256
QUALITY = 85
_BACKGROUND = (1, 2)  # (h, e) bytes of bare glass
SWITCH_TILE = 64  # tiles of the per-nucleus variant switch (see _CentreBlend)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


class _Canvas:
    """Repeats periodic tiles over the slide at random phases."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height, self.rng = width, height, rng

    def repeat(self, tile: np.ndarray, phase: tuple[int, int] | None = None) -> pyvips.Image:
        th, tw = tile.shape[:2]
        ox, oy = (
            phase if phase is not None else (int(self.rng.integers(tw)), int(self.rng.integers(th)))
        )
        img = pyvips.Image.new_from_array(np.ascontiguousarray(tile))
        across = math.ceil((self.width + ox) / tw)
        down = math.ceil((self.height + oy) / th)
        return img.replicate(across, down).crop(ox, oy, self.width, self.height)

    def densities(
        self, h: np.ndarray, e: np.ndarray, phase: tuple[int, int] | None = None
    ) -> pyvips.Image:
        return self.repeat(np.dstack([_u8(h), _u8(e)]), phase).copy(interpretation="multiband")


class _CentreBlend:
    """Which side of half the variant blend the centre of the nucleus covering each pixel lies on.

    ``blend`` is the coarse map (one value per ``scale`` x ``scale`` block). Near a switch (a
    block within a nucleus' reach of the other side) a pixel looks the map up at its nucleus'
    centre (its own position plus the tile's centre offset, ``mapim``); elsewhere at its own
    position, which gives the same answer. ``ifthenelse`` computes only the branch a region needs,
    so the lookup costs only along the switch lines."""

    def __init__(self, coarse_blend: np.ndarray, scale: int) -> None:
        self.coarse = np.ascontiguousarray(coarse_blend)
        self.small = pyvips.Image.new_from_array(self.coarse)
        self.scale = scale
        self.nearest = pyvips.Interpolate.new("nearest")
        self._near: dict[int, pyvips.Image] = {}

    def _near_switch(self, reach: int) -> pyvips.Image:
        cells = reach // self.scale + 1
        if cells not in self._near:
            from scipy import ndimage

            side = self.coarse > 127
            grow = np.ones((2 * cells + 1, 2 * cells + 1), bool)
            near = np.asarray(ndimage.binary_dilation(side, grow), bool) & np.asarray(
                ndimage.binary_dilation(~side, grow), bool
            )
            self._near[cells] = pyvips.Image.new_from_array((near * 255).astype(np.uint8))
        return self._near[cells].zoom(self.scale, self.scale)

    def first_side(self, offsets: pyvips.Image, reach: int) -> pyvips.Image:
        """255 where the pixel's nucleus centre has blend > 127 (the first variant), else 0."""
        w, h = offsets.width, offsets.height
        here = self.small.zoom(self.scale, self.scale).crop(0, 0, w, h) > 127
        xyz = pyvips.Image.xyz(w, h)
        index = (xyz + offsets.cast("int")).cast("float") * (1.0 / self.scale)
        centre = self.small.mapim(index, interpolate=self.nearest) > 127
        choice = self._near_switch(reach).crop(0, 0, w, h).ifthenelse(centre, here)
        # evaluated in small tiles, so most tiles lie wholly off the switch lines and skip mapim
        return choice.tilecache(
            tile_width=SWITCH_TILE,
            tile_height=SWITCH_TILE,
            max_tiles=2 * (-(-w // SWITCH_TILE)) + 64,
            threaded=True,
        )


def class_plane(
    tex: ClassTexture,
    canvas: _Canvas,
    blend: pyvips.Image,
    centre_blend: _CentreBlend | None = None,
) -> pyvips.Image:
    """The whole-slide (lazy) density image of one class texture.

    Variant backgrounds are mixed by ``blend``; their own nuclei are switched, not mixed, so no
    nucleus shows at half strength: each nucleus is shown whole by the variant whose side of
    half the blend its centre lies on (with ``centre_blend`` and the texture's centre offsets),
    so the switch never cuts a nucleus along the coarse map's block edges.
    """
    variants = tex.variants()
    if len(tex.parts) > 1:  # different stroma tiles: independent phases
        bases = [canvas.densities(h, e) for (h, e), _ in variants]
    else:  # one lesion tile under several colour offsets: one phase, only the shade changes
        tile = variants[0][0][0]
        phase = (int(canvas.rng.integers(tile.shape[1])), int(canvas.rng.integers(tile.shape[0])))
        bases = [canvas.densities(h, e, phase) for (h, e), _ in variants]
    img = bases[0] if len(bases) == 1 else blend.ifthenelse(bases[0], bases[1], blend=True)
    nuclei = []
    whole = centre_blend is not None and len(tex.own_centres) >= 2
    for k, (_, own) in enumerate(variants[:2]):
        layer = None
        for j, (oh, oe) in enumerate(own):
            phase = (int(canvas.rng.integers(oh.shape[1])), int(canvas.rng.integers(oh.shape[0])))
            plane = canvas.densities(oh, oe, phase)
            if whole and len(variants) == 2:
                assert centre_blend is not None
                offsets = tex.own_centres[k][j]
                first = centre_blend.first_side(
                    canvas.repeat(offsets, phase), int(np.abs(offsets).max())
                )
                plane = first.ifthenelse(plane, 0) if k == 0 else first.ifthenelse(0, plane)
            layer = plane if layer is None else layer.maxpair(plane)
        nuclei.append(layer)
    if len(nuclei) == 2 and nuclei[0] is not None and nuclei[1] is not None:
        if whole:
            img = img.maxpair(nuclei[0].maxpair(nuclei[1]))
        else:
            img = img.maxpair((blend > 127).ifthenelse(nuclei[0], nuclei[1]))
    elif nuclei and nuclei[0] is not None:
        img = img.maxpair(nuclei[0])
    for h, e in tex.extra_tiles():
        img = img.maxpair(canvas.densities(h, e))
    return img


def _edge_noise(canvas: _Canvas, ppu: float) -> pyvips.Image:
    """Periodic uchar noise around 128 that roughens mask edges at the scale of a few cells."""
    side = 1024
    n = (
        periodic_noise(canvas.rng, (side, side), 5.0 * ppu) * 0.6
        + periodic_noise(canvas.rng, (side, side), 1.5 * ppu) * 0.4
    )
    return canvas.repeat(np.clip(128 + 34 * n, 0, 255).astype(np.uint8)[:, :, None])


def _upsample(mask: np.ndarray, scale: int) -> pyvips.Image:
    small = pyvips.Image.new_from_array(_u8(mask))
    return small.resize(scale, kernel="linear")


def _coarse_maps(layout: Layout, rng: np.random.Generator, mpp: float) -> np.ndarray:
    """(rows, cols, 3) uint8 on the coarse grid: stroma blend weight, h tone, e tone (128 = 1)."""
    rows, cols = layout.tissue.shape
    sigma = max(1.0, 110.0 / (mpp * layout.scale))  # variant patches ~0.2 mm across
    n = periodic_noise(rng, (rows, cols), sigma)
    weight = 255.0 / (1.0 + np.exp(-2.0 * n))
    tone = np.clip(np.rint(layout.tone * 128.0), 0, 255)
    return np.ascontiguousarray(np.dstack([weight, tone[..., 0], tone[..., 1]]).astype(np.uint8))


def compose(
    layout: Layout,
    textures: dict[str, ClassTexture],
    stain: Stain,
    rng: np.random.Generator,
    mpp: float,
) -> pyvips.Image:
    """The slide as a lazy 8-bit sRGB pyvips image (nothing is computed yet)."""
    w, h, s = layout.width, layout.height, layout.scale
    ppu = 1.0 / mpp
    canvas = _Canvas(w, h, rng)
    # smooth maps on the coarse grid, repeated by nearest neighbour (cheap, and too smooth for
    # the steps to show): the blend between the two stroma variants and the staining tone
    maps = _coarse_maps(layout, rng, mpp)
    coarse = pyvips.Image.new_from_array(maps).zoom(s, s).crop(0, 0, w, h)
    blend = coarse[0]
    centre_blend = _CentreBlend(maps[..., 0], s)
    tone = coarse.extract_band(1, n=2)
    edge = _edge_noise(canvas, ppu)
    img = class_plane(textures["normal"], canvas, blend, centre_blend)
    lesion_planes: dict[str, pyvips.Image] = {}
    for les in layout.lesions:
        if les.cls == "normal" or les.mask is None:
            continue  # ordinary tissue by definition
        if les.cls not in lesion_planes:
            lesion_planes[les.cls] = class_plane(textures[les.cls], canvas, blend)
        c0, r0 = les.origin
        x, y = c0 * s, r0 * s
        m = _upsample(les.mask, s)
        # keep the part of the box that lies on the slide
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + m.width), min(h, y + m.height)
        if x1 <= x0 or y1 <= y0:
            continue
        m = m.crop(x0 - x, y0 - y, x1 - x0, y1 - y0)
        bw, bh = x1 - x0, y1 - y0
        # a soft border a few microns wide: nuclei fade rather than being cut in half
        alpha = ((m + edge.crop(x0, y0, bw, bh)) * 4 - (256 * 4 - 128)).cast("uchar")
        patch = alpha.ifthenelse(
            lesion_planes[les.cls].crop(x0, y0, bw, bh), img.crop(x0, y0, bw, bh), blend=True
        )
        img = img.insert(patch, x0, y0)
    img = ((img * tone) >> 7).cast("uchar")  # tone is a multiplier in 1/128ths
    tissue = _upsample(layout.tissue, s).crop(0, 0, w, h)
    img = ((tissue + edge) > 256).ifthenelse(img, img.new_from_image(list(_BACKGROUND)))
    return _to_rgb(img, stain)


def _to_rgb(densities: pyvips.Image, stain: Stain) -> pyvips.Image:
    """Map (h, e) bytes to colour through the stain table (index ``e * 256 + h``)."""
    lut = stain.lut()  # [h, e]
    table = np.ascontiguousarray(lut.transpose(1, 0, 2).reshape(1, 65536, 3))  # index e*256 + h
    if sys.byteorder == "little":
        index = densities.copy(format="ushort", bands=1)
    else:
        index = (densities[1].cast("ushort") << 8) | densities[0]
    rgb = index.maplut(pyvips.Image.new_from_array(table))
    return rgb.copy(interpretation="srgb")


def save_tiff(
    img: pyvips.Image,
    path: str,
    mpp: float,
    description: str,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Write a pyramidal 256-px JPEG (Q85) tiled TIFF whose resolution tags give ``mpp``."""
    px_per_mm = 1000.0 / mpp
    img = img.copy(xres=px_per_mm, yres=px_per_mm)
    img.set_type(pyvips.GValue.gstr_type, "image-description", description)
    if progress is not None:
        last = [-1]

        def on_eval(_image: pyvips.Image, p) -> None:  # p: libvips progress (percent, eta)
            if p.percent != last[0]:  # at most 101 calls
                last[0] = p.percent
                progress(min(1.0, p.percent / 100.0))

        img.set_progress(True)
        img.signal_connect("eval", on_eval)
    try:
        img.tiffsave(
            path,
            tile=True,
            tile_width=TILE,
            tile_height=TILE,
            pyramid=True,
            compression="jpeg",
            Q=QUALITY,
            xres=px_per_mm,
            yres=px_per_mm,
            resunit="cm",
            bigtiff=img.width * img.height > 1 << 31,
        )
    finally:
        # drop cached operations: they hold this slide's texture tiles
        size = pyvips.cache_get_max()
        pyvips.cache_set_max(0)
        pyvips.cache_set_max(size)
    if progress is not None:
        progress(1.0)
