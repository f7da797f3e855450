"""The OpenSlide backend: metadata for every OpenSlide format, pixels where pyvips cannot read.

OpenSlide maps level-0 coordinates to a level by dividing by that level's downsample, so reads
are placed at ``round(x * downsample)``: for integer downsamples this lands exactly on the level's
grid (off-grid reads cost OpenSlide ~4x, see DESIGN.md). Large regions are read and resampled in
strips so memory stays bounded for any box, even on a slide without a pyramid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from slidescout.errors import SlideError
from slidescout.slides.backends import (
    Backend,
    ReadPatchReader,
    Region,
    _reason,
    render_by_reads,
    rgba_to_rgb,
)
from slidescout.slides.tiffmeta import compression_name

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
        raise SlideError(
            f"slide {path.name}: OpenSlide recognises it as {fmt} but cannot open it "
            "(unsupported variant of the format)"
        ) from None
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        reason = _reason(exc)
        m = re.search(r"Unsupported TIFF compression: (\d+)", reason)
        if m:
            raise SlideError(
                f"slide {path.name}: TIFF compression {compression_name(int(m.group(1)))} "
                "is not supported by OpenSlide"
            ) from None
        raise SlideError(
            f"slide {path.name}: OpenSlide cannot open it as {fmt} ({reason})"
        ) from None


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
            raise self.error(
                f"cannot read {w}x{h} px at ({x},{y}) of level {level} ({_reason(exc)})"
            ) from None

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return rgba_to_rgb(self._read_rgba(level, x, y, w, h))

    def render(self, region: Region) -> np.ndarray:
        return render_by_reads(self, region, READ_BUDGET_PX)

    def patch_reader(self, level: int) -> ReadPatchReader:
        return ReadPatchReader(self, level)

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
