"""Two example tools: a plain function and a class with lazy setup.

Both read a region of the current slide through ``ctx.slide`` (level-0 pixel coordinates, origin
top left), and answer with text, structured data and, on request, an image.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from slidescout.tools import ToolClass, ToolContext, ToolError, ToolImage, ToolResult, tool

# The region is read at most this large (long side, px): enough for colour statistics.
_READ_SIDE = 512


@tool
def tissue_fraction(
    x: int,
    y: int,
    w: Annotated[int, Field(gt=0)],
    h: Annotated[int, Field(gt=0)],
    ctx: ToolContext,
    threshold: Annotated[int, Field(ge=1, le=255)] = 220,
    show_mask: bool = False,
) -> ToolResult:
    """Measure how much of a region is tissue (the fraction of non-white pixels).

    Use it to pick regions worth zooming into, or to check that a region is not background.

    Args:
        x: Left edge of the region, level-0 pixels.
        y: Top edge of the region, level-0 pixels.
        w: Width of the region, level-0 pixels.
        h: Height of the region, level-0 pixels.
        threshold: A pixel is background when all of its R, G and B values are at or above this.
        show_mask: Also return an image of the region with the tissue tinted green.
    """
    slide = ctx.require_slide()  # a ToolError for image-set questions
    # A box wholly outside the slide raises SlideError, which reaches the model as a ToolError.
    view = slide.read((x, y, w, h), max_side=min(_READ_SIDE, ctx.max_side))
    rgb = view.image
    tissue = rgb.min(axis=2) < threshold
    fraction = float(tissue.mean()) if tissue.size else 0.0
    b = view.box
    text = (
        f"Tissue covers {fraction:.1%} of the region with top-left ({b.x},{b.y}) and size "
        f"{b.w} x {b.h} (non-white pixels, threshold {threshold})."
    )
    if view.clamped:
        text += " The box extended past the slide edge; only the part inside was measured."
    images = []
    if show_mask:
        overlay = rgb.astype(np.float32)
        overlay[tissue] = overlay[tissue] * 0.5 + np.array([0, 255, 0]) * 0.5
        images.append(
            ToolImage(
                image=overlay.astype(np.uint8),
                box=view.box,
                level=view.level,
                mpp=view.mpp,
                label="tissue mask",
            )
        )
    return ToolResult(
        text=text, images=images, data={"tissue_fraction": fraction, "box": list(b.as_tuple())}
    )


class ColorHistogram(ToolClass):
    """Summarise the stain colours of a region: mean RGB, hematoxylin and eosin optical density, and per-channel histograms.

    High hematoxylin suggests dense nuclei; high eosin suggests cytoplasm, stroma or red cells.
    """

    name = "color_histogram"

    def __init__(self) -> None:
        self.setup_calls = 0  # counts setups (tests check it runs once)

    def setup(self, ctx: ToolContext) -> None:
        # Expensive one-time work goes here (load weights onto ctx.device, read a lookup table).
        # It runs on the first call, in a worker thread, once - never when the plugin is imported.
        from skimage.color import hed_from_rgb  # heavy import, done lazily

        self._hed_from_rgb = np.asarray(hed_from_rgb, dtype=np.float32)
        self.setup_calls += 1

    def run(
        self,
        x: int,
        y: int,
        w: Annotated[int, Field(gt=0)],
        h: Annotated[int, Field(gt=0)],
        ctx: ToolContext,
        bins: Annotated[int, Field(ge=2, le=32)] = 8,
    ) -> ToolResult:
        """Colour summary of a region.

        Args:
            x: Left edge of the region, level-0 pixels.
            y: Top edge of the region, level-0 pixels.
            w: Width of the region, level-0 pixels.
            h: Height of the region, level-0 pixels.
            bins: Number of histogram bins per channel.
        """
        view = ctx.require_slide().read((x, y, w, h), max_side=min(_READ_SIDE, ctx.max_side))
        rgb = view.image.reshape(-1, 3)
        tissue = rgb.min(axis=1) < 220
        if not tissue.any():
            raise ToolError(
                f"the region {tuple(view.box.as_tuple())} is background only (no tissue); "
                "choose a region with tissue"
            )
        px = rgb[tissue].astype(np.float32)
        od = -np.log(np.maximum(px, 1.0) / 255.0)
        hed = od @ self._hed_from_rgb
        hist = {
            c: (np.histogram(px[:, i], bins=bins, range=(0, 256))[0] / len(px)).round(4).tolist()
            for i, c in enumerate("rgb")
        }
        mean = px.mean(axis=0)
        h_od, e_od = float(hed[:, 0].mean()), float(hed[:, 1].mean())
        text = (
            f"Tissue pixels in ({view.box.x},{view.box.y},{view.box.w},{view.box.h}): mean RGB "
            f"({mean[0]:.0f}, {mean[1]:.0f}, {mean[2]:.0f}); hematoxylin OD {h_od:.3f}, "
            f"eosin OD {e_od:.3f}."
        )
        return ToolResult(
            text=text,
            data={
                "mean_rgb": mean.round(1).tolist(),
                "hematoxylin_od": h_od,
                "eosin_od": e_od,
                "histogram": hist,
                "bins": bins,
            },
        )


TOOLS = [tissue_fraction, ColorHistogram]
