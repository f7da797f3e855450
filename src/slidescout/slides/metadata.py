"""Slide metadata: where mpp comes from, the bounds rectangle, and the ``SlideInfo`` model."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, Field

from slidescout.core.types import Box, MppSource
from slidescout.slides.tiffmeta import objective_power

log = logging.getLogger(__name__)

# A resolution outside this range is a writer's default, not a measurement: a TIFF written
# without xres/yres reports mpp = 1000 (1 px/mm) or 25400 (1 dpi); 72-300 dpi give 85-353.
MPP_RANGE = (0.02, 50.0)
POWER_RANGE = (0.5, 200.0)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return f if math.isfinite(f) and f > 0 else None


@dataclass(frozen=True)
class Resolution:
    mpp_x: float | None
    mpp_y: float | None
    source: MppSource
    objective_power: float | None
    note: str = ""

    @property
    def mpp(self) -> float | None:
        if self.mpp_x is None or self.mpp_y is None:
            return None
        return (self.mpp_x + self.mpp_y) / 2


def resolve_mpp(props: Mapping[str, str], fmt: str, name: str = "") -> Resolution:
    """mpp from metadata when plausible, else estimated as 10 / objective power, else unknown."""
    power = _float(props.get("openslide.objective-power"))
    if (
        power is None
    ):  # scanners and libvips state it in the ImageDescription (Aperio "AppMag = 40")
        power = objective_power(props.get("tiff.ImageDescription", ""))
    if power is not None and not (POWER_RANGE[0] <= power <= POWER_RANGE[1]):
        power = None
    mx = _float(props.get("openslide.mpp-x"))
    my = _float(props.get("openslide.mpp-y"))
    mx, my = mx or my, my or mx
    note = ""
    if mx is not None and my is not None:
        unit = props.get("tiff.ResolutionUnit", "").lower()
        if fmt in ("generic-tiff", "image") and unit not in ("centimeter", "inch", "ome"):
            note = f"ignored TIFF resolution with unit {unit or 'none'!r}"
        elif not all(MPP_RANGE[0] <= m <= MPP_RANGE[1] for m in (mx, my)):
            note = f"ignored implausible mpp {mx:g} x {my:g} (a writer's default resolution)"
        else:
            return Resolution(mx, my, MppSource.METADATA, power)
    if power is not None:
        est = 10.0 / power
        log.info(
            "slide %s: no mpp in its metadata; estimated %.4g µm/px from objective power %gx",
            name,
            est,
            power,
        )
        return Resolution(
            est,
            est,
            MppSource.ESTIMATED,
            power,
            (note + "; " if note else "") + f"estimated as 10 / {power:g}x",
        )
    return Resolution(None, None, MppSource.UNKNOWN, power, note)


def parse_bounds(props: Mapping[str, str], width: int, height: int) -> Box | None:
    """OpenSlide's ``bounds-*`` rectangle (the scanned area), clipped to the slide, or None."""
    keys = (
        "openslide.bounds-x",
        "openslide.bounds-y",
        "openslide.bounds-width",
        "openslide.bounds-height",
    )
    if not any(k in props for k in keys):
        return None
    try:
        x = int(props.get(keys[0], 0))
        y = int(props.get(keys[1], 0))
        w = int(props.get(keys[2], width - x))
        h = int(props.get(keys[3], height - y))
    except ValueError:
        return None
    return Box(x, y, w, h).intersect(Box(0, 0, width, height))


class LevelInfo(BaseModel):
    level: int
    width: int
    height: int
    downsample: float
    mpp: float | None = None


class SlideInfo(BaseModel):
    """Everything known about a slide, for people and logs. Only ``model_properties`` go to a model."""

    path: str
    slide_id: str
    format: str
    vendor: str | None
    backend: str
    backend_reason: str = Field(default="", description="why this backend reads the file")
    file_size: int
    width: int
    height: int
    level_count: int
    levels: list[LevelInfo]
    mpp_x: float | None
    mpp_y: float | None
    mpp: float | None
    mpp_source: MppSource
    mpp_note: str = ""
    objective_power: float | None
    bounds: tuple[int, int, int, int] | None = Field(
        default=None, description="x, y, w, h in level-0 px"
    )
    associated_images: list[str] = Field(
        default_factory=list, description="names only, never pixels"
    )
    channels: list[str] = Field(
        default_factory=list, description="channel names of a multi-channel image"
    )
    channel_mapping: dict[str, str] = Field(
        default_factory=dict, description="channel -> display colour of the composite shown"
    )

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)
