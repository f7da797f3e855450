"""GIANT-style guides: green lines at 1/5..4/5 labelled in level-0 px, red border, origin label."""

from __future__ import annotations

import numpy as np
import pytest
import slidefactory as sf

from slidescout.slides import Box, Slide, clear_cache, draw_guides
from slidescout.slides.guides import border_width, font_size, guide_labels, guide_positions

GREY = 128


def _grey(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def test_positions_and_level0_labels():
    assert guide_positions(1000) == [200, 400, 600, 800]
    assert guide_positions(500) == [100, 200, 300, 400]
    xs, ys = guide_labels(Box(1000, 2000, 5000, 4000), 1000, 800)
    assert xs == [2000, 3000, 4000, 5000]
    assert ys == [2800, 3600, 4400, 5200]


@pytest.mark.parametrize("size", [(1000, 800), (500, 500), (1000, 1000), (333, 700)])
def test_lines_border_and_labels_are_drawn(size):
    w, h = size
    img = draw_guides(_grey(w, h), Box(1000, 2000, 5000, 4000))
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    bw = border_width(w, h)
    # red border, all four sides
    for y, x in [(0, w // 2), (h - 1, w // 2), (h // 2, 0), (h // 2, w - 1), (bw - 1, w // 3)]:
        assert tuple(img[y, x]) == (255, 0, 0)
    # green, semi-transparent 1 px lines (checked away from the labels, which sit near the top/left)
    mid_y, mid_x = int(h * 0.9), int(w * 0.9)
    for px in guide_positions(w):
        r, g, b = (int(c) for c in img[mid_y, px])
        assert g > GREY + 60 and r < GREY and b < GREY, (px, r, g, b)
        assert tuple(img[mid_y, px + 2]) == (GREY,) * 3  # only 1 px wide
    for py in guide_positions(h):
        r, g, b = (int(c) for c in img[py, mid_x])
        assert g > GREY + 60 and r < GREY
        assert tuple(img[py + 2, mid_x]) == (GREY,) * 3
    # the labels: white text with a dark outline
    corner = img[bw : bw + font_size(w, h) + 8, bw : bw + 6 * font_size(w, h)]
    assert (corner.min(axis=2) > 230).sum() > 20  # white glyphs
    assert (corner.max(axis=2) < 30).sum() > 20  # dark outline
    for px in guide_positions(w)[:2]:
        lab = img[: 3 * font_size(w, h), px + 2 : px + 5 * font_size(w, h)]
        assert (lab.min(axis=2) > 230).sum() > 10


def test_font_is_readable_at_500_and_1000():
    assert font_size(500, 500) >= 12
    assert font_size(1000, 1000) >= 20
    from slidescout.slides.guides import _font

    for side in (500, 1000):
        font = _font(font_size(side, side))
        left, top, right, bottom = font.getbbox("12345")
        assert bottom - top >= 8 and right - left >= 30  # a scalable font, not the 11 px bitmap


def test_read_with_guides(tmp_path):
    clear_cache()
    s = Slide.open(sf.make_tiff(tmp_path / "g.tif", 3000, 2000))
    plain = s.read((0, 0, 3000, 2000), 1000)
    guided = s.read((0, 0, 3000, 2000), 1000, guides=True)
    assert guided.guides and not plain.guides
    assert guided.box == plain.box and guided.image.shape == plain.image.shape
    assert not np.array_equal(guided.image, plain.image)
    diff = np.abs(guided.image.astype(int) - plain.image).sum(axis=2) > 0
    assert diff.mean() < 0.15  # only lines, border and labels change
    assert diff[500, 200] and diff[500, 400] and diff[0, 300]  # a vertical line, the border
    assert not diff[500, 300]
    assert tuple(guided.image[0, 500]) == (255, 0, 0)
    # thumbnails can carry guides too
    t = s.thumbnail(512, guides=True)
    assert tuple(t.image[0, 100]) == (255, 0, 0)
