"""Offline tests for the example plugin: no slide file, no network, no model.

Run from this folder after `pip install -e .`:  pytest -q
"""

from __future__ import annotations

import numpy as np
import pytest
from slidescout_plugin_example import ColorHistogram, tissue_fraction

from slidescout.core.types import Box, View
from slidescout.errors import SlideError, ToolError
from slidescout.tools import Tool, ToolContext, ToolRegistry


class ArraySlide:
    """A tiny in-memory stand-in for slidescout's Slide: just what the tools call."""

    def __init__(self, image: np.ndarray, mpp: float = 0.5):
        self.image, self.mpp = image, mpp
        self.dimensions = (image.shape[1], image.shape[0])

    def read(self, box, max_side=1000, guides=False) -> View:
        req = Box.of(box)
        shown = req.intersect(Box(0, 0, *self.dimensions))
        if shown is None:
            raise SlideError(f"box {req} is outside the slide {self.dimensions}")
        crop = self.image[shown.y : shown.y2, shown.x : shown.x2]
        return View(
            image=crop,
            box=shown,
            level=0,
            downsample=1.0,
            mpp=self.mpp,
            requested=req,
            clamped=shown != req,
        )


@pytest.fixture
def ctx() -> ToolContext:
    img = np.full((200, 400, 3), 250, np.uint8)
    img[:, :100] = (150, 80, 170)  # a quarter of the slide is tissue
    return ToolContext(slide=ArraySlide(img))


async def test_tissue_fraction(ctx):
    res = await tissue_fraction.invoke({"x": 0, "y": 0, "w": 400, "h": 200}, ctx)
    assert res.data["tissue_fraction"] == pytest.approx(0.25)
    res = await tissue_fraction.invoke({"x": 0, "y": 0, "w": 200, "h": 200, "show_mask": True}, ctx)
    assert res.data["tissue_fraction"] == pytest.approx(0.5) and len(res.images) == 1
    with pytest.raises(ToolError):  # a SlideError reaches the model as a ToolError
        await tissue_fraction.invoke({"x": 900, "y": 0, "w": 10, "h": 10}, ctx)
    with pytest.raises(ToolError, match="'w'"):
        await tissue_fraction.invoke({"x": 0, "y": 0, "w": -1, "h": 10}, ctx)


async def test_color_histogram_sets_up_once(ctx):
    t = Tool.from_class(ColorHistogram)
    for _ in range(3):
        res = await t.invoke({"x": 0, "y": 0, "w": 100, "h": 100}, ctx)
    assert t.origin.setup_calls == 1
    assert res.data["hematoxylin_od"] > 0


def test_entry_points_are_found():
    reg = ToolRegistry(builtin_modules=[])
    assert "slidescout-plugin-example/tissue_fraction" in reg.names(), reg.errors
