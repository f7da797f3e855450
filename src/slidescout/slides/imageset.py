"""A set of 2 to 5 ordinary images for one question (MedFrameQA).

Each member is opened as a one-level ``Slide``, so viewing, cropping, guides and never-upscale
rules are the slide engine's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from slidescout.core.types import Box, View
from slidescout.errors import SlideError
from slidescout.slides.slide import Slide

MAX_IMAGES = 8


class ImageSet:
    """Images addressed by 1-based index, as the model sees them ("Image 1", "Image 2"...)."""

    def __init__(self, paths: list[str | Path]) -> None:
        if not paths:
            raise SlideError("an image set needs at least one image")
        if len(paths) > MAX_IMAGES:
            raise SlideError(f"an image set holds at most {MAX_IMAGES} images, got {len(paths)}")
        self.paths = [Path(p) for p in paths]
        self.images = [Slide.open(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.images)

    def get(self, index: int) -> Any:
        """Image ``index`` (1-based); ``SlideError`` naming the valid range otherwise."""
        if not isinstance(index, int) or not 1 <= index <= len(self.images):
            raise SlideError(
                f"there is no image {index}; images are numbered 1 to {len(self.images)}"
            )
        return self.images[index - 1]

    def view(
        self, index: int, max_side: int, box: Box | tuple | None = None, guides: bool = False
    ) -> View:
        img = self.get(index)
        w, h = img.dimensions
        view = img.read(box if box is not None else (0, 0, w, h), max_side=max_side, guides=guides)
        view.meta["label"] = f"image {index}"
        view.meta["source"] = f"image:{index}"
        return view

    def montage(self, max_side: int, *, gap: int = 8) -> np.ndarray:
        """All images side by side, each labelled with its number, fitting ``max_side`` wide."""
        n = len(self.images)
        cell = max(64, (max_side - gap * (n - 1)) // n)
        tiles = [self.view(i + 1, cell).image for i in range(n)]
        height = max(t.shape[0] for t in tiles)
        width = sum(t.shape[1] for t in tiles) + gap * (n - 1)
        canvas = Image.new("RGB", (width, height + 22), "white")
        draw = ImageDraw.Draw(canvas)
        x = 0
        for i, t in enumerate(tiles):
            canvas.paste(Image.fromarray(t), (x, 22))
            draw.text((x + 4, 3), f"Image {i + 1}", fill=(0, 0, 0))
            x += t.shape[1] + gap
        return np.asarray(canvas)
