"""Small value types shared by the slide engine and everything that records what a model saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np
from PIL import Image

from slidescout.core.imaging import encode_image

# how the pyramid level of a read is chosen: "fine" (ours: the coarsest level that still has the
# output's pixels) or "giant" (GIANT's best_level(0.85·ds)); see slides.render
LevelRule = Literal["fine", "giant"]
# how coordinate guides are drawn on an image: ours, or GIANT's (see slides.guides)
GuideStyle = Literal["scout", "giant"]
# what a view's result text says: ours, or GIANT's (region, slide size, reminder, calls left)
MessageStyle = Literal["scout", "giant"]
# a box outside the slide: an error that says the slide's size, or GIANT's clamp down to 1 px
BoxClamp = Literal["strict", "giant"]


class MppSource(str, Enum):
    """Where a slide's microns-per-pixel came from."""

    METADATA = "metadata"
    ESTIMATED = "estimated"  # from objective power: mpp = 10 / power
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Box:
    """A rectangle in level-0 pixels, origin top left: ``(x, y, w, h)`` as GIANT's action space."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, value: Box | tuple | list | str) -> Box:
        """Parse a Box from a Box, a 4-sequence, or a string ``"x,y,w,h"``.

        Raises ``ValueError`` with a readable message on anything else (callers turn it into a
        ``SlideError`` or ``ToolError``).
        """
        if isinstance(value, Box):
            return value
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
        else:
            parts = list(value)
        if len(parts) != 4:
            raise ValueError(f"a box needs 4 numbers x,y,w,h, got {value!r}")
        nums = []
        for p in parts:
            if isinstance(p, bool):
                raise ValueError(f"box values must be numbers, got {value!r}")
            try:
                f = float(p)
            except (TypeError, ValueError):
                raise ValueError(f"box values must be numbers, got {value!r}") from None
            if f != f or f in (float("inf"), float("-inf")):
                raise ValueError(f"box values must be finite numbers, got {value!r}")
            nums.append(int(round(f)))
        return cls(*nums)

    @property
    def x2(self) -> int:
        """Right edge (exclusive)."""
        return self.x + self.w

    @property
    def y2(self) -> int:
        """Bottom edge (exclusive)."""
        return self.y + self.h

    @property
    def area(self) -> int:
        """Area in level-0 pixels (0 for an empty box)."""
        return max(0, self.w) * max(0, self.h)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)

    def intersect(self, other: Box) -> Box | None:
        """The overlap of two boxes, or None when they do not overlap."""
        x1, y1 = max(self.x, other.x), max(self.y, other.y)
        x2, y2 = min(self.x2, other.x2), min(self.y2, other.y2)
        if x2 <= x1 or y2 <= y1:
            return None
        return Box(x1, y1, x2 - x1, y2 - y1)

    def __str__(self) -> str:
        return f"({self.x},{self.y},{self.w},{self.h})"


@dataclass(repr=False)
class View:
    """An RGB image of a level-0 box, as a model would see it.

    ``box`` is the level-0 region actually shown (after clamping); ``requested`` is what was asked.
    ``downsample`` is level-0 pixels per output pixel; ``mpp`` the output microns per pixel (None
    when the slide's mpp is unknown).
    """

    image: np.ndarray  # (H, W, 3) uint8
    box: Box
    level: int
    downsample: float
    mpp: float | None
    requested: Box | None = None
    clamped: bool = False
    guides: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Width of the image in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Height of the image in pixels."""
        return int(self.image.shape[0])

    def __repr__(self) -> str:
        mpp = f"{self.mpp:.3g}" if self.mpp else "None"
        return (
            f"View(box={self.box}, {self.width}x{self.height} px, level={self.level}, "
            f"downsample={self.downsample:.3g}, mpp={mpp}{', clamped' if self.clamped else ''})"
        )

    def _repr_png_(self) -> bytes:
        """PNG bytes, so a notebook shows the image itself."""
        return self.encode("PNG")

    def to_pil(self) -> Image.Image:
        """The image as a PIL RGB image."""
        return Image.fromarray(self.image, "RGB")

    def encode(self, fmt: str = "JPEG", quality: int = 90) -> bytes:
        """Encode as JPEG (default) or PNG bytes."""
        return encode_image(self.image, fmt, quality)

    def describe(self) -> str:
        """One line for a model or a trace: box, level, mpp."""
        mpp = f"{self.mpp:.3f} µm/px" if self.mpp else "unknown mpp"
        return (
            f"region with top-left ({self.box.x},{self.box.y}) and size {self.box.w} x {self.box.h}"
            f" (level-0 px), shown at {self.width}x{self.height} px, {mpp}"
            + (f"; {self.meta['channels']}" if self.meta.get("channels") else "")
        )


__all__ = ["Box", "BoxClamp", "GuideStyle", "LevelRule", "MessageStyle", "MppSource", "View"]
