"""Views of JPEG-tiled levels made from their tiles (``slides/jpegtiles.py``): the decoded pixels
are libvips' to the bit, the resampling is Pillow's exact-box Lanczos to within fixed-point
rounding (closer than libvips' resize was), errors stay errors, and a level the path cannot
serve exactly is left to libvips."""

from __future__ import annotations

import badfiles as bf
import numpy as np
import pytest
import slidefactory as sf

from slidescout.core.types import Box
from slidescout.errors import SlideError
from slidescout.slides import Slide, clear_cache, jpegtiles
from slidescout.slides.backend_vips import realize

W, H = 3000, 2000
BOXES = [((1234, 567, 999, 777), 400), ((250, 130, 1600, 1100), 400), ((33, 17, 2900, 1900), 777)]


@pytest.fixture(scope="module")
def tiff(tmp_path_factory):
    return sf.make_tiff(tmp_path_factory.mktemp("jt") / "g.tif", W, H, pattern="tissue")


@pytest.fixture(scope="module")
def stored(tiff):
    import tifffile

    with tifffile.TiffFile(tiff) as tif:
        return [page.asarray() for page in tif.pages]


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()
    jpegtiles.available.cache_clear()


def _pil_view(level_pixels: np.ndarray, slide: Slide, box, level: int, size) -> np.ndarray:
    """Pillow's Lanczos of the exact box mapped into the stored level (the reference)."""
    from PIL import Image

    sx, sy = slide._b.level_scale(level)
    b = Box.of(box)
    lh, lw = level_pixels.shape[:2]
    frac = (b.x / sx, b.y / sy, min(lw, b.x2 / sx), min(lh, b.y2 / sy))
    img = Image.fromarray(level_pixels).resize(size, Image.Resampling.LANCZOS, box=frac)
    return np.asarray(img).astype(int)


def test_every_jpeg_level_is_served_from_its_tiles(tiff):
    s = Slide.open(tiff)
    assert [s._b.jpeg_level(i) is not None for i in range(s.level_count)] == [True] * s.level_count


@pytest.mark.parametrize("box,side", BOXES)
def test_views_are_pillows_exact_box_lanczos_of_the_stored_level(tiff, stored, box, side):
    s = Slide.open(tiff)
    v = s.read(box, side)
    ref = _pil_view(stored[v.level], s, box, v.level, (v.width, v.height))
    diff = np.abs(v.image.astype(int) - ref)
    assert diff.max() <= 8 and diff.mean() < 0.25, (diff.max(), diff.mean())


@pytest.mark.parametrize("box,side", BOXES)
def test_views_agree_with_libvips_rendering(tiff, box, side):
    fast = Slide.open(tiff).read(box, side).image.astype(int)
    clear_cache()
    jpegtiles.available.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jpegtiles, "available", lambda: False)
        s = Slide.open(tiff)
        assert s._b.jpeg_level(0) is None
        slow = s.read(box, side).image.astype(int)
    assert np.abs(fast - slow).mean() < 1.0


def test_rgb_jpeg_tiles_of_an_svs_copy_exactly(tmp_path):
    p = sf.make_svs(tmp_path / "s.svs", 1500, 1000, with_label=False, with_macro=False)
    s = Slide.open(p)
    assert s._b.jpeg_page(0).photometric in (2, 6) and s._b.jpeg_level(0) is not None
    view = s.read((100, 50, 700, 500), 700)  # level 0, the output the box's size: a copy
    assert np.array_equal(view.image, s.read_level(0, 100, 50, 700, 500))


def test_a_level_that_decodes_differently_is_left_to_libvips(tiff, stored, monkeypatch):
    real = jpegtiles.JpegLevel.tile

    def off_by_one(self, index, out=None):
        return (real(self, index, out).astype(np.int16) + 1).clip(0, 255).astype(np.uint8)

    monkeypatch.setattr(jpegtiles.JpegLevel, "tile", off_by_one)
    s = Slide.open(tiff)
    assert s._b.jpeg_level(1) is None
    v = s.read((0, 0, 1024, 1024), 512)  # level 1 copied by libvips: still the stored pixels
    assert np.array_equal(v.image, stored[1][:512, :512])


def test_copies_do_not_share_a_buffer(tiff, stored):
    s = Slide.open(tiff)
    first = s.read((0, 0, 512, 512), 512)
    kept = first.image.copy()
    s.read((1024, 1024, 512, 512), 512)
    assert np.array_equal(first.image, kept) and np.array_equal(kept, stored[0][:512, :512])


def test_threads_split_the_tiles_and_give_the_same_view(tiff):
    views = []
    for mode in ("serial", "parallel"):
        clear_cache()
        realize.mode = mode
        try:
            views.append(Slide.open(tiff).read((250, 130, 1600, 1100), 400).image)
        finally:
            realize.mode = "adaptive"
    assert np.array_equal(views[0], views[1])


def test_spans_over_the_budget_go_to_libvips(tiff, monkeypatch):
    s = Slide.open(tiff)
    region_view = s.read((250, 130, 1600, 1100), 400).image.astype(int)
    clear_cache()
    monkeypatch.setattr(jpegtiles, "SPAN_BUDGET_PX", 1000)
    s = Slide.open(tiff)
    calls = []
    real = jpegtiles.JpegLevel.read
    monkeypatch.setattr(
        jpegtiles.JpegLevel, "read", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    slow = s.read((250, 130, 1600, 1100), 400).image.astype(int)
    assert not calls and np.abs(region_view - slow).mean() < 1.0


def test_a_tile_that_does_not_decode_is_an_error_every_time(tmp_path):
    p = sf.make_svs(tmp_path / "bad.svs", 1024, 768, with_label=False, with_macro=False)
    bf.zero_segments(p, slice(5, 6))  # not the tile the level is checked on
    for _ in range(2):
        clear_cache()
        s = Slide.open(p)
        assert s._b.jpeg_level(0) is not None
        with pytest.raises(
            SlideError, match=r"bad\.svs: cannot read level 0 .*tile 5 does not decode"
        ):
            s.read((0, 0, 1024, 768), 1024)
    ok = Slide.open(p).read((0, 512, 256, 256), 256)  # tiles of another row still read
    assert ok.image.mean() > 20


def test_the_tile_path_is_available_here_and_keeps_flat_colour_flat():
    """CI has imagecodecs and cykooz_resizer: the tile path must be the one under test. The
    resampler preserves any flat colour exactly, whatever the fourth (ignored) channel holds
    (cykooz's own ``resize_pil`` premultiplied by it)."""
    assert jpegtiles.available()
    for value in (0, 1, 17, 137, 254, 255):
        for pad in (0, 7, 255):
            src = np.full((64, 48, 4), value, np.uint8)
            src[..., 3] = pad
            out = jpegtiles.lanczos(src, 0.5, 1.25, 46.0, 60.0, 23, 30)
            assert out.shape == (30, 23, 3) and (out == value).all(), (value, pad)
