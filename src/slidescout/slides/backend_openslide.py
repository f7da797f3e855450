"""The OpenSlide backend: metadata for every OpenSlide format, pixels where pyvips cannot read.

OpenSlide maps level-0 coordinates to a level by dividing by that level's downsample, so reads
are placed at ``round(x * downsample)``: for integer downsamples this lands exactly on the level's
grid (off-grid reads cost OpenSlide ~4x, see DESIGN.md). Large regions are read and resampled in
strips so memory stays bounded for any box, even on a slide without a pyramid.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from slidescout.errors import SlideError
from slidescout.slides.backends import Backend, Region, _reason, padded_read, rgba_to_rgb

# the most level pixels one OpenSlide read may cover (RGBA: 4 bytes each)
READ_BUDGET_PX = 16 * 1024 * 1024


def detect_format(path: Path) -> str | None:
    """OpenSlide's vendor name for the file, or None when OpenSlide does not recognise it."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # OpenSlideError on unreadable files: treat as "not an OpenSlide file"
        return None


def open_openslide(path: Path, fmt: str):
    """An ``openslide.OpenSlide`` handle; errors become ``SlideError``."""
    import openslide

    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError:
        raise SlideError(f"slide {path.name}: OpenSlide recognises it as {fmt} but cannot open it "
                         "(unsupported variant of the format)") from None
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"slide {path.name}: OpenSlide cannot open it as {fmt} ({_reason(exc)}); "
                         "the file may be truncated or corrupt") from None


class _OpenSlidePatchReader:
    def __init__(self, backend: OpenSlideBackend, level: int) -> None:
        self.backend = backend
        self.level = level

    def fetch(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return padded_read(self.backend, self.level, int(x), int(y), int(w), int(h))


class OpenSlideBackend(Backend):
    name = "openslide"

    def __init__(self, path: Path, fmt: str, osr) -> None:
        self.path = path
        self.format = fmt
        self._osr = osr
        self.properties = dict(osr.properties)
        self.vendor = self.properties.get("openslide.vendor", fmt)
        self.level_dimensions = tuple((int(w), int(h)) for w, h in osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in osr.level_downsamples)
        self.associated_names = tuple(osr.associated_images.keys())  # names only, no pixels

    def level_scale(self, level: int) -> tuple[float, float]:
        ds = self.level_downsamples[level]
        return ds, ds

    # -- pixels -----------------------------------------------------------------------------
    def _read_rgba(self, level: int, x: int, y: int, w: int, h: int) -> Image.Image:
        import openslide

        ds = self.level_downsamples[level]
        try:
            return self._osr.read_region((int(round(x * ds)), int(round(y * ds))), level, (w, h))
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise self.error(f"cannot read {w}x{h} px at ({x},{y}) of level {level} "
                             f"({_reason(exc)})") from None

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return rgba_to_rgb(self._read_rgba(level, x, y, w, h))

    def render(self, region: Region) -> np.ndarray:
        lw, lh = self.level_dimensions[region.level]
        if region.is_identity:
            return padded_read(self, region.level, int(region.x), int(region.y), region.out_w, region.out_h)
        m = region.margin()
        rx0 = max(0, math.floor(region.x) - m)
        rx1 = min(lw, math.ceil(region.x + region.w) + m)
        sy = region.scale_y
        src_rows = max(1, READ_BUDGET_PX // max(1, rx1 - rx0) - 2 * m)
        rows_per_chunk = max(1, int(src_rows * sy))
        out = np.empty((region.out_h, region.out_w, 3), np.uint8)
        for o0 in range(0, region.out_h, rows_per_chunk):
            o1 = min(region.out_h, o0 + rows_per_chunk)
            src0 = region.y + o0 / sy
            src1 = region.y + o1 / sy
            ry0 = max(0, math.floor(src0) - m)
            ry1 = min(lh, math.ceil(src1) + m)
            part = Image.fromarray(self.read_level(region.level, rx0, ry0, rx1 - rx0, ry1 - ry0), "RGB")
            box = (region.x - rx0, src0 - ry0, region.x + region.w - rx0, src1 - ry0)
            # reducing_gap: an integer box-reduce first for large factors, like libvips' resize
            part = part.resize((region.out_w, o1 - o0), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
            out[o0:o1] = np.asarray(part)
        return out

    def patch_reader(self, level: int) -> _OpenSlidePatchReader:
        return _OpenSlidePatchReader(self, level)

    def associated_image(self, name: str) -> Image.Image:
        import openslide

        if name not in self.associated_names:
            return super().associated_image(name)
        try:
            img = self._osr.associated_images[name]
        except (openslide.OpenSlideError, OSError, KeyError) as exc:
            raise self.error(f"cannot read associated image {name!r} ({_reason(exc)})") from None
        return Image.fromarray(rgba_to_rgb(img), "RGB")

    def close(self) -> None:
        try:
            self._osr.close()
        except Exception:  # pragma: no cover - closing twice is harmless
            pass
