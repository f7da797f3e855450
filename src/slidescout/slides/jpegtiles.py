"""Views of JPEG-tiled TIFF levels at close to the cost of decoding their tiles.

Most slides (Aperio SVS, generic tiled TIFFs) store their levels as JPEG tiles. For those, a view
is made here instead of by libvips: the tiles under the box (plus the Lanczos kernel's reach) are
read with ``os.pread`` and decoded by libjpeg-turbo (imagecodecs) into one buffer, and the exact,
fractional box is resampled to the output size with Lanczos-3 by cykooz_resizer (the Rust crate
fast_image_resize, SIMD: Pillow's filter and box semantics, to within fixed-point rounding).
libvips' tiffload + reduce spent ~1.9x the CPU of decoding the tiles alone (its horizontal
reduce ~0.5x by itself); this path ~1.2-1.6x on the loaded 2-core machine (docs/benchmarks.md).

Exactness: a level is used here only after one of its tiles decoded here equals the same tile
decoded by libvips, bit for bit (same libjpeg-turbo settings); otherwise, without imagecodecs or
cykooz_resizer, or for a span over ``SPAN_BUDGET_PX``, the backend renders with libvips.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from slidescout.errors import SlideError
from slidescout.slides.backends import WHITE, Region
from slidescout.slides.tiffifd import TiffPage

log = logging.getLogger(__name__)

JPEG = 7
JCS_RGB, JCS_EXT_RGBX = 2, 7  # libjpeg output colour spaces: RGB, RGB + a pad byte of 255
# a view whose tiles span more level pixels than this is left to libvips, which streams it
SPAN_BUDGET_PX = 16 * 1024 * 1024
SCRATCH_KEEP_BYTES = 96 * 1024 * 1024  # scratch buffers kept between views, all threads together


@cache
def available() -> bool:
    """Whether imagecodecs (libjpeg-turbo) and cykooz_resizer can be imported, and the resizer
    writes into a Pillow image over our own memory (what ``lanczos`` relies on)."""
    try:
        import cykooz_resizer  # noqa: F401
        import imagecodecs  # noqa: F401

        src = np.full((8, 8, 4), 137, np.uint8)
        src[..., 3] = 7  # an ordinary channel: must not weigh the others
        got = lanczos(src, 0.0, 0.0, 8.0, 8.0, 4, 4)
    except Exception as exc:  # a missing or broken install: libvips renders instead
        log.debug("JPEG tiles left to libvips: %s", exc)
        return False
    if not (got == 137).all():
        log.debug("JPEG tiles left to libvips: cykooz_resizer does not resize in place as expected")
        return False
    return True


def eligible(page: TiffPage) -> bool:
    """A tiled page of 8-bit RGB or YCbCr JPEG tiles with all samples in each tile."""
    return (
        page.tiled
        and page.compression == JPEG
        and page.samples == 3
        and page.bits == 8
        and page.planar == 1
        and page.photometric in (2, 6)
        and page.tile_w > 0
        and page.tile_h > 0
    )


class TileError(Exception):
    """A tile that cannot be read or decoded (the backend words it as a ``SlideError``)."""


class JpegLevel:
    """The JPEG tiles of one TIFF page, decoded on demand; thread-safe.

    Nothing is allocated per view but the output: each thread decodes into its own tile buffer
    and assembles into its own scratch buffer, both kept between views (fresh multi-MB buffers
    cost a page fault per 4 kB, ~15% of the decode here)."""

    def __init__(self, fd: int, page: TiffPage) -> None:
        self.fd = fd
        self.page = page
        self.cols = math.ceil(page.width / page.tile_w)
        self.rows = math.ceil(page.height / page.tile_h)
        self._tables = page.jpeg_tables or None
        self._colorspace: int | None = None
        if page.photometric == 2:  # RGB tiles: untransformed unless they say JFIF (tifffile's rule)
            first = int(np.argmax(page.counts > 0))
            head = os.pread(fd, min(64, int(page.counts[first])), int(page.offsets[first]))
            self._colorspace = None if b"JFIF" in head else 2

    def tile(self, index: int, out: np.ndarray | None = None, channels: int = 3) -> np.ndarray:
        """(tile_h, tile_w, channels) RGB (4: RGBX, X = 255) of tile ``index``, into ``out`` if
        given (raises ``TileError``)."""
        import imagecodecs

        offset, count = int(self.page.offsets[index]), int(self.page.counts[index])
        if count == 0:
            raise TileError(f"tile {index} has no data (byte count 0)")
        data = os.pread(self.fd, count, offset)
        if len(data) < count:
            raise TileError(f"tile {index} is cut off by the end of the file")
        shape = (self.page.tile_h, self.page.tile_w, channels)
        try:
            arr = imagecodecs.jpeg8_decode(
                data,
                tables=self._tables,
                colorspace=self._colorspace,
                outcolorspace=JCS_EXT_RGBX if channels == 4 else JCS_RGB,
                shape=shape[:2],
                out=out,
            )
        except Exception as exc:  # imagecodecs.Jpeg8Error and friends
            raise TileError(f"tile {index} does not decode ({exc})") from None
        if arr.shape != shape:
            raise TileError(
                f"tile {index} decodes to {arr.shape[1::-1]} px, not the "
                f"{self.page.tile_w}x{self.page.tile_h} the page declares"
            )
        return arr

    def read(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        pool: Executor | None = None,
        workers: int = 1,
        *,
        out: np.ndarray,
        channels: int = 3,
    ) -> np.ndarray:
        """RGB (``channels`` 4: RGBX) of the level rectangle ``[x0, x1) x [y0, y1)`` (inside the
        level) into ``out``, its tile rows decoded by ``workers`` threads (the caller and
        ``pool``'s)."""
        tw, th = self.page.tile_w, self.page.tile_h

        def fill(rows: list[int]) -> None:
            with BUFFERS.lease(th * tw * channels) as raw:
                buf = raw.reshape(th, tw, channels)
                for ty in rows:
                    for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                        tile = self.tile(ty * self.cols + tx, buf, channels)
                        ax, ay = tx * tw, ty * th
                        cx0, cy0 = max(ax, x0), max(ay, y0)
                        cx1, cy1 = min(ax + tw, x1), min(ay + th, y1)
                        out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = tile[
                            cy0 - ay : cy1 - ay, cx0 - ax : cx1 - ax
                        ]

        _split(fill, list(range(y0 // th, (y1 - 1) // th + 1)), pool, workers)
        return out


class Buffers:
    """Reusable byte buffers shared by every thread, so a view allocates no multi-MB buffer (a
    fresh one costs a page fault per 4 kB, as much CPU as a fifth of the decoding). ``lease(n)``
    lends the smallest free buffer of at least ``n`` bytes, or a new one; on return, the free
    ones beyond ``keep`` bytes (smallest first) are let go."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @contextmanager
    def lease(self, nbytes: int) -> Iterator[np.ndarray]:
        buf = None
        with self._lock:  # the free list is sorted by size: the first that fits is the smallest
            for i, free in enumerate(self._free):
                if free.size >= nbytes:
                    buf = self._free.pop(i)
                    break
        if buf is None:
            buf = np.empty(max(nbytes, 1), np.uint8)
        try:
            yield buf[:nbytes]
        finally:
            with self._lock:
                self._free.append(buf)
                self._free.sort(key=lambda b: b.size)
                while sum(b.size for b in self._free) > self.keep:
                    self._free.pop(0)


BUFFERS = Buffers(SCRATCH_KEEP_BYTES)


def _split(fill: Callable[[list[int]], None], rows: list[int], pool, workers: int) -> None:
    """``fill`` over contiguous shares of ``rows``: the caller does the first, ``pool`` the rest."""
    workers = max(1, min(workers, len(rows)))
    if workers == 1 or pool is None:
        fill(rows)
        return
    per = -(-len(rows) // workers)
    shares = [rows[i : i + per] for i in range(0, len(rows), per)]
    futures = [pool.submit(fill, share) for share in shares[1:]]
    fill(shares[0])
    for f in futures:
        f.result()


_resizers = threading.local()


def lanczos(
    src: np.ndarray, x: float, y: float, w: float, h: float, out_w: int, out_h: int
) -> np.ndarray:
    """The box ``(x, y, w, h)`` of ``src`` (4 channels, fractional coordinates in its pixels)
    resampled to an ``out_w x out_h`` array of its first 3 channels with Lanczos-3, as Pillow's
    ``resize(box=...)`` does to within fixed-point rounding (the kernel clipped and renormalised
    at ``src``'s edges).

    cykooz_resizer's Rust resizer reads and writes Pillow images in place: images over ``src``
    and over a leased buffer share their memory (``Image.frombuffer``), so no multi-MB buffer is
    allocated or copied (``ImageData`` copies its input twice and allocates its output: ~1900
    page faults per view, as much CPU as a third of the decoding). The fourth channel is an
    ordinary one (``use_alpha`` off; the package's ``resize_pil`` would premultiply an RGBA
    image by it)."""
    from cykooz_resizer import CropBox, FilterType, ResizeAlg, ResizeOptions
    from cykooz_resizer.rust_lib import PilImageWrapper, RustResizer
    from PIL import Image

    resizer = getattr(_resizers, "resizer", None)
    if resizer is None:
        resizer = _resizers.resizer = RustResizer()
    sh, sw = src.shape[:2]
    x0, y0 = max(0.0, x), max(0.0, y)
    options = ResizeOptions(
        resize_alg=ResizeAlg.convolution(FilterType.lanczos3),
        crop_box=CropBox(x0, y0, min(w, sw - x0), min(h, sh - y0)),
        use_alpha=False,
    )
    out = np.empty((out_h, out_w, 3), np.uint8)
    with BUFFERS.lease(out_w * out_h * 4) as raw:
        scratch = raw.reshape(out_h, out_w, 4)
        source = Image.frombuffer("RGBA", (sw, sh), src, "raw", "RGBA", 0, 1)
        dest = Image.frombuffer("RGBA", (out_w, out_h), scratch, "raw", "RGBA", 0, 1)
        resizer.resize_pil(PilImageWrapper(source), PilImageWrapper(dest), options.rust_options)
        for c in range(3):  # three strided copies: ~5x faster than out[:] = scratch[..., :3]
            np.copyto(out[..., c], scratch[..., c])
    return out


class JpegViews:
    """Views of JPEG-tiled levels made here (mixin for a backend that reads TIFF pages).

    The backend provides ``jpeg_page(level)`` (its TIFF page, or None), ``read_level`` (its own
    reader, the reference a level is checked against), ``render_slot()`` (a context giving the
    executor and the number of threads a render may use now), ``path``, ``level_dimensions``
    and ``error``."""

    path: Path
    level_dimensions: tuple[tuple[int, int], ...]
    read_level: Callable[[int, int, int, int, int], np.ndarray]
    error: Callable[[str], SlideError]

    jpeg_tiles = True  # False: every view through the backend's own renderer (benchmarks)

    def __init__(self) -> None:
        self._jpeg = _JpegState()
        super().__init__()

    def jpeg_page(self, level: int) -> TiffPage | None:
        """The TIFF page of ``level``; None: not a TIFF page (the backend renders it)."""
        return None

    def render_slot(self) -> AbstractContextManager[tuple[Executor | None, int]]:
        """The executor and thread count a render may use now: by default the caller alone."""
        return nullcontext((None, 1))

    def jpeg_level(self, level: int) -> JpegLevel | None:
        """The level's JPEG tiles, once one of them decoded here equals this backend's own
        reading of it; None when the level is not JPEG-tiled or the check fails."""
        state = self._jpeg
        if level not in state.levels:
            with state.lock:
                if level not in state.levels:
                    state.levels[level] = self._open_jpeg_level(level)
        return state.levels[level]

    def _open_jpeg_level(self, level: int) -> JpegLevel | None:
        page = self.jpeg_page(level)
        if page is None or not eligible(page) or not available() or not page.counts.any():
            return None
        if self._jpeg.fd is None:
            fd = os.open(self.path, os.O_RDONLY)
            weakref.finalize(self, os.close, fd)
            self._jpeg.fd = fd
        jl = JpegLevel(self._jpeg.fd, page)
        index = int(np.argmax(page.counts > 0))
        ty, tx = divmod(index, jl.cols)
        lw, lh = self.level_dimensions[level]
        x, y = tx * page.tile_w, ty * page.tile_h
        w, h = min(page.tile_w, lw - x), min(page.tile_h, lh - y)
        try:
            same = np.array_equal(jl.tile(index)[:h, :w], self.read_level(level, x, y, w, h))
        except (TileError, SlideError) as exc:
            log.debug("%s level %d: JPEG tiles left to libvips (%s)", self.path, level, exc)
            return None
        if not same:
            log.debug("%s level %d: JPEG tiles decode differently here; libvips", self.path, level)
        return jl if same else None

    def jpeg_render(self, region: Region) -> np.ndarray | None:
        """``region`` made from the level's JPEG tiles; None when the level is not served here
        or the tiles to decode span more than ``SPAN_BUDGET_PX``."""
        jl = self.jpeg_level(region.level) if self.jpeg_tiles else None
        if jl is None:
            return None
        lw, lh = self.level_dimensions[region.level]
        if region.is_identity:
            x, y = int(region.x), int(region.y)
            span = (x, y, x + region.out_w, y + region.out_h)
        else:
            m = region.margin()
            span = (
                max(0, math.floor(region.x) - m),
                max(0, math.floor(region.y) - m),
                min(lw, math.ceil(region.x + region.w) + m),
                min(lh, math.ceil(region.y + region.h) + m),
            )
        if (span[2] - span[0]) * (span[3] - span[1]) > SPAN_BUDGET_PX:
            return None
        try:
            with self.render_slot() as (pool, workers):
                if region.is_identity:
                    return _copy(jl, span, lw, lh, pool, workers)
                x0, y0, x1, y1 = span
                with BUFFERS.lease((y1 - y0) * (x1 - x0) * 4) as raw:
                    src = raw.reshape(y1 - y0, x1 - x0, 4)
                    jl.read(x0, y0, x1, y1, pool, workers, out=src, channels=4)
                    box = (region.x - x0, region.y - y0, region.w, region.h)
                    return lanczos(src, *box, region.out_w, region.out_h)
        except TileError as exc:
            raise self.error(
                f"cannot read level {region.level} around ({int(region.x)},{int(region.y)}) ({exc})"
            ) from None


@dataclass
class _JpegState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    levels: dict[int, JpegLevel | None] = field(default_factory=dict)
    fd: int | None = None


def _copy(jl: JpegLevel, span: tuple[int, int, int, int], lw: int, lh: int, pool, workers):
    """The level's pixels in ``span`` as they are, white outside the level."""
    x, y, xe, ye = span
    x0, y0, x1, y1 = max(0, x), max(0, y), min(lw, xe), min(lh, ye)
    if (x0, y0, x1, y1) == span:
        return jl.read(x0, y0, x1, y1, pool, workers, out=np.empty((ye - y, xe - x, 3), np.uint8))
    out = np.full((ye - y, xe - x, 3), WHITE, np.uint8)
    if x1 > x0 and y1 > y0:
        jl.read(x0, y0, x1, y1, pool, workers, out=out[y0 - y : y1 - y, x0 - x : x1 - x])
    return out
