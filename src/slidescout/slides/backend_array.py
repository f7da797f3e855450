"""``ArrayBackend``: the shared half of the backends whose reader hands back numpy arrays
(OME-Zarr, DICOM through wsidicom, CZI, iSyntax, VSI through slideio, LIF).

A subclass fills the metadata (levels, properties, channel names) and implements ``_raw``: the
reader's own pixels of a rectangle inside a level, as ``(h, w, samples)`` in the reader's dtype.
This class turns them into RGB uint8:

- RGB(A) uint8 passes through (RGBA composited on white), so views are pixel-exact against the
  reader wherever the codec is lossless or the tiles are passed through;
- one grey channel becomes grey RGB (deeper types scaled by the channel's window);
- several channels (fluorescence) become the composite ``backend_tiff`` draws for OME-TIFF: up to
  three channels, each stretched between its 0.5th and 99.8th percentile on the coarsest level,
  a nuclear stain blue, the others green then red.

Reads go through one lock per file (most of these readers keep one decoder state). A view reads
the level rectangle it needs (plus the Lanczos kernel's reach) once, and resamples it as the pyvips
backends resample theirs (the same ``_VipsBackendBase.render`` over the rectangle held in memory):
libvips' Lanczos-3 is 2-7x faster than PIL's here. Sources larger than ``VIPS_RENDER_MAX_PX`` go
through ``render_by_reads`` (PIL Lanczos, bounded strips) instead.
"""

from __future__ import annotations

import math
import threading
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from slidescout.errors import SlideError
from slidescout.slides.backend_tiff import WINDOW_SAMPLE_PX, _composite_np, _window
from slidescout.slides.backend_vips import _vips, _VipsBackendBase
from slidescout.slides.backends import (
    Backend,
    ReadPatchReader,
    Region,
    padded_read,
    render_by_reads,
)
from slidescout.slides.tiffmeta import composite_mapping

READ_BUDGET_PX = 16 * 1024 * 1024
VIPS_RENDER_MAX_PX = 24 * 1024 * 1024  # the most level pixels a view resamples in memory
SPAN_SLACK = 52  # the pyvips render may widen its source span by up to 48 px to align phases
T = TypeVar("T")


class MissingReader(SlideError):
    """A format's reader is not installed (or fails to import): the message names the extra."""


def missing_extra(name: str, what: str, extra: str, exc: BaseException) -> MissingReader:
    """The one line for a format whose reader is not installed (or fails to import)."""
    if isinstance(exc, ModuleNotFoundError):
        why = "is not installed"
    else:
        why = f"fails to import ({' '.join(str(exc).split())[:160] or type(exc).__name__})"
    return MissingReader(
        f"slide {name}: {what}; its reader {why}: install the '{extra}' extra "
        f'(pip install "slidescout[{extra}]")'
    )


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """(h, w, 1|3|4) pixels of any integer or float type as RGB uint8 (no windowing)."""
    if arr.dtype != np.uint8:
        if arr.dtype.kind in "ui":
            scale = 255.0 / float(np.iinfo(arr.dtype).max)
            arr = (arr.astype(np.float32) * scale).round().astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:  # RGBA on white
        a = arr[..., 3:4].astype(np.uint16)
        rgb = arr[..., :3].astype(np.uint16)
        return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


class ArrayBackend(Backend):
    """Pixels from a reader that returns numpy arrays; subclasses implement ``_raw``."""

    def __init__(self, path: Path, fmt: str, reason: str) -> None:
        self.path = path
        self.format = fmt
        self.vendor = fmt
        self.reason = reason
        self.properties = {}
        self._io = threading.Lock()
        self._windows: list[tuple[float, float]] = []
        self.composite = False

    # -- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The reader's (h, w, samples) pixels of a rectangle inside ``level``, any dtype."""

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run a reader call under the file's lock; its exceptions become one ``SlideError``."""
        with self._io:
            try:
                return fn()
            except SlideError:
                raise
            except MemoryError:
                raise self.error(f"{what}: out of memory") from None
            except Exception as exc:
                text = " ".join(str(exc).split())[:240] or type(exc).__name__
                raise self.error(f"{what} ({text})") from None

    # -- set-up shared by the subclasses ------------------------------------------------------
    def _finish(
        self,
        dims: list[tuple[int, int]],
        channels: list[str],
        samples: int,
        dtype: np.dtype,
    ) -> None:
        """Level table, channel composite and its windows (measured on the coarsest level)."""
        if not dims or any(w <= 0 or h <= 0 for w, h in dims):
            raise self.error(f"has no readable image (level sizes {dims})")
        self.level_dimensions = tuple(dims)
        w0, h0 = dims[0]
        self.level_downsamples = tuple((w0 / w + h0 / h) / 2 for w, h in dims)
        rgb = samples in (3, 4) and dtype == np.uint8 and len(channels) <= 1
        self.composite = not rgb and (samples > 1 or dtype != np.uint8)
        props = dict(self.properties)
        if self.composite:
            names = channels or [f"channel {i}" for i in range(samples)]
            mapping = composite_mapping(names)
            self.channels = tuple(names)
            self.channel_mapping = tuple(mapping)
            props["slidescout.channels"] = ", ".join(names)
            props["slidescout.composite"] = ", ".join(f"{c}={col}" for c, col in mapping)
            self.properties = props
            self._windows = self._measure_windows(len(mapping))
        self.properties = props

    def _measure_windows(self, n: int) -> list[tuple[float, float]]:
        last = len(self.level_dimensions) - 1
        lw, lh = self.level_dimensions[last]
        step = max(1, int(np.ceil(np.sqrt(lw * lh / WINDOW_SAMPLE_PX))))
        if lw * lh > 16 * WINDOW_SAMPLE_PX:
            raise self.error(
                f"has no pyramid level small enough ({lw} x {lh} px) to measure its channels' "
                "brightness"
            )
        arr = self._raw(last, 0, 0, lw, lh)[::step, ::step]
        return [_window(arr[..., i]) for i in range(n)]

    # -- Backend ------------------------------------------------------------------------------
    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        arr = self._raw(level, x, y, w, h)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.shape[:2] != (h, w):
            raise self.error(
                f"the reader returned {arr.shape[1]}x{arr.shape[0]} px for a {w}x{h} px read "
                f"at level {level}"
            )
        if self.composite:
            n = len(self.channel_mapping)
            return _composite_np(
                [arr[..., i] for i in range(n)], list(self.channel_mapping), self._windows
            )
        return to_rgb8(arr)

    def render(self, region: Region) -> np.ndarray:
        if region.is_identity:
            return padded_read(
                self, region.level, int(region.x), int(region.y), region.out_w, region.out_h
            )
        lw, lh = self.level_dimensions[region.level]
        pad = region.margin() + SPAN_SLACK
        x0, y0 = max(0, math.floor(region.x) - pad), max(0, math.floor(region.y) - pad)
        x1 = min(lw, math.ceil(region.x + region.w) + pad)
        y1 = min(lh, math.ceil(region.y + region.h) + pad)
        if (x1 - x0) * (y1 - y0) > VIPS_RENDER_MAX_PX:
            return render_by_reads(self, region, READ_BUDGET_PX)
        span = _ArraySpan(self, self.read_level(region.level, x0, y0, x1 - x0, y1 - y0))
        return span.render(
            Region(0, region.x - x0, region.y - y0, region.w, region.h, region.out_w, region.out_h)
        )

    def patch_reader(self, level: int) -> ReadPatchReader:
        return ReadPatchReader(self, level)


class _ArraySpan(_VipsBackendBase):
    """A rectangle read from an array backend's level, as a one-level in-memory libvips image
    (edges beyond it that are the level's edges are padded as the pyvips backends pad them)."""

    name = "array"

    def __init__(self, owner: Backend, arr: np.ndarray) -> None:
        super().__init__()
        self.path = owner.path
        self.format = owner.format
        self.vendor = owner.vendor
        self.properties = {}
        self._arr = np.ascontiguousarray(arr, np.uint8)
        h, w = self._arr.shape[:2]
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)

    def _load_level(self, level: int, revalidate: bool = False):
        h, w = self._arr.shape[:2]
        return _vips().Image.new_from_memory(self._arr.data, w, h, 3, "uchar")
