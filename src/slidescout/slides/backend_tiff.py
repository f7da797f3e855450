"""TIFF-family slides whose structure tifffile reads (``tiffmeta.TiffStructure``): SubIFD and
OME-TIFF pyramids, QPTIFF, WebP or JPEG 2000 tiles, multi-channel fluorescence.

- ``TiffPyramidBackend``: pixels from pyvips ``tiffload(page=N, subifd=K)``, for the compressions
  pyvips-binary decodes (JPEG, WebP, deflate, LZW, ...).
- ``TifffileBackend``: pixels from tifffile + imagecodecs tile by tile, for those it lacks
  (JPEG 2000, JPEG XL, Zstandard, ...).

Multi-channel images are shown as a composite of up to three channels, each stretched between
its 0.5th and 99.8th percentile on the coarsest level (fluorescence is mostly dark) and given one
colour: a nuclear stain blue, the others green then red (``tiffmeta.composite_mapping``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.slides.backend_vips import TIFFLOAD_OPTIONS, _vips, _VipsBackendBase
from slidescout.slides.backends import Backend, ReadPatchReader, Region, _reason, render_by_reads
from slidescout.slides.tiffmeta import TiffStructure, composite_mapping, compression_name

COLOUR_BAND = {"red": 0, "green": 1, "blue": 2}
WINDOW_PERCENTILES = (0.5, 99.8)
WINDOW_SAMPLE_PX = 4 * 1024 * 1024  # the window is measured on at most this many pixels
READ_BUDGET_PX = 16 * 1024 * 1024
TILE_CACHE = 256  # decoded tiles kept by a TifffileBackend


def _window(arr: np.ndarray) -> tuple[float, float]:
    """The values shown from black to white: floats within [0, 1] as they are (0 black, 1
    white), anything else stretched between two percentiles."""
    if arr.dtype.kind == "f":
        arr = arr[np.isfinite(arr)]
        if arr.size == 0 or (arr.min() >= 0 and arr.max() <= 1):
            return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(arr, WINDOW_PERCENTILES))
    return lo, hi if hi > lo else lo + 1.0


def _float_window(arr: np.ndarray) -> tuple[float, float]:
    """Colour floats: within [0, 1] shown as 0-255, otherwise taken as 0-255 values already."""
    lo, hi = _window(arr)
    return (lo, hi) if (lo, hi) == (0.0, 1.0) else (0.0, 255.0)


def _composite_np(
    chans: list[np.ndarray], mapping: list[tuple[str, str]], windows: list[tuple[float, float]]
) -> np.ndarray:
    h, w = chans[0].shape[:2]
    out = np.zeros((h, w, 3), np.uint8)
    for arr, (_, colour), (lo, hi) in zip(chans, mapping, windows, strict=False):
        scaled = (arr.astype(np.float32) - lo) * (255.0 / (hi - lo))
        value = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
        if colour == "grey":
            out[:] = value[..., None]
        else:
            out[..., COLOUR_BAND[colour]] = value
    return out


class _TiffMixin:
    """Metadata and channel set-up shared by both backends."""

    def _setup(self, path: Path, st: TiffStructure, reason: str) -> None:
        b: Backend = self  # type: ignore[assignment]
        b.path = path
        b.format = st.format
        b.vendor = st.format
        b.reason = reason
        self.structure = st
        b.level_dimensions = tuple((lv.width, lv.height) for lv in st.levels)
        w0, h0 = b.level_dimensions[0]
        b.level_downsamples = tuple((w0 / w + h0 / h) / 2 for w, h in b.level_dimensions)
        props = dict(st.properties)
        # channels: separate pages (OME/QPTIFF planes) or the bands of one page
        n = len(st.levels[0].planes)
        self._band_channels = n == 1 and st.samples not in (1, 3, 4)
        self.composite = n > 1 or self._band_channels or (st.samples == 1 and st.dtype != "uint8")
        if self.composite:
            names = list(st.channels) or [f"channel {i}" for i in range(max(n, st.samples))]
            mapping = composite_mapping(names)
            b.channels = tuple(names)
            b.channel_mapping = tuple(mapping)
            props["slidescout.channels"] = ", ".join(names)
            props["slidescout.composite"] = ", ".join(f"{c}={col}" for c, col in mapping)
        b.properties = props

    def _channel_index(self, i: int) -> tuple[int, int]:
        """(plane, band) of channel ``i``."""
        return (0, i) if self._band_channels else (i, 0)


class TiffPyramidBackend(_TiffMixin, _VipsBackendBase):
    """Structure from tifffile, pixels from pyvips ``tiffload(page=, subifd=)``."""

    name = "pyvips"

    def __init__(self, path: Path, st: TiffStructure, reason: str) -> None:
        _VipsBackendBase.__init__(self)
        self._setup(path, st, reason)
        self._windows: list[tuple[float, float]] = []
        if self.composite:
            self._windows = [self._measure_window(i) for i in range(len(self.channel_mapping))]
        elif st.is_float:
            self._windows = [_float_window(self._coarsest_sample(0))]

    def _plane(self, level: int, channel: int):
        plane, band = self._channel_index(channel)
        page, sub = self.structure.levels[level].planes[plane]
        kwargs: dict = {"page": page, **TIFFLOAD_OPTIONS}
        if sub >= 0:
            kwargs["subifd"] = sub
        img = _vips().Image.tiffload(str(self.path), **kwargs)
        return img.extract_band(band) if self.composite and img.bands > 1 else img

    def _coarsest_sample(self, channel: int) -> np.ndarray:
        """At most ``WINDOW_SAMPLE_PX`` pixels of a channel of the coarsest level."""
        last = len(self.structure.levels) - 1
        try:
            img = self._plane(last, channel)
            f = int(np.ceil(np.sqrt(img.width * img.height / WINDOW_SAMPLE_PX)))
            if f > 1:
                img = img.subsample(f, f)
            return img.numpy()
        except _vips().Error as exc:
            raise self.error(
                f"cannot read channel {channel} of level {last} ({_reason(exc)})"
            ) from None

    def _measure_window(self, channel: int) -> tuple[float, float]:
        return _window(self._coarsest_sample(channel))

    def _tile_size(self, level: int) -> tuple[int, int]:
        lv = self.structure.levels[level]
        return lv.tile_w, lv.tile_h

    def _load_level(self, level: int):
        if not self.composite:
            img = self._plane(level, 0)
            if self._windows:  # floats: scaled to 0-255 (libvips would take them as scRGB)
                lo, hi = self._windows[0]
                scale = 255.0 / (hi - lo)
                img = img.linear([scale], [-lo * scale + 0.5]).cast("uchar")
                img = img.copy(interpretation="srgb" if img.bands >= 3 else "b-w")
            return img
        w, h = self.level_dimensions[level]
        slots = [_vips().Image.black(w, h)] * 3
        for i, ((_, colour), (lo, hi)) in enumerate(
            zip(self.channel_mapping, self._windows, strict=True)
        ):
            scale = 255.0 / (hi - lo)
            band = self._plane(level, i).linear([scale], [-lo * scale + 0.5]).cast("uchar")
            if colour == "grey":
                slots = [band] * 3
            else:
                slots[COLOUR_BAND[colour]] = band
        return slots[0].bandjoin(slots[1]).bandjoin(slots[2]).copy(interpretation="srgb")

    def close(self) -> None:
        self._levels.clear()
        self._readers.clear()


class TifffileBackend(_TiffMixin, Backend):
    """Structure and pixels from tifffile (imagecodecs decodes the tiles); thread-safe."""

    name = "tifffile"

    def __init__(self, path: Path, st: TiffStructure, reason: str) -> None:
        import tifffile

        self._setup(path, st, reason)
        try:
            self._tif = tifffile.TiffFile(path)
            self._pages: list[list[Any]] = [
                list(lv.pages) for lv in self._tif.series[0].levels[: len(st.levels)]
            ]
        except Exception as exc:
            raise self.error(
                f"tifffile cannot open it ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        self._io = threading.Lock()
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._windows: list[tuple[float, float]] = []
        if self.composite:
            last = len(st.levels) - 1
            lw, lh = self.level_dimensions[last]
            planes = self._raw(last, 0, 0, lw, lh) if lw * lh <= 4 * WINDOW_SAMPLE_PX else None
            if planes is None:
                raise self.error(
                    "has no pyramid level small enough to measure its channels' brightness"
                )
            self._windows = [_window(c) for c in self._channels(planes)]
        elif st.is_float:
            last = len(st.levels) - 1
            lw, lh = self.level_dimensions[last]
            if lw * lh > 4 * WINDOW_SAMPLE_PX:
                raise self.error("has no pyramid level small enough to measure its value range")
            self._windows = [_float_window(self._raw(last, 0, 0, lw, lh)[0])]

    def _tile(self, level: int, plane: int, index: int) -> np.ndarray:
        key = (level, plane, index)
        with self._io:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            page = self._pages[level][plane]
            if index >= len(page.dataoffsets) or not page.databytecounts[index]:
                raise self.error(
                    f"tile {index} of level {level} is missing from the file (truncated?)"
                )
            fh = self._tif.filehandle
            try:
                fh.seek(int(page.dataoffsets[index]))
                data = fh.read(int(page.databytecounts[index]))
            except (OSError, ValueError) as exc:
                raise self.error(f"cannot read tile {index} of level {level} ({exc})") from None
        try:
            seg, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
        except Exception as exc:
            raise self.error(
                f"cannot decode tile {index} of level {level} "
                f"(TIFF compression {compression_name(int(page.compression))}: {exc})"
            ) from None
        if seg is None:
            raise self.error(f"tile {index} of level {level} has no data")
        arr = np.asarray(seg).reshape(shape[-3:])
        with self._io:
            self._cache[key] = arr
            while len(self._cache) > TILE_CACHE:
                self._cache.popitem(last=False)
        return arr

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> list[np.ndarray]:
        """Each plane's (h, w, samples) pixels of a rectangle inside the level."""
        lv = self.structure.levels[level]
        page0 = self._pages[level][0]
        lw = lv.width
        tw = lv.tile_w or lw
        th = lv.tile_h or int(page0.rowsperstrip)
        across = -(-lw // tw)
        out = []
        for plane in range(len(lv.planes)):
            dest = np.zeros((h, w, self.structure.samples), np.dtype(self.structure.dtype))
            for ty in range(y // th, (y + h - 1) // th + 1):
                for tx in range(x // tw, (x + w - 1) // tw + 1):
                    tile = self._tile(level, plane, ty * across + tx)
                    x0, y0 = max(x, tx * tw), max(y, ty * th)
                    x1, y1 = (
                        min(x + w, tx * tw + tile.shape[1]),
                        min(y + h, ty * th + tile.shape[0]),
                    )
                    if x1 > x0 and y1 > y0:
                        dest[y0 - y : y1 - y, x0 - x : x1 - x] = tile[
                            y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw
                        ]
            out.append(dest)
        return out

    def _channels(self, planes: list[np.ndarray]) -> list[np.ndarray]:
        n = len(self.channel_mapping)
        if self._band_channels:
            return [planes[0][..., i] for i in range(n)]
        return [p[..., 0] for p in planes[:n]]

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        planes = self._raw(level, x, y, w, h)
        if self.composite:
            return _composite_np(self._channels(planes), list(self.channel_mapping), self._windows)
        arr = planes[0]
        if arr.dtype.kind == "f":
            lo, hi = self._windows[0] if self._windows else (0.0, 255.0)
            scaled = (np.nan_to_num(arr.astype(np.float32)) - lo) * (255.0 / (hi - lo)) + 0.5
            arr = np.clip(scaled, 0, 255).astype(np.uint8)
        elif arr.dtype != np.uint8:
            arr = (
                (arr.astype(np.float32) * (255.0 / float(np.iinfo(arr.dtype).max)))
                .round()
                .astype(np.uint8)
            )
        if arr.shape[2] == 1:
            return np.repeat(arr, 3, axis=2)
        if arr.shape[2] == 4:  # RGBA on white
            a = arr[..., 3:4].astype(np.uint16)
            return ((arr[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(
                np.uint8
            )
        return np.ascontiguousarray(arr[..., :3])

    def render(self, region: Region) -> np.ndarray:
        return render_by_reads(self, region, READ_BUDGET_PX)

    def patch_reader(self, level: int) -> ReadPatchReader:
        return ReadPatchReader(self, level)

    def close(self) -> None:
        try:
            self._tif.close()
        except Exception:  # pragma: no cover - closing twice is harmless
            pass
        self._cache.clear()
