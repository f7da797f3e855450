"""Views that are a level's own pixels are copied, not resampled (issue 25, "Exactness").

Level sizes are rounded (2999 px -> 1499, 749, 374, 187), so the ratio of the sizes (2.00067)
is not the downsample the pyramid was made with (2). A 1024 px box at the origin is 512 stored
pixels of level 1; resampling 511.8 of them to 512 blurred it (MAD 4-5). Checked against
tifffile's and OpenSlide's reads of the stored levels, and against GIANT's own crop, whose
pixels the copy must not change."""

from __future__ import annotations

import numpy as np
import pytest
import slidefactory as sf

from slidescout.core.types import Box
from slidescout.slides import Slide, clear_cache
from slidescout.slides import render as render_mod
from slidescout.slides.render import nominal_downsample

W, H = 2999, 2047


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return sf.make_tiff(tmp_path_factory.mktemp("exact") / "odd.tif", W, H, pattern="tissue")


@pytest.fixture(scope="module")
def stored(odd):
    import tifffile

    with tifffile.TiffFile(odd) as tif:
        return [page.asarray() for page in tif.pages]


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


def _aligned_boxes(level: int) -> list[tuple[int, int, int, int]]:
    d = 2**level
    return [
        (0, 0, 1024, 1024),
        (512, 256, 1024, 768),
        (W // d // 2 * d, H // d // 2 * d, 64 * d, 48 * d),
        ((W // d - 40) * d, (H // d - 30) * d, 40 * d, 30 * d),  # the last stored pixels
    ]


def test_level_sizes_are_rounded(odd, stored):
    s = Slide.open(odd)
    assert s.level_dimensions == ((2999, 2047), (1499, 1023), (749, 511), (374, 255), (187, 127))
    assert [a.shape[1::-1] for a in stored] == list(s.level_dimensions)
    assert [nominal_downsample(s.level_dimensions, i) for i in range(5)] == [1, 2, 4, 8, 16]
    assert s.level_downsamples[1] == pytest.approx(2.0008, abs=1e-4)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_views_copy_the_stored_level_pixels(odd, stored, level):
    s = Slide.open(odd)
    d = 2**level
    for box in _aligned_boxes(level):
        x, y, w, h = box
        v = s.read(box, max(w, h) // d)
        assert v.level == level and (v.width, v.height) == (w // d, h // d)
        expected = stored[level][y // d : y // d + h // d, x // d : x // d + w // d]
        assert np.array_equal(v.image, expected), (
            box,
            np.abs(v.image - expected.astype(int)).mean(),
        )


def test_the_whole_slide_at_a_levels_size_is_that_level(odd, stored):
    s = Slide.open(odd)
    for level in (1, 2, 3):
        lw, lh = s.level_dimensions[level]
        v = s.read((0, 0, W, H), max(lw, lh))
        assert (v.width, v.height) == (lw, lh) and np.array_equal(v.image, stored[level])


def test_mpp_views_at_a_levels_resolution_copy_it(odd, stored):
    s = Slide.open(odd)
    v = s.read_mpp((1024, 512, 1024, 1024), mpp=s.mpp * 4)
    assert v.level == 2 and np.array_equal(v.image, stored[2][128:384, 256:512])


def test_boxes_off_the_level_grid_are_resampled_in_place(odd, stored):
    """A box one level-0 pixel off the grid is not a copy of either neighbouring position."""
    s = Slide.open(odd)
    v = s.read((1, 0, 1024, 1024), 512)
    assert v.level == 1
    at0, at1 = stored[1][0:512, 0:512], stored[1][0:512, 1:513]
    assert not np.array_equal(v.image, at0) and not np.array_equal(v.image, at1)


def test_openslide_backend_copies_what_openslide_reads(odd, stored):
    """OpenSlide places a level read at ``x / downsample`` (2.00067 here) and interpolates a
    fractional position: at the origin that is the stored pixels, elsewhere OpenSlide's read."""
    import openslide

    s = Slide.open(odd, backend="openslide")
    osr = openslide.OpenSlide(str(odd))
    for level in (1, 2, 3, 4):
        d = 2**level
        v = s.read((0, 0, 1024, 1024), 1024 // d)
        assert np.array_equal(v.image, stored[level][: 1024 // d, : 1024 // d])
        v = s.read((512, 256, 1024, 1024), 1024 // d)
        ds = osr.level_downsamples[level]
        x0, y0 = round(512 // d * ds), round(256 // d * ds)
        ref = np.asarray(osr.read_region((x0, y0), level, (1024 // d, 1024 // d)))[..., :3]
        assert np.array_equal(v.image, ref)


# ------------------------------------------------------------------------ GIANT's rendering


def _giant_crop(osr, x0: int, y0: int, w: int, h: int, target: int) -> tuple[int, np.ndarray]:
    """GIANT's crop rule (util.crop_to_image), re-implemented: level for 0.85 x the downsample,
    one level finer when the read would be smaller than the target, read at the box origin,
    LANCZOS down to the target only when the read is larger."""
    from PIL import Image

    down = max(w, h) / target
    level = osr.get_best_level_for_downsample(max(1.0, down * 0.85))
    ds = float(osr.level_downsamples[level])
    rw, rh = max(1, round(w / ds)), max(1, round(h / ds))
    if max(rw, rh) < target and level > 0:
        level -= 1
        ds = float(osr.level_downsamples[level])
        rw, rh = max(1, round(w / ds)), max(1, round(h / ds))
    img = osr.read_region((x0, y0), level, (rw, rh)).convert("RGB")
    if max(img.size) > target:
        scale = target / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return level, np.asarray(img)


GIANT_CASES = [
    ((0, 0, 1000, 800), 1000),  # GIANT copies level 0 as it is
    ((512, 256, 500, 400), 500),
    ((0, 0, 1024, 1024), 512),  # the boxes the copy serves under the fine rule
    ((512, 256, 1024, 768), 512),
    ((0, 0, 2048, 2048), 512),
    ((1024, 512, 1000, 1000), 500),
    ((998, 446, 2000, 1600), 1000),
    ((0, 0, W, H), 1000),  # GIANT sizes the output from the level read (682 rows, not 683)
]


@pytest.mark.parametrize("box,target", GIANT_CASES)
def test_giant_rule_sends_what_it_sent_before(odd, monkeypatch, box, target):
    """Under ``level_rule="giant"`` the copy changes nothing: GIANT's level for a box is always
    finer than one where the box is exactly the target's size, except level 0, where GIANT
    copies too. So every giant view equals the view rendered without the copy, is read from
    GIANT's level, and equals GIANT's own crop where GIANT copies."""
    import openslide

    s = Slide.open(odd)
    view = s.read(box, target, level_rule="giant")
    clear_cache()
    monkeypatch.setattr(render_mod, "copy_region", lambda *a, **k: None)
    without = s.read(box, target, level_rule="giant")
    assert view.level == without.level and np.array_equal(view.image, without.image)

    osr = openslide.OpenSlide(str(odd))
    level, giant = _giant_crop(osr, *box, target)
    assert view.level == level and giant.shape == view.image.shape
    b = Box.of(box)
    if max(b.w, b.h) <= target:  # GIANT sends level 0's pixels: so do we
        assert np.array_equal(view.image, giant)
    else:  # both resample level pixels with Lanczos: the same picture
        assert np.abs(view.image.astype(int) - giant).mean() < 3.0
