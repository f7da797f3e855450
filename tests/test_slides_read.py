"""Reading views: boxes, clamping, level choice, never upscaling, mpp views, thumbnails, bounds,
raw level reads, patch readers, the view cache and concurrent reads."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import slidefactory as sf

from slidescout.errors import SlideError
from slidescout.slides import MAX_SIDE_LIMIT, Box, Slide, clear_cache
from slidescout.slides import slide as slide_mod
from slidescout.slides.factory import open_backend
from slidescout.slides.render import choose_level, fit_output, plan_region

W, H = 3000, 2000


@pytest.fixture(scope="module")
def tiff(tmp_path_factory):
    return sf.make_tiff(tmp_path_factory.mktemp("read") / "g.tif", W, H, mpp=0.25)


@pytest.fixture(scope="module")
def svs(tmp_path_factory):
    return sf.make_svs(tmp_path_factory.mktemp("read") / "s.svs", W, H)


@pytest.fixture(scope="module")
def slide(tiff):
    return Slide.open(tiff)


@pytest.fixture(autouse=True)
def _fresh_views():
    clear_cache()
    yield
    clear_cache()


def _expected(box: Box, size: tuple[int, int]) -> np.ndarray:
    """The gradient pattern's level-0 box resized with PIL (reference for where a view came from)."""
    from PIL import Image

    full = sf.render_pattern(W, H)
    crop = Image.fromarray(full[box.y : box.y2, box.x : box.x2])
    return np.asarray(crop.resize(size, Image.Resampling.LANCZOS)).astype(np.int16)


# ------------------------------------------------------------------------------ geometry


def test_view_records_box_level_downsample_mpp(slide):
    v = slide.read((400, 300, 2000, 1000), 500)
    assert v.image.shape == (250, 500, 3) and v.image.dtype == np.uint8
    assert v.box == Box(400, 300, 2000, 1000) and v.requested == v.box and not v.clamped
    assert v.level == 2  # downsample 4 is exactly the output's
    assert v.downsample == pytest.approx(4.0)
    assert v.mpp == pytest.approx(1.0)
    assert "region with top-left (400,300) and size 2000 x 1000" in v.describe()


@pytest.mark.parametrize(
    "box,max_side",
    [
        ((400, 300, 2000, 1000), 500),
        ((1234, 567, 999, 777), 400),
        ((0, 0, W, H), 300),
        ((2500, 1500, 500, 500), 1000),
    ],
)
def test_view_shows_the_requested_box(slide, box, max_side):
    v = slide.read(box, max_side)
    ref = _expected(Box.of(box), (v.width, v.height))
    # the gradient tells position: a shift of 1 output px would move the mean by ~0.1-1 grey level;
    # grid lines make the max error sensitive to misplacement
    diff = np.abs(v.image.astype(np.int16) - ref)
    assert diff[..., :2].mean() < 2.0, diff.mean()


@pytest.mark.parametrize("backend", ["pyvips", "openslide"])
@pytest.mark.parametrize(
    "box,max_side",
    [
        ((1234, 567, 999, 777), 400),
        ((250, 130, 1600, 1100), 400),
        ((2011, 1013, 987, 985), 333),
        ((33, 17, 2900, 1900), 777),
    ],
)
def test_view_is_placed_to_a_fraction_of_a_pixel(tiff, backend, box, max_side):
    """Against PIL's exact-box Lanczos on the same level's pixels, a view is far closer than the
    same reference shifted by half an output pixel: its placement error is a small fraction of
    a pixel (libvips' resize has no sub-pixel origin; the engine aligns its crop for that)."""
    from PIL import Image

    s = Slide.open(tiff, backend=backend)
    v = s.read(box, max_side)
    sx, sy = s._b.level_scale(v.level)
    lw, lh = s.level_dimensions[v.level]
    level = Image.fromarray(s.read_level(v.level, 0, 0, lw, lh))
    b = Box.of(box)

    def err(dx: float, dy: float) -> float:
        x0, y0 = b.x / sx + dx * v.downsample / sx, b.y / sy + dy * v.downsample / sy
        ref = level.resize(
            (v.width, v.height),
            Image.Resampling.LANCZOS,
            box=(x0, y0, min(lw, x0 + b.w / sx), min(lh, y0 + b.h / sy)),
        )
        return float(np.abs(v.image.astype(np.int16) - np.asarray(ref))[3:-3, 3:-3].mean())

    exact = err(0, 0)
    assert exact < 1.0
    for dx, dy in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
        assert exact < 0.6 * err(dx, dy)


def test_never_upscale(slide):
    v = slide.read((100, 100, 300, 200), 1000)
    assert (v.width, v.height) == (300, 200) and v.level == 0 and v.downsample == 1.0
    exact = sf.render_pattern(W, H)[100:300, 100:400]
    assert np.abs(v.image.astype(int) - exact).mean() < 2
    tiny = slide.read((10, 10, 1, 1), 500)
    assert tiny.image.shape == (1, 1, 3)


def test_output_size_rules():
    assert fit_output(Box(0, 0, 3000, 2000), 1000) == (1000, 667)
    assert fit_output(Box(0, 0, 2000, 3000), 1000) == (667, 1000)
    assert fit_output(Box(0, 0, 500, 40), 1000) == (500, 40)
    assert fit_output(Box(0, 0, 100000, 10), 1000) == (1000, 1)


def test_level_choice_coarsest_without_upsampling():
    scales = [(1, 1), (2, 2), (4, 4), (8, 8), (16.04, 16.0)]  # level 4 of 3000 x 2000 is 187 x 125
    assert choose_level(scales, 1000, 1000, 1000, 1000) == 0
    assert choose_level(scales, 1990, 1990, 1000, 1000) == 0
    assert choose_level(scales, 2000, 2000, 1000, 1000) == 1
    assert choose_level(scales, 7900, 7900, 1000, 1000) == 2
    assert choose_level(scales, 3000, 2000, 187, 125) == 4  # whole slide at the level's own size
    assert choose_level(scales, 1600, 1600, 100, 100) == 4  # 99.75 px across: < 1 px short
    assert choose_level(scales, 1600, 1600, 1000, 1000) == 0
    assert choose_level(scales, 100_000, 100_000, 1000, 1000) == 4


class _HugeBackend:
    """Level table of a 100k x 80k slide with a 2x pyramid (no pixels)."""

    def __init__(self) -> None:
        dims, w, h = [], 100_000, 80_000
        while w > 200:
            dims.append((w, h))
            w, h = math.ceil(w / 2), math.ceil(h / 2)
        self.level_dimensions = tuple(dims)

    def level_scale(self, level):
        w, h = self.level_dimensions[level]
        return 100_000 / w, 80_000 / h


@pytest.mark.parametrize(
    "box", [(0, 0, 100_000, 80_000), (0, 0, 50_000, 50_000), (12_345, 6_789, 1_000, 700)]
)
def test_any_box_reads_a_bounded_region(box):
    backend = _HugeBackend()
    b = Box(*box)
    out_w, out_h = fit_output(b, 1000)
    region = plan_region(backend, b, out_w, out_h)  # type: ignore[arg-type]
    # at most one pyramid step (2x per side) more pixels than the output, plus rounding
    assert region.w <= 2 * out_w + 2 and region.h <= 2 * out_h + 2
    if box == (0, 0, 100_000, 80_000):
        assert region.level == 6  # downsample 64 for a 100x reduction


def test_whole_slide_uses_a_low_level(slide):
    v = slide.read((0, 0, W, H), 200)
    assert v.level == 3 and v.image.shape == (133, 200, 3)
    v = slide.read((0, 0, W, H), 1000)
    assert v.level == 1


# ------------------------------------------------------------------------------ odd boxes


def test_partly_outside_is_clamped(slide):
    v = slide.read((2500, 1800, 1000, 1000), 500)
    assert v.clamped and v.requested == Box(2500, 1800, 1000, 1000)
    assert v.box == Box(2500, 1800, 500, 200)
    assert v.image.shape == (200, 500, 3)
    v = slide.read((-100, -50, 300, 200), 1000)
    assert v.clamped and v.box == Box(0, 0, 200, 150)


@pytest.mark.parametrize(
    "box,needle",
    [
        ((5000, 100, 100, 100), "lies outside the slide"),
        ((-500, -500, 100, 100), "lies outside the slide"),
        ((3000, 0, 10, 10), "lies outside the slide"),
        ((0, 0, 0, 100), "zero or negative size"),
        ((10, 10, -5, 100), "zero or negative size"),
        ((10, 10, 100, 0.2), "zero or negative size"),
        ((float("nan"), 0, 10, 10), "finite numbers"),
        (("a", 0, 10, 10), "must be numbers"),
        ("1,2,3", "needs 4 numbers"),
        (None, "bad box"),
        ((1, 2, 3, True), "must be numbers"),
    ],
)
def test_bad_boxes_name_the_slide_size(slide, box, needle):
    with pytest.raises(SlideError) as exc:
        slide.read(box, 500)
    msg = str(exc.value)
    assert needle in msg
    assert "level 0 is 3000 x 2000 px" in msg


def test_box_strings_and_boxes(slide):
    n = slide.read(np.array([100, 200, 300, 400]), np.int64(200))  # numpy numbers are fine
    assert n.box == Box(100, 200, 300, 400) and n.width == 150
    assert slide.read_mpp((0, 0, 400, 400), np.float32(1.0)).width == 100
    assert slide.read_level(np.int64(1), np.int32(0), 0, 10, 10).shape == (10, 10, 3)
    a = slide.read("100,200,300,400", 200)
    b = slide.read(Box(100, 200, 300, 400), 200)
    c = slide.read([100.4, 200, 300, 400], 200)
    assert a.box == b.box == c.box == Box(100, 200, 300, 400)


@pytest.mark.parametrize(
    "max_side", [0, 7, MAX_SIDE_LIMIT + 1, 10.5, "big", None, True, float("inf")]
)
def test_max_side_limits(slide, max_side):
    with pytest.raises(SlideError, match="max_side must be a whole number from 8 to 4096"):
        slide.read((0, 0, 100, 100), max_side)


# ------------------------------------------------------------------------------ read_mpp


def test_read_mpp(slide):
    v = slide.read_mpp((0, 0, 2000, 1000), 1.0)  # native 0.25 -> downsample 4
    assert v.image.shape == (250, 500, 3) and v.level == 2 and v.mpp == pytest.approx(1.0)
    v = slide.read_mpp((0, 0, 400, 200), 0.1)  # finer than native: native, noted
    assert (
        v.image.shape == (200, 400, 3)
        and v.mpp == pytest.approx(0.25)
        and "native" in v.meta["note"]
    )


def test_read_mpp_too_large_says_the_limit(slide):
    with pytest.raises(
        SlideError, match=r"would be 3000 x 2000 px; the most is 4096 px|the most is 1000 px"
    ):
        slide.read_mpp((0, 0, W, H), 0.25, max_side=1000)
    with pytest.raises(
        SlideError, match="the most is 1000 px on the long side.*at most 2000 level-0 px"
    ):
        slide.read_mpp((0, 0, W, H), 0.5, max_side=1000)


def test_read_mpp_bad_values(slide):
    for bad in (0, -1, float("nan"), "fast"):
        with pytest.raises(SlideError, match="mpp must be a positive number"):
            slide.read_mpp((0, 0, 10, 10), bad)


# ------------------------------------------------------------------------------ thumbnail / bounds


def test_thumbnail_whole_slide(slide):
    t = slide.thumbnail(1024)
    assert t.box == Box(0, 0, W, H) and t.image.shape == (683, 1024, 3)
    assert t.level == 1 and t.meta["kind"] == "thumbnail"
    small = slide.thumbnail(100)
    assert small.level == 4 and small.image.shape == (67, 100, 3)


def test_thumbnail_honours_bounds(tiff):
    backend = open_backend(tiff)
    backend.properties = {
        **backend.properties,
        "openslide.bounds-x": "1000",
        "openslide.bounds-y": "500",
        "openslide.bounds-width": "1500",
        "openslide.bounds-height": "1000",
    }
    s = Slide(backend)
    assert s.bounds == Box(1000, 500, 1500, 1000)
    assert s.info().bounds == (1000, 500, 1500, 1000)
    t = s.thumbnail(300)
    assert t.box == Box(1000, 500, 1500, 1000) and t.image.shape == (200, 300, 3)
    ref = _expected(Box(1000, 500, 1500, 1000), (300, 200))
    assert np.abs(t.image.astype(np.int16) - ref)[..., :2].mean() < 2.5


# ------------------------------------------------------------------------------ raw reads


def test_read_level_exact_pixels(slide):
    full = sf.render_pattern(W, H).astype(int)
    raw = slide.read_level(0, 1000, 500, 256, 128)
    assert raw.shape == (128, 256, 3) and raw.flags.writeable
    assert np.abs(raw - full[500:628, 1000:1256]).mean() < 2
    lvl1 = slide.read_level(1, 0, 0, 1500, 1000)
    assert lvl1.shape == (1000, 1500, 3)


def test_read_level_pads_outside_and_rejects_bad_args(slide):
    edge = slide.read_level(2, 700, 450, 100, 100)  # level 2 is 750 x 500
    assert edge.shape == (100, 100, 3)
    assert (edge[60:, :] == 255).all() and (edge[:, 60:] == 255).all()
    with pytest.raises(SlideError, match="outside level 2"):
        slide.read_level(2, 800, 0, 10, 10)
    with pytest.raises(SlideError, match="levels 0..4"):
        slide.read_level(9, 0, 0, 10, 10)
    with pytest.raises(SlideError, match="must be positive"):
        slide.read_level(0, 0, 0, 0, 10)
    with pytest.raises(SlideError, match="too large"):
        slide.read_level(0, 0, 0, 100_000, 100_000)


@pytest.mark.parametrize("backend", ["pyvips", "openslide"])
def test_patch_reader(tiff, backend):
    s = Slide.open(tiff, backend=backend)
    reader = s.patch_reader(1)
    assert reader.level == 1
    a = reader.fetch(100, 200, 224, 224)
    assert a.shape == (224, 224, 3)
    assert np.array_equal(a, s.read_level(1, 100, 200, 224, 224))
    edge = reader.fetch(1400, 900, 224, 224)
    assert (edge[100:, :] == 255).all()


def test_patch_reader_threads(slide):
    reader = slide.patch_reader(0)
    coords = [(x, y) for x in range(0, 2700, 300) for y in range(0, 1700, 400)]
    serial = [reader.fetch(x, y, 224, 224) for x, y in coords]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda c: reader.fetch(c[0], c[1], 224, 224), coords))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))


# ------------------------------------------------------------------------------ caches, threads


def test_view_cache_returns_equal_independent_views(slide):
    a = slide.read((0, 0, 1000, 1000), 500)
    b = slide.read((0, 0, 1000, 1000), 500)
    assert a is not b and a.image is b.image  # shared, read-only pixels
    assert not a.image.flags.writeable
    c = slide.read((-10, 0, 1010, 1000), 500)  # same shown box, different request
    assert c.clamped and not a.clamped and c.image is a.image
    a.meta["x"] = 1
    assert "x" not in b.meta
    assert slide_mod._views.nbytes > 0
    clear_cache()
    assert slide_mod._views.nbytes == 0


def test_view_cache_is_bounded_by_bytes(monkeypatch, slide):
    cache = slide_mod.LRUCache(max_bytes=2_000_000, sizeof=lambda v: int(v.image.nbytes))
    monkeypatch.setattr(slide_mod, "_views", cache)
    for i in range(10):
        slide.read((i * 100, 0, 1000, 1000), 500)  # 750 kB each
    assert cache.nbytes <= 2_000_000 and len(cache) == 2


@pytest.mark.parametrize("mode", ["adaptive", "serial", "parallel", "pool"])
def test_concurrent_reads_are_identical(svs, mode, monkeypatch):
    from slidescout.slides.backend_vips import realize

    monkeypatch.setattr(realize, "mode", mode)
    s = Slide.open(svs)
    boxes = [(x, y, w, w * 2 // 3) for x in (0, 700, 1500) for y in (0, 600) for w in (300, 1400)]
    boxes.append((0, 0, W, H))
    serial = [s.read(b, 400, guides=True).image.copy() for b in boxes]
    clear_cache()
    with ThreadPoolExecutor(6) as pool:
        views = list(pool.map(lambda b: s.read(b, 400, guides=True), boxes * 3))
    for i, v in enumerate(views):
        assert np.array_equal(v.image, serial[i % len(boxes)])


def test_crop_alignment_keeps_sub_pixel_shifts_small():
    """The crop span chosen for libvips' resize leaves at most half a source pixel to correct."""
    import random

    from slidescout.slides.backend_vips import SUBPIXEL_TOLERANCE, _phase_error, _span

    rng = random.Random(0)
    for _ in range(3000):
        scale = (
            rng.choice([1.0, 0.5, 0.25, 0.8, 2 / 3, 0.75, 1 / 3])
            if rng.random() < 0.5
            else rng.uniform(0.2, 1)
        )
        f0 = rng.randint(0, 5000) + rng.choice([0, 0.25, 0.5, 0.75, rng.random()])
        margin = math.ceil(3 / scale) + 1
        r0, r1 = _span(f0, f0 + 700, scale, margin, 256)
        assert r0 <= math.floor(f0) - margin and r1 >= math.ceil(f0 + 700) + margin
        err = _phase_error(f0, r0, scale)
        assert err <= SUBPIXEL_TOLERANCE or err / scale <= 0.5 + 1e-9
        # resize rounds its output size and stretches to fit: the span's scaled size should be
        # whole; rational scales p/q leave at most 1/(2q), scales within 2% of 1 up to 1/2
        size = (r1 - r0) * scale
        assert abs(size - round(size)) <= (0.25 if scale < 0.98 else 0.5)
