"""The expert tools offered to models: tissue_map, nuclei_morphometry, stain_summary and
patch_classifier (a registered checkpoint through the runtime)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import anyio
import numpy as np
import pytest
from slidefactory import make_tiff
from test_experts_support import CELL, blobs_pattern, checker_slide, classifier_card, redness_card

from slidescout.errors import ToolError
from slidescout.slides import open_slide
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.pool import model_pool
from slidescout.tools.experts.tools import (
    nuclei_morphometry,
    patch_classifier,
    stain_summary,
    tissue_map,
)
from slidescout.tools.registry import ToolRegistry

BLOBS = [(800, 950, 500, 700), (2300, 1000, 450, 650)]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    path = make_tiff(
        tmp_path_factory.mktemp("blobs") / "blobs.tiff",
        3200,
        2000,
        pattern=blobs_pattern(BLOBS, nuclei_every=80, radius=12),
    )
    return open_slide(path)


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    return open_slide(checker_slide(tmp_path_factory.mktemp("checker") / "checker.tiff"))


def call(tool, slide, **args):
    ctx = args.pop("ctx", None) or ToolContext(slide=slide, device="cpu")
    return asyncio.run(tool.invoke(args, ctx))


def test_importing_the_tools_does_not_import_torch():
    code = (
        "import sys; from slidescout.tools.registry import ToolRegistry; "
        "r = ToolRegistry(plugins=False); names = r.names(); "
        "assert {'tissue_map', 'nuclei_morphometry', 'stain_summary', 'patch_classifier'} <= set(names); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_schemas():
    reg = ToolRegistry(plugins=False)
    pc = reg.get("patch_classifier")
    assert pc.parameters["required"] == ["x", "y", "w", "h", "model"]
    assert "registered expert model" in pc.parameters["properties"]["model"]["description"]
    assert reg.get("nuclei_morphometry").parameters["properties"]["mpp"]["default"] == 0.5
    assert reg.get("tissue_map").parameters["properties"] == {}


def test_tissue_map_pieces_boxes_and_areas(blobs):
    res = call(tissue_map, blobs)
    pieces = res.data["pieces"]
    assert len(pieces) == 2 and "Found 2 tissue piece(s)" in res.text
    for piece, (cx, cy, rx, ry) in zip(pieces, BLOBS, strict=True):  # largest first
        x, y, w, h = piece["box"]
        assert abs(x - (cx - rx)) < 30 and abs(y - (cy - ry)) < 30
        assert abs(w - 2 * rx) < 50 and abs(h - 2 * ry) < 50
        expected_mm2 = math.pi * rx * ry * 0.25**2 / 1e6
        assert piece["area_mm2"] == pytest.approx(expected_mm2, rel=0.05)
    (img,) = res.images
    assert img.label == "tissue map" and img.box.as_tuple() == (0, 0, 3200, 2000)
    assert max(img.width, img.height) == 1000 and img.mpp == pytest.approx(0.8)


def test_nuclei_morphometry_counts_and_sizes(blobs):
    # a box inside the first blob: purple discs every 80 px, radius 12 px = 3 µm
    res = call(nuclei_morphometry, blobs, x=500, y=600, w=640, h=640)
    d = res.data
    assert 56 <= d["count"] <= 72  # 64 discs, minus/plus edge effects
    assert d["mean_area_um2"] == pytest.approx(math.pi * 3.0**2, rel=0.3)
    assert d["analysis_mpp"] == pytest.approx(0.5, rel=0.01) and d["box"] == [500, 600, 640, 640]
    assert d["density_per_mm2"] == pytest.approx(d["count"] / d["tissue_area_mm2"])
    assert "nuclei" in res.text and "µm²" in res.text
    (img,) = res.images
    assert img.label == "nuclei overlay" and img.box.as_tuple() == (500, 600, 640, 640)
    assert (img.width, img.height) == (320, 320)
    green = (img.image[..., 1] == 255) & (img.image[..., 0] == 0)
    assert green.sum() > 100  # outlines drawn


def test_nuclei_morphometry_errors(blobs):
    with pytest.raises(
        ToolError, match=r"at most 2048 x 2048 level-0 pixels .* e\.g\. \(576,0,2048,2000\)"
    ):
        call(nuclei_morphometry, blobs, x=0, y=0, w=3200, h=2000, mpp=0.25)
    with pytest.raises(ToolError, match="from 0.2 to 1.0 µm/px"):
        call(nuclei_morphometry, blobs, x=0, y=0, w=100, h=100, mpp=4)
    with pytest.raises(ToolError, match="positive width and height"):
        call(nuclei_morphometry, blobs, x=0, y=0, w=0, h=100)
    with pytest.raises(ToolError, match="entirely outside the slide"):
        call(nuclei_morphometry, blobs, x=9000, y=0, w=100, h=100)
    with pytest.raises(ToolError, match="invalid arguments"):
        call(nuclei_morphometry, blobs, x="left", y=0, w=100, h=100)
    # partly outside: clamped, and said so
    res = call(nuclei_morphometry, blobs, x=3100, y=1900, w=400, h=400)
    assert res.data["box"] == [3100, 1900, 100, 100] and "clamped" in res.text


def test_stain_summary(tmp_path, blobs):
    res = call(stain_summary, blobs, x=400, y=400, w=800, h=1100)
    d = res.data
    assert d["tissue_fraction"] > 0.7 and d["h_od_mean"] > 0 and d["e_od_mean"] > 0
    assert d["pen_fraction"]["green"] == 0 and "No staining or artefact problems" in res.text
    glass = call(stain_summary, blobs, x=0, y=0, w=300, h=300)
    assert "almost all background" in glass.text and glass.data["h_od_mean"] is None

    def inked(x0, y0, w, h, width, height):
        out = blobs_pattern(BLOBS)(x0, y0, w, h, width, height)
        ys = np.arange(y0, y0 + h)[:, None]
        out[np.broadcast_to((ys > 1000) & (ys < 1060), (h, w))] = (40, 150, 70)
        return out

    pen = open_slide(make_tiff(tmp_path / "pen.tiff", 3200, 2000, pattern=inked))
    res = call(stain_summary, pen, x=300, y=250, w=1000, h=1400)
    assert "Pen or marker ink: green" in res.text and res.data["pen_fraction"]["green"] > 0.01


def test_patch_classifier_runs_a_registered_checkpoint(tmp_path, checker):
    catalog.add(load_card(classifier_card(tmp_path)))
    before = model_pool().loads
    region = dict(x=0, y=0, w=6 * CELL, h=4 * CELL)
    ctx = ToolContext(slide=checker, device="cpu", limiters={"cpu": anyio.CapacityLimiter(1)})

    async def three():
        return await asyncio.gather(
            *[patch_classifier.invoke({**region, "model": "redclass"}, ctx) for _ in range(3)]
        )

    results = asyncio.run(three())
    assert model_pool().loads - before == 1  # one instance for every concurrent call
    res = results[0]
    assert (
        "blue 50%, red 50%" in res.text
        and "Highest P(red)" in res.text
        and "Heatmap: P(red)" in res.text
    )
    assert res.data["patches"] == 24 and res.data["class_fractions"] == {"blue": 0.5, "red": 0.5}
    grid = np.array(res.data["grid"], dtype=float)
    expected = np.add.outer(np.arange(4), np.arange(6)) % 2 == 0
    assert np.all((grid > 0.9) == expected)
    (img,) = res.images
    assert img.label == "heatmap" and img.box.as_tuple() == (0, 0, 6 * CELL, 4 * CELL)
    assert img.mpp == pytest.approx(0.25 * 6 * CELL / 1000, rel=1e-3) and img.width == 1000
    assert res.data["heatmap"]["box"] == [0, 0, 6 * CELL, 4 * CELL]
    assert res.data["stats"]["patches_per_s"] > 0 and 0 <= res.data["stats"]["wait_fraction"] <= 1


def test_patch_classifier_score_model_and_label(tmp_path, checker):
    catalog.add(load_card(redness_card(tmp_path)))
    res = call(patch_classifier, checker, x=0, y=0, w=2 * CELL, h=2 * CELL, model="redness")
    assert res.data["score"]["label"] == "red" and res.data["patches"] == 4
    assert "red: mean" in res.text and res.images[0].label == "heatmap"


def test_patch_classifier_errors(tmp_path, checker):
    with pytest.raises(ToolError, match="none are registered yet"):
        call(patch_classifier, checker, x=0, y=0, w=100, h=100, model="tumor")
    catalog.add(load_card(classifier_card(tmp_path)))
    with pytest.raises(ToolError, match=r"did you mean redclass\?"):
        call(patch_classifier, checker, x=0, y=0, w=100, h=100, model="redclas")
    with pytest.raises(ToolError, match="has no label 'tumor'; its labels are blue, red"):
        call(patch_classifier, checker, x=0, y=0, w=100, h=100, model="redclass", label="tumor")
    ctx = ToolContext(slide=checker, device="cpu", extras={"experts.max_patches": 4})
    with pytest.raises(
        ToolError, match="more than the limit of 4 per call; choose a smaller region"
    ):
        call(patch_classifier, checker, x=0, y=0, w=6 * CELL, h=4 * CELL, model="redclass", ctx=ctx)
    with pytest.raises(ToolError, match="entirely outside"):
        call(patch_classifier, checker, x=0, y=99999, w=10, h=10, model="redclass")
    # the checkpoint vanished after registration
    (tmp_path / "redclass.pt").unlink()
    model_pool().clear()
    with pytest.raises(ToolError, match="cannot be used: .*checkpoint not found"):
        call(patch_classifier, checker, x=0, y=0, w=100, h=100, model="redclass")
