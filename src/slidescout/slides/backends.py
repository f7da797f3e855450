"""Pixel backends behind one interface (``Backend``), and helpers they share.

- ``VipsTiffBackend`` (backend_vips.py): TIFF-family slides OpenSlide recognises as
  ``generic-tiff`` or ``aperio``. OpenSlide gives the metadata and the level table; pyvips
  ``tiffload(page=N)`` reads the pixels (the pyvips wheel has no ``openslideload``); views of
  JPEG-tiled levels are made from the tiles themselves (jpegtiles.py).
- ``OpenSlideBackend`` (backend_openslide.py): every other OpenSlide format (NDPI, MRXS, SCN,
  DICOM, ...), and any TIFF whose pages pyvips cannot decode (e.g. JPEG 2000 SVS).
- ``TiffPyramidBackend`` / ``TifffileBackend`` (backend_tiff.py): TIFFs OpenSlide cannot open or
  reads in part (SubIFD / OME-TIFF / QPTIFF pyramids, WebP or JPEG 2000 tiles, channels).
- ``VipsImageBackend`` (backend_image.py): plain PNG/JPEG/WebP/TIFF... as a one-level slide.

``factory.open_backend`` picks one for a file, after ``tiffifd.tiff_pages`` and
``integrity`` have checked that a TIFF's bytes can hold what it declares. A backend works in
*level* pixel coordinates; the level-0 geometry (boxes, clamping, level choice) lives in
``render.py`` and ``slide.py``. Library exceptions never escape a backend: they become
``SlideError`` naming the file and the reason (``reasons.py`` words them).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from slidescout.errors import SlideError
from slidescout.slides.reasons import _reason, truncation_hint
from slidescout.slides.tiffifd import TiffPage, check_pages, is_tiff, tiff_pages

log = logging.getLogger(__name__)

__all__ = [  # TIFF structure and error wording live in tiffifd.py and reasons.py
    "BACKENDS",
    "VIPS_TIFF_FORMATS",
    "WHITE",
    "Backend",
    "PatchReader",
    "ReadPatchReader",
    "Region",
    "TiffPage",
    "_reason",
    "check_pages",
    "is_tiff",
    "padded_read",
    "render_by_reads",
    "rgba_to_rgb",
    "tiff_pages",
    "truncation_hint",
]

BACKENDS = ("auto", "pyvips", "openslide")
# OpenSlide formats whose pages pyvips' tiffload reads directly.
VIPS_TIFF_FORMATS = ("generic-tiff", "aperio")
WHITE = 255


@dataclass(frozen=True)
class Region:
    """What to render: an exact (fractional) rectangle in a level's pixels, and the output size."""

    level: int
    x: float
    y: float
    w: float
    h: float
    out_w: int
    out_h: int

    @property
    def scale_x(self) -> float:
        return self.out_w / self.w

    @property
    def scale_y(self) -> float:
        return self.out_h / self.h

    @property
    def is_identity(self) -> bool:
        """True when the output is exactly the level's pixels (integer origin, no resampling)."""
        return (
            self.out_w == self.w
            and self.out_h == self.h
            and float(self.x).is_integer()
            and float(self.y).is_integer()
        )

    def margin(self) -> int:
        """Level pixels of context around the rectangle that a Lanczos-3 kernel reaches."""
        return int(math.ceil(3.0 / min(self.scale_x, self.scale_y, 1.0))) + 1


class PatchReader(Protocol):
    """Fast repeated reads of one level (e.g. for an expert model's patch sampler)."""

    level: int

    def fetch(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) at level coordinates; parts outside the level are white."""
        ...


class Backend(ABC):
    """One open slide file. Subclasses fill the metadata fields in ``__init__``."""

    name: str = "?"
    path: Path
    format: str
    vendor: str | None
    properties: Mapping[str, str]
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    associated_names: tuple[str, ...] = ()
    reason: str = ""  # why this backend was chosen for the file (shown by ``info``)
    channels: tuple[str, ...] = ()  # channel names of a multi-channel (fluorescence) image
    channel_mapping: tuple[tuple[str, str], ...] = ()  # (channel, display colour) of the composite

    # -- geometry ---------------------------------------------------------------------------
    def level_scale(self, level: int) -> tuple[float, float]:
        """Level-0 pixels per level pixel along x and y (exact for this backend's reader)."""
        w0, h0 = self.level_dimensions[0]
        w, h = self.level_dimensions[level]
        return w0 / w, h0 / h

    # -- pixels -----------------------------------------------------------------------------
    @abstractmethod
    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) of a rectangle that lies inside the level."""

    @abstractmethod
    def render(self, region: Region) -> np.ndarray:
        """RGB uint8 (out_h, out_w, 3): ``region`` resampled with a Lanczos-quality kernel."""

    @abstractmethod
    def patch_reader(self, level: int) -> PatchReader:
        """A reader for many small reads at one level, safe to share between threads."""

    def associated_image(self, name: str) -> Image.Image:
        raise self.error(
            f"has no associated image {name!r}"
            + (
                f" (it has: {', '.join(self.associated_names)})"
                if self.associated_names
                else " (it has none)"
            )
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def identity(self) -> tuple[str, int, int]:
        """(where the slide is, modification time in ns, size in bytes): what caches key on.
        A backend over a folder or a URL (OME-Zarr) says what stands for its file."""
        st = self.path.stat()
        return str(self.path.resolve()), st.st_mtime_ns, st.st_size

    # -- helpers ----------------------------------------------------------------------------
    def error(self, reason: str) -> SlideError:
        return SlideError(f"slide {self.path.name}: {reason}")


# ------------------------------------------------------------------------------------------
# helpers shared by the backends


def padded_read(backend: Backend, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    """Read (x, y, w, h) at ``level``; the parts outside the level come back white."""
    lw, lh = backend.level_dimensions[level]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(lw, x + w), min(lh, y + h)
    if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
        return backend.read_level(level, x, y, w, h)
    out = np.full((h, w, 3), WHITE, np.uint8)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = backend.read_level(level, x0, y0, x1 - x0, y1 - y0)
    return out


class ReadPatchReader:
    """A patch reader over ``padded_read`` (for backends whose reads are already thread-safe)."""

    def __init__(self, backend: Backend, level: int) -> None:
        self.backend = backend
        self.level = level

    def fetch(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return padded_read(self.backend, self.level, int(x), int(y), int(w), int(h))


def render_by_reads(backend: Backend, region: Region, budget_px: int) -> np.ndarray:
    """``region`` rendered from ``read_level`` calls with PIL's Lanczos, in strips of at most
    ``budget_px`` level pixels, so memory stays bounded for any box."""
    lw, lh = backend.level_dimensions[region.level]
    if region.is_identity:
        return padded_read(
            backend, region.level, int(region.x), int(region.y), region.out_w, region.out_h
        )
    m = region.margin()
    rx0 = max(0, math.floor(region.x) - m)
    rx1 = min(lw, math.ceil(region.x + region.w) + m)
    sy = region.scale_y
    src_rows = max(1, budget_px // max(1, rx1 - rx0) - 2 * m)
    rows_per_chunk = max(1, int(src_rows * sy))
    out = np.empty((region.out_h, region.out_w, 3), np.uint8)
    for o0 in range(0, region.out_h, rows_per_chunk):
        o1 = min(region.out_h, o0 + rows_per_chunk)
        src0 = region.y + o0 / sy
        src1 = region.y + o1 / sy
        ry0 = max(0, math.floor(src0) - m)
        ry1 = min(lh, math.ceil(src1) + m)
        part = Image.fromarray(
            backend.read_level(region.level, rx0, ry0, rx1 - rx0, ry1 - ry0), "RGB"
        )
        box = (region.x - rx0, src0 - ry0, region.x + region.w - rx0, src1 - ry0)
        # reducing_gap: an integer box-reduce first for large factors, like libvips' resize
        part = part.resize(
            (region.out_w, o1 - o0), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0
        )
        out[o0:o1] = np.asarray(part)
    return out


def rgba_to_rgb(img: Image.Image) -> np.ndarray:
    """OpenSlide's RGBA (transparent where there is no tissue scan) composited on white."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3]
        rgb = arr[..., :3]
        if alpha.min() == 255:
            return np.ascontiguousarray(rgb)
        a = alpha[..., None].astype(np.uint16)
        out = (rgb.astype(np.uint16) * a + WHITE * (255 - a) + 127) // 255
        return out.astype(np.uint8)
    return np.asarray(img.convert("RGB"))
