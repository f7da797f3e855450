"""DeepZoom (DZI) descriptors and tiles from our slide engine, with a small tile cache.

DeepZoom level ``L`` of an image ``W x H`` is the image scaled by ``2**(L - max_level)``, where
``max_level = ceil(log2(max(W, H)))``; each level is cut into ``TILE_SIZE`` tiles that overlap
their neighbours by ``OVERLAP`` pixels. Tiles are rendered with ``Slide.read`` (the engine picks
the pyramid level and resamples), so the viewer never sees label or macro images: the engine's
views cannot contain them, and there is no endpoint for associated images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from slidescout.core.imaging import encode_jpeg
from slidescout.slides import open_slide
from slidescout.slides.cache import LRUCache

TILE_SIZE = 254
OVERLAP = 1
FORMAT = "jpeg"
QUALITY = 82
MIME = "image/jpeg"
MIN_READ_SIDE = 16


@dataclass(frozen=True)
class DeepZoom:
    """DZI geometry of a ``width x height`` image."""

    width: int
    height: int
    tile_size: int = TILE_SIZE
    overlap: int = OVERLAP

    @property
    def max_level(self) -> int:
        return max(0, math.ceil(math.log2(max(self.width, self.height, 1))))

    def level_size(self, level: int) -> tuple[int, int]:
        scale = 2 ** (self.max_level - level)
        return max(1, math.ceil(self.width / scale)), max(1, math.ceil(self.height / scale))

    def tile_count(self, level: int) -> tuple[int, int]:
        w, h = self.level_size(level)
        return math.ceil(w / self.tile_size), math.ceil(h / self.tile_size)

    def tile_box(
        self, level: int, col: int, row: int
    ) -> tuple[tuple[int, int, int, int], tuple[int, int]] | None:
        """(level-0 box, tile pixel size) of a tile, or None when the tile does not exist."""
        if not 0 <= level <= self.max_level:
            return None
        cols, rows = self.tile_count(level)
        if not (0 <= col < cols and 0 <= row < rows):
            return None
        lw, lh = self.level_size(level)
        ts, ov = self.tile_size, self.overlap
        x0 = col * ts - (ov if col > 0 else 0)
        y0 = row * ts - (ov if row > 0 else 0)
        x1 = min(lw, (col + 1) * ts + ov)
        y1 = min(lh, (row + 1) * ts + ov)
        scale = 2 ** (self.max_level - level)
        bx, by = x0 * scale, y0 * scale
        bw = min(self.width, x1 * scale) - bx
        bh = min(self.height, y1 * scale) - by
        return (bx, by, max(1, bw), max(1, bh)), (x1 - x0, y1 - y0)

    def descriptor(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="{FORMAT}" '
            f'Overlap="{self.overlap}" TileSize="{self.tile_size}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>\n'
        )


class TileServer:
    """Descriptors, tiles and thumbnails of slide files, with an LRU of encoded tiles."""

    def __init__(self, cache_mb: int = 64) -> None:
        self._tiles: LRUCache[tuple, bytes] = LRUCache(max_bytes=cache_mb * 1024 * 1024, sizeof=len)

    @staticmethod
    def _open(path: Path):
        return open_slide(path)

    def geometry(self, path: Path) -> DeepZoom:
        w, h = self._open(path).dimensions
        return DeepZoom(int(w), int(h))

    def thumb_box(self, path: Path) -> tuple[int, int, int, int]:
        """The level-0 box a thumbnail shows: the slide's ``bounds`` when it has some, else all of it."""
        slide = self._open(path)
        if slide.bounds is not None:
            return slide.bounds.as_tuple()
        w, h = slide.dimensions
        return (0, 0, int(w), int(h))

    def descriptor(self, path: Path) -> str:
        return self.geometry(path).descriptor()

    def tile(self, path: Path, level: int, col: int, row: int) -> bytes | None:
        """JPEG bytes of a tile, or None when the tile is outside the pyramid."""
        slide = self._open(path)
        dz = DeepZoom(*(int(v) for v in slide.dimensions))
        spec = dz.tile_box(level, col, row)
        if spec is None:
            return None
        st = path.stat()
        key = (str(path), st.st_mtime_ns, level, col, row)
        cached = self._tiles.get(key)
        if cached is not None:
            return cached
        (bx, by, bw, bh), (tw, th) = spec
        # the engine renders at least MIN_SIDE px; the few tiny top-level tiles are shrunk after
        view = slide.read((bx, by, bw, bh), max_side=max(tw, th, MIN_READ_SIDE))
        rgb = view.image
        if rgb.shape[1] != tw or rgb.shape[0] != th:
            rgb = np.asarray(
                Image.fromarray(np.ascontiguousarray(rgb)).resize(
                    (tw, th), Image.Resampling.LANCZOS
                )
            )
        return self._tiles.put(key, encode_jpeg(rgb, QUALITY))

    def thumbnail(
        self, path: Path, max_side: int = 1024
    ) -> tuple[bytes, tuple[int, int, int, int]]:
        """A JPEG of the whole slide (its ``bounds`` when it has some) and the level-0 box it shows."""
        key = (str(path), path.stat().st_mtime_ns, "thumb", max_side)
        view = self._open(path).thumbnail(max_side)
        box = view.box.as_tuple()
        cached = self._tiles.get(key)
        if cached is None:
            cached = self._tiles.put(key, encode_jpeg(view.image, quality=85))
        return cached, box


__all__ = ["DeepZoom", "TileServer", "TILE_SIZE", "OVERLAP", "encode_jpeg"]
