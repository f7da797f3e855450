"""Slides: ``Slide`` (any OpenSlide format, tiled TIFF, plain images), views, guides, caches."""

from slidescout.core.types import Box, MppSource, View
from slidescout.slides.backends import PatchReader
from slidescout.slides.guides import draw_guides
from slidescout.slides.metadata import LevelInfo, SlideInfo
from slidescout.slides.render import MAX_SIDE_LIMIT
from slidescout.slides.slide import Slide, clear_cache, open_slide

__all__ = [
    "MAX_SIDE_LIMIT",
    "Box",
    "LevelInfo",
    "MppSource",
    "PatchReader",
    "Slide",
    "SlideInfo",
    "View",
    "clear_cache",
    "draw_guides",
    "open_slide",
]
