"""Navigation tools on a fake slide (engine contract) and on a generated TIFF (real engine)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slidescout.core.types import Box, View
from slidescout.errors import SlideError, ToolError
from slidescout.tools import ToolContext, ToolRegistry, ToolSet

W, H = 4000, 3000


class FakeSlide:
    """The slide engine's contract in a few lines: clamping, SlideError, mpp, views."""

    def __init__(self, w: int = W, h: int = H, mpp: float | None = 0.25):
        self.dimensions = (w, h)
        self.mpp = mpp
        self.mpp_source = "metadata" if mpp else "unknown"
        self.objective_power = 40
        self.calls: list[tuple] = []

    def _view(self, box, ds: float, guides: bool) -> View:
        req = Box.of(box)
        if req.w <= 0 or req.h <= 0:
            raise SlideError(f"box {req} is empty")
        shown = req.intersect(Box(0, 0, *self.dimensions))
        if shown is None:
            raise SlideError(f"box {req} is outside the slide")
        ow, oh = max(1, round(shown.w / ds)), max(1, round(shown.h / ds))
        img = np.full((oh, ow, 3), 200, np.uint8)
        return View(
            image=img,
            box=shown,
            level=0 if ds < 2 else 1,
            downsample=ds,
            mpp=self.mpp * ds if self.mpp else None,
            requested=req,
            clamped=shown != req,
            guides=guides,
        )

    def read(self, box, max_side=1000, guides=False) -> View:
        self.calls.append(("read", Box.of(box), max_side, guides))
        b = Box.of(box)
        shown = b.intersect(Box(0, 0, *self.dimensions)) or b
        return self._view(b, max(1.0, max(shown.w, shown.h) / max_side), guides)

    def read_mpp(self, box, mpp, max_side=None, guides=False) -> View:
        self.calls.append(("read_mpp", Box.of(box), mpp, max_side, guides))
        return self._view(box, mpp / self.mpp, guides)

    def thumbnail(self, max_side=1024, guides=False) -> View:
        self.calls.append(("thumbnail", max_side, guides))
        return self._view(Box(0, 0, *self.dimensions), max(self.dimensions) / max_side, guides)


@pytest.fixture
def nav() -> ToolSet:
    reg = ToolRegistry(builtin_modules=["slidescout.tools.navigation"], plugins=False)
    return reg.select(["slide_zoom", "view_region", "pan", "overview", "measure", "measure_area"])


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(slide=FakeSlide(), slide_id="fake", max_side=1000, guides=True)


async def test_slide_zoom_reports_region_like_giant(nav, ctx):
    res = await nav.invoke("slide_zoom", {"x0": 1000, "y0": 500, "w": 2000, "h": 1000}, ctx)
    assert res.text.startswith("Region shown: top-left corner (1000,500), size 2000×1000 pixels.")
    assert "the full slide is 4000 × 3000 pixels" in res.text
    assert "0.500 µm/px (≈20x)" in res.text and "clamped" not in res.text
    [img] = res.images
    assert img.box == Box(1000, 500, 2000, 1000) and img.mpp == pytest.approx(0.5)
    assert img.image.shape == (500, 1000, 3) and img.label == "slide_zoom"
    assert ctx.slide.calls[-1] == ("read", Box(1000, 500, 2000, 1000), 1000, True)  # guides on
    assert res.data["clamped"] is False and res.data["slide_size"] == [W, H]
    assert ctx.state["last_view"]["box"] == Box(1000, 500, 2000, 1000)
    assert len(ctx.state["views"]) == 1


async def test_slide_zoom_clamps_and_rejects(nav, ctx):
    res = await nav.invoke("slide_zoom", {"x0": 3500, "y0": -200, "w": 1000, "h": 1000}, ctx)
    assert res.images[0].box == Box(3500, 0, 500, 800)
    assert "(3500,-200,1000,1000) extended past the slide edge and was clamped" in res.text
    assert res.data["clamped"] is True and res.data["requested"] == [3500, -200, 1000, 1000]
    with pytest.raises(ToolError, match="entirely outside the slide, which is 4000 x 3000"):
        await nav.invoke("slide_zoom", {"x0": 5000, "y0": 0, "w": 100, "h": 100}, ctx)
    with pytest.raises(ToolError, match="positive width.*4000 x 3000"):
        await nav.invoke("slide_zoom", {"x0": 0, "y0": 0, "w": 0, "h": 100}, ctx)
    with pytest.raises(ToolError, match="missing required argument 'h'"):
        await nav.invoke("slide_zoom", {"x0": 0, "y0": 0, "w": 10}, ctx)
    assert len(ctx.views) == 1  # failed calls record nothing


async def test_view_region_at_mpp_and_magnification(nav, ctx):
    res = await nav.invoke(
        "view_region", {"x": 100, "y": 100, "w": 1000, "h": 800, "mpp": 0.5}, ctx
    )
    assert ctx.slide.calls[-1][0] == "read_mpp" and ctx.slide.calls[-1][2] == 0.5
    assert res.images[0].image.shape == (400, 500, 3)
    assert "0.500 µm/px (≈20x)" in res.text
    assert ctx.last_view["requested_mpp"] == 0.5
    await nav.invoke("view_region", {"x": 0, "y": 0, "w": 900, "h": 900, "magnification": 10}, ctx)
    assert ctx.slide.calls[-1][2] == pytest.approx(1.0)
    # 40x on a 0.25 slide is the scan resolution: allowed
    res = await nav.invoke(
        "view_region", {"x": 0, "y": 0, "w": 600, "h": 400, "magnification": 40}, ctx
    )
    assert res.images[0].mpp == pytest.approx(0.25)
    # neither: fitted like slide_zoom
    await nav.invoke("view_region", {"x": 0, "y": 0, "w": 4000, "h": 3000}, ctx)
    assert ctx.slide.calls[-1][0] == "read"


async def test_view_region_errors(nav, ctx):
    with pytest.raises(
        ToolError, match=r"more than the 1000 px limit; choose a box at most 2000 x 2000"
    ):
        await nav.invoke("view_region", {"x": 0, "y": 0, "w": 3000, "h": 1000, "mpp": 0.5}, ctx)
    with pytest.raises(ToolError, match="finer than the slide's scan resolution"):
        await nav.invoke("view_region", {"x": 0, "y": 0, "w": 100, "h": 100, "mpp": 0.1}, ctx)
    with pytest.raises(ToolError, match="either mpp or magnification"):
        await nav.invoke(
            "view_region", {"x": 0, "y": 0, "w": 100, "h": 100, "mpp": 1, "magnification": 10}, ctx
        )
    with pytest.raises(ToolError, match="greater than 0"):
        await nav.invoke("view_region", {"x": 0, "y": 0, "w": 100, "h": 100, "mpp": -1}, ctx)
    no_mpp = ToolContext(slide=FakeSlide(mpp=None))
    with pytest.raises(ToolError, match="no resolution metadata"):
        await nav.invoke(
            "view_region", {"x": 0, "y": 0, "w": 100, "h": 100, "magnification": 20}, no_mpp
        )


@pytest.mark.parametrize(
    "asked, shown",
    [
        ((5000, 0, 100, 100), (W - 1, 0, 1, 100)),  # wholly right of the slide: a 1 px column
        ((0, 0, 0, 100), (0, 0, 1, 100)),  # no width: 1 px
        ((100, 200, -50, -7), (100, 200, 1, 1)),  # negative sizes: 1 px
        ((-500, -100, 2000, 1000), (0, 0, 2000, 1000)),  # the origin moves; the size is kept
        ((3500, 2900, 1000, 1000), (3500, 2900, 500, 100)),  # cut at the far edges
        ((9000, 9000, 10, 10), (W - 1, H - 1, 1, 1)),
    ],
)
async def test_giant_clamp_always_shows_an_image(nav, asked, shown):
    # GIANT's crop_to_image: x0 = max(0, min(x0, W)), w = max(1, min(w, W - x0)), likewise y, h
    ctx = ToolContext(slide=FakeSlide(), max_side=1000, box_clamp="giant", message_style="giant")
    x0, y0, w, h = asked
    res = await nav.invoke("slide_zoom", {"x0": x0, "y0": y0, "w": w, "h": h}, ctx)
    [img] = res.images
    assert img.box == Box(*shown)
    assert res.data["requested"] == list(asked) and res.data["clamped"] is (asked != shown)
    # the region shown and the slide size, nothing else (no image size, no clamping note)
    sx, sy, sw, sh = shown
    assert res.text == (
        f"Region shown: top-left corner ({sx},{sy}), size {sw}×{sh} pixels. Reminder: the full "
        f"slide is {W} × {H} pixels, and every coordinate refers to that full resolution."
    )


async def test_pan(nav, ctx):
    with pytest.raises(ToolError, match="no previous view"):
        await nav.invoke("pan", {"direction": "left"}, ctx)
    await nav.invoke("slide_zoom", {"x0": 1000, "y0": 1000, "w": 1000, "h": 800}, ctx)
    res = await nav.invoke("pan", {"direction": "right"}, ctx)
    assert res.images[0].box == Box(1500, 1000, 1000, 800)
    assert res.text.startswith("Panned right by 500 level-0 pixels. Region shown:")
    res = await nav.invoke("pan", {"direction": "up", "fraction": 1.0}, ctx)
    assert res.images[0].box == Box(1500, 200, 1000, 800)
    res = await nav.invoke(
        "pan", {"direction": "up"}, ctx
    )  # only 200 px left above: stops at the edge
    assert res.images[0].box == Box(1500, 0, 1000, 800)
    with pytest.raises(ToolError, match="already at the up edge"):
        await nav.invoke("pan", {"direction": "up"}, ctx)
    with pytest.raises(ToolError, match="'direction'"):
        await nav.invoke("pan", {"direction": "north"}, ctx)
    with pytest.raises(ToolError, match="'fraction'"):
        await nav.invoke("pan", {"direction": "down", "fraction": 0}, ctx)
    assert [v["tool"] for v in ctx.views] == ["slide_zoom", "pan", "pan", "pan"]


async def test_pan_keeps_the_requested_mpp(nav, ctx):
    await nav.invoke("view_region", {"x": 0, "y": 0, "w": 400, "h": 400, "mpp": 0.5}, ctx)
    await nav.invoke("pan", {"direction": "down"}, ctx)
    assert ctx.slide.calls[-1][0] == "read_mpp" and ctx.slide.calls[-1][1] == Box(0, 200, 400, 400)
    assert ctx.last_view["requested_mpp"] == 0.5


async def test_overview(nav, ctx):
    ctx.max_side = 500
    res = await nav.invoke("overview", {}, ctx)
    assert ctx.slide.calls[-1] == ("thumbnail", 500, True)
    assert res.images[0].box == Box(0, 0, W, H) and res.images[0].image.shape[1] == 500
    assert res.text.startswith("Overview of the whole slide. Region shown: top-left corner (0,0)")
    assert ctx.last_view["tool"] == "overview"


async def test_measure_and_area(nav, ctx):
    res = await nav.invoke("measure", {"x1": 0, "y1": 0, "x2": 300, "y2": 400}, ctx)
    assert res.data["pixels"] == 500 and res.data["um"] == pytest.approx(125.0)
    assert "125.0 µm (0.125 mm)" in res.text and not res.images
    res = await nav.invoke("measure_area", {"x": 0, "y": 0, "w": 4000, "h": 2000}, ctx)
    assert res.data["mm2"] == pytest.approx(4000 * 2000 * 0.0625 / 1e6)
    assert res.data["um2"] == pytest.approx(500_000.0)
    assert "500,000 µm² (0.5000 mm²)" in res.text
    res = await nav.invoke("measure_area", {"x": 3900, "y": 0, "w": 200, "h": 100}, ctx)
    assert res.data["box"] == [3900, 0, 100, 100] and res.data["clamped"] is True
    with pytest.raises(ToolError, match="outside the slide"):
        await nav.invoke("measure", {"x1": 0, "y1": 0, "x2": 5000, "y2": 0}, ctx)
    no_mpp = ToolContext(slide=FakeSlide(mpp=None))
    with pytest.raises(ToolError, match="no resolution metadata"):
        await nav.invoke("measure", {"x1": 0, "y1": 0, "x2": 1, "y2": 1}, no_mpp)
    with pytest.raises(ToolError, match="no resolution metadata"):
        await nav.invoke("measure_area", {"x": 0, "y": 0, "w": 1, "h": 1}, no_mpp)
    assert "last_view" not in ctx.state  # measurements are not views


async def test_no_slide(nav):
    with pytest.raises(ToolError, match="set of images"):
        await nav.invoke(
            "slide_zoom", {"x0": 0, "y0": 0, "w": 1, "h": 1}, ToolContext(imageset=object())
        )
    with pytest.raises(ToolError, match="no slide"):
        await nav.invoke("overview", {}, ToolContext())


# ---------------------------------------------------------------------------------------------
# the real engine on a generated TIFF
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_slide(tmp_path_factory):
    slide_mod = pytest.importorskip(
        "slidescout.slides.slide", reason="slide engine not present yet"
    )
    from slidefactory import make_tiff

    path = make_tiff(tmp_path_factory.mktemp("nav") / "s.tiff", 3000, 2000, mpp=0.25)
    slide = slide_mod.Slide.open(path)
    yield slide
    close = getattr(slide, "close", None)
    if close:
        close()


@pytest.mark.timeout(60)
async def test_navigation_on_a_real_slide(nav, real_slide):
    ctx = ToolContext(slide=real_slide, max_side=500, guides=True)
    res = await nav.invoke("slide_zoom", {"x0": 2500, "y0": 1500, "w": 1000, "h": 1000}, ctx)
    img = res.images[0]
    assert img.box == Box(2500, 1500, 500, 500) and "clamped" in res.text
    assert max(img.image.shape[:2]) <= 500 and img.image.dtype == np.uint8
    assert "the full slide is 3000 × 2000 pixels" in res.text
    with pytest.raises(ToolError, match="3000 x 2000"):
        await nav.invoke("slide_zoom", {"x0": 4000, "y0": 0, "w": 10, "h": 10}, ctx)
    res = await nav.invoke("view_region", {"x": 0, "y": 0, "w": 800, "h": 600, "mpp": 1.0}, ctx)
    assert res.images[0].mpp == pytest.approx(1.0, rel=0.05)
    assert abs(res.images[0].image.shape[1] - 200) <= 2
    res = await nav.invoke("pan", {"direction": "right"}, ctx)
    assert res.images[0].box.x == 400
    res = await nav.invoke("overview", {}, ctx)
    assert res.images[0].box == Box(0, 0, 3000, 2000)
    res = await nav.invoke("measure", {"x1": 0, "y1": 0, "x2": 0, "y2": 1000}, ctx)
    assert res.data["um"] == pytest.approx(250.0, rel=0.01)
    parts = res.to_parts()
    assert parts and math.isfinite(res.data["mm"])
