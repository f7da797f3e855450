"""pyvips backends: TIFF-family slides read page by page, and plain images as one-level slides.

Rendering is crop -> ``resize(kernel="lanczos3")`` -> crop on the level image, evaluated strip
by strip with ``Region.fetch``: split across cores when a view renders alone (latency), in the
calling thread when several render at once (throughput); see ``_Realizer``. Patch readers keep
one ``pyvips.Region`` per thread and per level, as measured in DESIGN.md.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from slidescout.errors import SlideError
from slidescout.slides.backend_openslide import OpenSlideBackend
from slidescout.slides.backends import (
    VIPS_TIFF_FORMATS,
    WHITE,
    Backend,
    Region,
    TiffPage,
    _reason,
    padded_read,
)
from slidescout.slides.jpegtiles import JpegViews

if TYPE_CHECKING:  # pyvips is imported on first use
    import pyvips

# TIFF compressions that pyvips-binary's tiffload decodes (no JPEG 2000 in the wheel).
VIPS_COMPRESSIONS = {
    1: "none",
    5: "LZW",
    7: "JPEG",
    8: "deflate",
    32946: "deflate",
    32773: "PackBits",
}
# Above this many source pixels a render streams through libvips' thread pool: strip fetches
# of a huge shrink would each prepare a huge source area.
FETCH_BUDGET_PX = 24 * 1024 * 1024
# output rows per Region.fetch when rendering a view
STRIP_ROWS = 64
# after two renders overlapped, renders stay single-threaded for this long (a busy server keeps
# its threads on one core each instead of splitting every view)
OVERLAP_MEMORY_S = 0.25
# decoded tiles a patch reader keeps per level and thread (256 px RGB tiles: ~12 MB):
# neighbouring patches share tiles, and without a cache every fetch decodes every tile it
# touches again (~9x slower for a grid of 224 px patches)
PATCH_TILE_CACHE = 64
# every tiffload: its own image (libvips' operation cache would share one between reopenings,
# failed tiles included), random access, and a tile that fails to decode is an error (with the
# default, libtiff's decode errors of WebP, deflate or LZW tiles come back as black pixels)
TIFFLOAD_OPTIONS = {"access": "random", "revalidate": True, "fail_on": "warning"}
# a view may be misplaced by at most this many output pixels before a sub-pixel shift is applied
SUBPIXEL_TOLERANCE = 0.1


def _vips():
    import pyvips

    return pyvips


def to_srgb8(img):
    """Any libvips image as 3-band uchar sRGB, alpha flattened onto white."""
    try:
        if img.hasalpha():
            img = img.flatten(background=[WHITE] * (img.bands - 1))
        if (
            img.bands != 3
            or img.interpretation not in ("srgb", "rgb", "multiband")
            or img.format != "uchar"
        ):
            try:
                img = img.colourspace("srgb")
            except _vips().Error:
                if img.bands == 1:
                    img = img.bandjoin([img, img])
        if img.format != "uchar":
            img = img.cast("uchar")
        if img.bands > 3:
            img = img.extract_band(0, n=3)
        elif img.bands < 3:
            img = img.bandjoin([img.extract_band(0)] * (3 - img.bands))
    except _vips().Error as exc:  # pragma: no cover - exotic pixel formats
        raise SlideError(f"cannot convert the image to RGB ({_reason(exc)})") from None
    return img


def _keys_cubic(t: float, a: float = -0.5) -> float:
    t = abs(t)
    if t < 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


@lru_cache(maxsize=512)
def _shift_mask_q(q: int, horizontal: bool):
    e = q / 64.0
    taps = [int(round(_keys_cubic((i - 2) - e) * 256)) for i in range(5)]
    rows = [taps] if horizontal else [[t] for t in taps]
    return _vips().Image.new_from_list(rows, scale=sum(taps), offset=0)


def _shift_mask(e: float, horizontal: bool):
    """A 5-tap integer convolution mask resampling an image at ``x + e`` (|e| < 1, cubic)."""
    return _shift_mask_q(int(round(e * 64)), horizontal)


def _to_array(mem, w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8 view of a pyvips buffer (``Region.fetch``'s is writable and owned)."""
    return np.frombuffer(mem, np.uint8).reshape(h, w, 3)


class _Realizer:
    """Evaluates a render pipeline into a numpy array.

    The output is computed in strips of ``STRIP_ROWS`` rows with ``Region.fetch``: per strip the
    source area stays cache-sized, which costs about half the CPU of fetching the whole output at
    once or of libvips' own thread pool (``write_to_memory``) for view-sized images. Modes:

    - ``adaptive`` (default): when this is the only render in flight, the calling thread and
      helper threads (one per extra core) take its strips from a shared queue, for latency;
      when several renders are in flight, each runs in its own calling thread (the GIL is
      released inside libvips), so N threads use N cores without oversubscribing them;
    - ``serial``: always in the calling thread; ``parallel``: always split;
    - ``pool``: libvips' thread pool (``write_to_memory``), for comparison.

    Sources too large for strip fetches (a whole non-pyramidal slide) always stream through
    libvips' thread pool, whose memory use is bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._helpers: ThreadPoolExecutor | None = None
        self._last_overlap = -1e9
        self.mode = "adaptive"

    def _pool(self) -> ThreadPoolExecutor:
        if self._helpers is None:
            with self._lock:
                if self._helpers is None:
                    self._helpers = ThreadPoolExecutor(
                        max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="slidescout-render"
                    )
        return self._helpers

    @contextmanager
    def slot(self) -> Iterator[tuple[ThreadPoolExecutor | None, int]]:
        """While a render runs: the helper pool and how many threads (the caller's included) it
        may use, every core when it is the only render in flight (mode ``adaptive``), else 1."""
        with self._lock:
            self._active += 1
            now = time.monotonic()
            if self._active > 1:
                self._last_overlap = now
            # alone = no other render now, nor in the last moment (threads taking turns)
            alone = self._active == 1 and now - self._last_overlap > OVERLAP_MEMORY_S
        try:
            if self.mode == "parallel" or (self.mode == "adaptive" and alone):
                cores = os.cpu_count() or 1
                yield (self._pool() if cores > 1 else None), cores
            else:
                yield None, 1
        finally:
            with self._lock:
                self._active -= 1

    def __call__(self, img, source_px: int) -> np.ndarray:
        with self.slot() as (_, cores):
            w, h = img.width, img.height
            if self.mode == "pool" or source_px > FETCH_BUDGET_PX:
                return _to_array(img.write_to_memory(), w, h)
            out = np.empty((h, w, 3), np.uint8)
            workers = max(1, min(-(-h // STRIP_ROWS), cores))
            strips = _Strips(h, workers)
            if workers <= 1:
                _fetch_strips(img, strips, out)
                return out
            # the caller and helpers share the strips (work stealing): if a core is busy
            # elsewhere, the caller simply does more of them
            pool = self._pool()
            futures = [pool.submit(_fetch_strips, img, strips, out, i) for i in range(1, workers)]
            _fetch_strips(img, strips, out, 0)
            for f in futures:
                if not f.cancel():  # started: it finishes its current strip, then finds none
                    f.result()
            return out


class _Strips:
    """Row strips of an output image shared by ``workers`` threads.

    Each worker starts on its own contiguous block (neighbouring strips share JPEG tile rows:
    interleaved strips cost ~20% more CPU, blocks ~5%); a worker that runs out steals from the
    far end of the largest remaining block, so a worker whose core is busy elsewhere delays
    nothing.
    """

    def __init__(self, height: int, workers: int = 1) -> None:
        self.items = [(y, min(STRIP_ROWS, height - y)) for y in range(0, height, STRIP_ROWS)]
        per = -(-len(self.items) // max(1, workers))
        self._blocks = [[i, min(i + per, len(self.items))] for i in range(0, len(self.items), per)]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def take(self, worker: int = 0) -> tuple[int, int] | None:
        with self._lock:
            if worker < len(self._blocks) and self._blocks[worker][0] < self._blocks[worker][1]:
                block = self._blocks[worker]
                block[0] += 1
                return self.items[block[0] - 1]
            block = max(self._blocks, key=lambda b: b[1] - b[0])
            if block[0] >= block[1]:
                return None
            block[1] -= 1
            return self.items[block[1]]


def _fetch_strips(img, strips: _Strips, out: np.ndarray, worker: int = 0) -> None:
    region = _vips().Region.new(img)
    w = img.width
    while (item := strips.take(worker)) is not None:
        y, rows = item
        out[y : y + rows] = np.frombuffer(region.fetch(0, y, w, rows), np.uint8).reshape(rows, w, 3)


realize = _Realizer()


class _VipsPatchReader:
    """``fetch(x, y, w, h)`` at one level with one ``pyvips.Region`` per thread."""

    def __init__(self, backend: _VipsBackendBase, level: int, tile_cache: bool = True) -> None:
        self.backend = backend
        self.level = level
        self.tile_cache = tile_cache
        self._local = threading.local()

    def _region(self):
        gen = self.backend._generation[self.level]
        cached = getattr(self._local, "region", None)
        if cached is None or cached[0] != gen:
            img = (
                self.backend._patch_source(self.level)
                if self.tile_cache
                else self.backend._level_image(self.level)
            )
            cached = (gen, _vips().Region.new(img))
            self._local.region = cached
        return cached[1]

    def read_inside(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        try:
            mem = self._region().fetch(x, y, w, h)
        except _vips().Error as exc:
            raise self.backend._failed(
                self.level, f"cannot read {w}x{h} px at ({x},{y}) of level {self.level}", exc
            ) from None
        return _to_array(mem, w, h)  # pyvips hands over a fresh, writable buffer: no copy

    def fetch(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        x, y, w, h = int(x), int(y), int(w), int(h)
        lw, lh = self.backend.level_dimensions[self.level]
        if x >= 0 and y >= 0 and x + w <= lw and y + h <= lh:
            return self.read_inside(x, y, w, h)
        out = np.full((h, w, 3), WHITE, np.uint8)  # parts outside the level are white
        x0, y0, x1, y1 = max(0, x), max(0, y), min(lw, x + w), min(lh, y + h)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self.read_inside(x0, y0, x1 - x0, y1 - y0)
        return out


class _VipsBackendBase(Backend):
    """Shared pyvips pixel code; subclasses provide ``_load_level``."""

    name = "pyvips"

    def __init__(self) -> None:
        self._levels: dict[int, pyvips.Image] = {}
        self._readers: dict[tuple[int, bool], _VipsPatchReader] = {}
        self._generation: dict[int, int] = {}
        self._lock = threading.Lock()

    def _load_level(self, level: int) -> pyvips.Image:  # pragma: no cover - abstract
        """The level as a pyvips image of this backend's own (loaders pass ``revalidate=True``:
        libvips' operation cache would hand every reopening of the file the same image, and with
        it the tiles a failed decode left black)."""
        raise NotImplementedError

    def _failed(self, level: int, what: str, exc: Exception) -> SlideError:
        """After a decode error libvips keeps the broken tile (as black) in the level's tile cache;
        drop the level so the next read decodes again (and fails again) instead of returning black."""
        with self._lock:
            if self._levels.pop(level, None) is not None:
                self._generation[level] = self._generation.get(level, 0) + 1
        return self.error(f"{what} ({_reason(exc)})")

    def _level_image(self, level: int) -> pyvips.Image:
        img = self._levels.get(level)
        if img is None:
            with self._lock:
                img = self._levels.get(level)
                if img is None:
                    self._generation.setdefault(level, 0)
                    try:
                        img = to_srgb8(self._load_level(level))
                    except _vips().Error as exc:
                        raise self.error(f"cannot load level {level} ({_reason(exc)})") from None
                    self._levels[level] = img
        return img

    def _patch_source(self, level: int) -> pyvips.Image:
        """A tile-cached view of the level for one patch-reading thread.

        Each thread gets its own cache: a shared (threaded) cache serialises its users on one
        lock, while per-thread caches scale (~1.9x on 2 cores vs ~1.7x, measured), and reader
        threads work on their own batches of neighbouring patches anyway. Only patch readers
        get one: one-off ``read_level`` calls read the level directly."""
        img = self._level_image(level)
        tw, th = self._tile_size(level)
        if tw and th:
            img = img.tilecache(
                tile_width=tw,
                tile_height=th,
                max_tiles=PATCH_TILE_CACHE,
                access="random",
                threaded=False,
                persistent=True,
            )
        return img

    def _tile_size(self, level: int) -> tuple[int, int]:
        return 0, 0  # no tiles: nothing to cache

    def _reader(self, level: int, tile_cache: bool = True) -> _VipsPatchReader:
        key = (level, tile_cache)
        reader = self._readers.get(key)
        if reader is None:
            self._level_image(level)  # load it now: errors surface here
            with self._lock:
                reader = self._readers.setdefault(key, _VipsPatchReader(self, level, tile_cache))
        return reader

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if w * h <= FETCH_BUDGET_PX:  # one-off reads: no per-thread tile cache kept for them
            return self._reader(level, tile_cache=False).read_inside(x, y, w, h)
        try:
            crop = self._level_image(level).crop(x, y, w, h)
            return _to_array(bytearray(crop.write_to_memory()), w, h)
        except _vips().Error as exc:
            raise self._failed(
                level, f"cannot read {w}x{h} px at ({x},{y}) of level {level}", exc
            ) from None

    def render(self, region: Region) -> np.ndarray:
        if region.is_identity:
            return padded_read(
                self, region.level, int(region.x), int(region.y), region.out_w, region.out_h
            )
        img = self._level_image(region.level)
        lw, lh = img.width, img.height
        m = region.margin()
        sx, sy = region.scale_x, region.scale_y
        tw, th = self._tile_size(region.level)
        rx0, rx1 = _span(region.x, region.x + region.w, sx, m, tw)
        ry0, ry1 = _span(region.y, region.y + region.h, sy, m, th)
        cx0, cy0, cx1, cy1 = max(0, rx0), max(0, ry0), min(lw, rx1), min(lh, ry1)
        try:
            src = img.crop(cx0, cy0, cx1 - cx0, cy1 - cy0)
            if (cx0, cy0, cx1, cy1) != (rx0, ry0, rx1, ry1):  # span reaches past the edge
                src = src.embed(cx0 - rx0, cy0 - ry0, rx1 - rx0, ry1 - ry0, extend="copy")
            # what alignment could not absorb (scales like 1, 1/2, 4/5 have few phases, e.g. a
            # half-pixel origin at scale 1): resample the source at that sub-pixel offset with a
            # 5-tap cubic convolution (integer SIMD path, ~10x cheaper than affine)
            ex = (region.x - rx0) * sx - round((region.x - rx0) * sx)
            ey = (region.y - ry0) * sy - round((region.y - ry0) * sy)
            if abs(ex) > SUBPIXEL_TOLERANCE:
                src = src.conv(
                    _shift_mask(max(-0.99, min(0.99, ex / sx)), horizontal=True),
                    precision="integer",
                )
            if abs(ey) > SUBPIXEL_TOLERANCE:
                src = src.conv(
                    _shift_mask(max(-0.99, min(0.99, ey / sy)), horizontal=False),
                    precision="integer",
                )
            resized = _lanczos(src, sx, sy)
            ox = min(
                max(0, int(round((region.x - rx0) * sx))), max(0, resized.width - region.out_w)
            )
            oy = min(
                max(0, int(round((region.y - ry0) * sy))), max(0, resized.height - region.out_h)
            )
            if resized.width < ox + region.out_w or resized.height < oy + region.out_h:
                resized = resized.embed(
                    0,
                    0,
                    max(resized.width, ox + region.out_w),
                    max(resized.height, oy + region.out_h),
                    extend="copy",
                )
            out = resized.crop(ox, oy, region.out_w, region.out_h)
            return realize(out, (cx1 - cx0) * (cy1 - cy0))
        except _vips().Error as exc:
            raise self._failed(
                region.level,
                f"cannot read level {region.level} around ({int(region.x)},{int(region.y)})",
                exc,
            ) from None

    def patch_reader(self, level: int) -> _VipsPatchReader:
        return self._reader(level)


def _lanczos(img, sx: float, sy: float):
    """``img`` scaled by ``sx, sy`` with Lanczos-3: the same pixels as ``resize``, cheaper.

    From a scale of 1/4 up, ``resize`` is ``reduceh`` then ``reducev``; doing ``reducev`` first
    (libvips vectorises it well) leaves the costlier horizontal pass only the output's rows:
    bit-identical output for about 15% less CPU. Below 1/4 ``resize`` shrinks first, and above 1
    (a view may be stretched by less than a pixel) it enlarges: both stay with ``resize``."""
    if not (0.25 <= sx <= 1.0 and 0.25 <= sy <= 1.0):
        return img.resize(sx, vscale=sy, kernel="lanczos3")
    if sy != 1.0:
        img = img.reducev(1.0 / sy, kernel="lanczos3")
    if sx != 1.0:
        img = img.reduceh(1.0 / sx, kernel="lanczos3")
    return img


def _aligned_span(
    f0: float, f1: float, scale: float, margin: int, tile: int = 0, search: int = 48
) -> tuple[int, int]:
    """Integer source span ``[r0, r1)`` around ``[f0, f1)`` with at least ``margin`` px of kernel
    context, chosen so that ``(f0 - r0) * scale`` and ``(r1 - r0) * scale`` are (nearly) whole.

    ``resize`` has no sub-pixel offset and rounds its output size (stretching the mapping to fit),
    so a naive crop misplaces the view by up to half an output pixel. The search stays inside
    the tiles the span needs anyway (``tile`` > 0), so it never costs an extra tile decode; what
    it cannot absorb is corrected by a sub-pixel shift. The span may reach past the level's edge:
    the caller pads with edge pixels.
    """

    def frac_err(v: float) -> float:
        return abs(v - round(v))

    r0 = base0 = math.floor(f0) - margin
    lo = base0 - search
    if tile > 0 and base0 >= 0:
        lo = max(lo, (base0 // tile) * tile)
    best = 2.0
    for r in range(base0, lo - 1, -1):
        err = frac_err((f0 - r) * scale)
        if err < best - 1e-9:
            r0, best = r, err
            if err < 0.015:
                break
    r1 = base1 = math.ceil(f1) + margin
    hi = base1 + search
    if tile > 0:
        hi = min(hi, max(base1, -(-base1 // tile) * tile))
    best = 2.0
    for r in range(base1, hi + 1):
        err = frac_err((r - r0) * scale)
        if err < best - 1e-9:
            r1, best = r, err
            if err < 0.015:
                break
    return r0, r1


def _phase_error(f0: float, r0: int, scale: float) -> float:
    off = (f0 - r0) * scale
    return abs(off - round(off))


def _span(f0: float, f1: float, scale: float, margin: int, tile: int) -> tuple[int, int]:
    """``_aligned_span`` within the needed tiles, or anywhere when that leaves a visible error.

    Unrestricted, the leftover error of a rational scale p/q is at most 1/(2q) output px, i.e.
    at most half a source pixel, which the 5-tap shift mask covers."""
    span = _aligned_span(f0, f1, scale, margin, tile)
    size = (span[1] - span[0]) * scale
    if tile and (
        _phase_error(f0, span[0], scale) > SUBPIXEL_TOLERANCE or abs(size - round(size)) > 0.02
    ):
        span = _aligned_span(f0, f1, scale, margin, 0)
    return span


class VipsTiffBackend(JpegViews, _VipsBackendBase):
    """A TIFF-family slide: OpenSlide's level table and metadata, pixels from ``tiffload``; views
    of JPEG-tiled levels made from their tiles directly (``jpegtiles``)."""

    def __init__(self, path: Path, fmt: str, osr, pages: list[TiffPage]) -> None:
        super().__init__()
        self._meta = OpenSlideBackend(path, fmt, osr)  # metadata + associated images
        self.path = path
        self.format = fmt
        self.vendor = self._meta.vendor
        self.properties = self._meta.properties
        self.level_dimensions = self._meta.level_dimensions
        self.level_downsamples = self._meta.level_downsamples
        self.associated_names = self._meta.associated_names
        mapping = _map_levels(self.level_dimensions, pages)
        assert mapping is not None
        self.pages = mapping
        self._page_info = {p.index: p for p in pages}

    @staticmethod
    def unsupported_reason(fmt: str, osr, pages: list[TiffPage] | None) -> str | None:
        """Why pyvips cannot read this slide's levels, or None when it can."""
        if fmt not in VIPS_TIFF_FORMATS:
            return f"{fmt} is not a TIFF layout that tiffload reads"
        if pages is None:
            return "its TIFF structure could not be parsed"
        dims = tuple((int(w), int(h)) for w, h in osr.level_dimensions)
        mapping = _map_levels(dims, pages)
        if mapping is None:
            return "its TIFF pages do not match OpenSlide's level table"
        by_index = {p.index: p for p in pages}
        for page in mapping:
            comp = by_index[page].compression
            if comp not in VIPS_COMPRESSIONS:
                return (
                    f"page {page} uses TIFF compression {comp}, which pyvips-binary does not decode"
                )
            if by_index[page].planar == 2 and by_index[page].samples > 1:
                return (
                    f"page {page} keeps each colour in its own tiles (planar-separate), "
                    "which tiffload does not read when tiled"
                )
        return None

    def _tile_size(self, level: int) -> tuple[int, int]:
        page = self._page_info[self.pages[level]]
        return page.tile_w, page.tile_h

    def jpeg_page(self, level: int) -> TiffPage | None:
        return self._page_info[self.pages[level]]

    def render_slot(self) -> AbstractContextManager[tuple[ThreadPoolExecutor | None, int]]:
        return realize.slot()

    def render(self, region: Region) -> np.ndarray:
        image = self.jpeg_render(region)
        return image if image is not None else super().render(region)

    def _load_level(self, level: int):
        return _vips().Image.tiffload(str(self.path), page=self.pages[level], **TIFFLOAD_OPTIONS)

    def associated_image(self, name: str) -> Image.Image:
        return self._meta.associated_image(name)

    def close(self) -> None:
        self._levels.clear()
        self._readers.clear()
        self._meta.close()


def _map_levels(dims: tuple[tuple[int, int], ...], pages: list[TiffPage]) -> list[int] | None:
    """TIFF page index of each OpenSlide level: the first unused tiled page of the same size."""
    used: set[int] = set()
    mapping: list[int] = []
    for w, h in dims:
        match = next(
            (
                p.index
                for p in pages
                if p.tiled and p.width == w and p.height == h and p.index not in used
            ),
            None,
        )
        if match is None:
            return None
        used.add(match)
        mapping.append(match)
    return mapping
