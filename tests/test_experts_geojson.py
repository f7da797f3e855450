"""GeoJSON exports of ``experts run``: nuclei as QuPath detections whose polygons match the
instances, a whole slide segmented in tiles (each nucleus once), classifier grids as tiles."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
from cli_helpers import run_cli
from slidefactory import make_tiff
from test_experts_segment import NUCLEI_NET
from test_experts_support import blobs_pattern, checker_slide, classifier_card, write_card

from slidescout.core.types import Box
from slidescout.slides import open_slide
from slidescout.tools.experts import catalog, wholeslide
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.segment import run_segmentation

torch = pytest.importorskip("torch")
skimage_draw = pytest.importorskip("skimage.draw")


@pytest.fixture()
def nuclei(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    pkg = tmp_path / "geonets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(NUCLEI_NET))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("geonets", None)
    from geonets import DarkNuclei  # type: ignore[import-not-found]

    torch.manual_seed(5)
    torch.save(DarkNuclei().state_dict(), tmp_path / "hover.pth")
    card = write_card(
        tmp_path,
        "geonuclei",
        "hover.pth",
        format="state_dict",
        architecture="geonets:DarkNuclei",
        output="instances",
        labels=["epithelial", "lymphocyte"],
        patch_size=64,
        overlap=16,
    )
    catalog.add(load_card(card))
    slide = make_tiff(
        tmp_path / "nuclei.tiff",
        1280,
        768,
        mpp=0.5,
        quality=95,
        pattern=blobs_pattern([(640, 384, 620, 370)], nuclei_every=32, radius=12),
    )
    return load_card(card), slide


def _schema_ok(doc: dict) -> list[dict]:
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)
    for f in doc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        ring = f["geometry"]["coordinates"][0]
        assert len(ring) >= 4 and ring[0] == ring[-1]
        assert all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in ring)
        assert f["properties"]["objectType"] in ("detection", "annotation", "tile")
        assert isinstance(f["id"], str) and len(f["id"]) == 36  # a UUID, as QuPath writes them
    return doc["features"]


def test_nuclei_polygons_match_the_instances(nuclei, tmp_path, capsys):
    card, path = nuclei
    out = tmp_path / "nuclei.geojson"
    rc, stdout, err = run_cli(
        capsys, "experts", "run", "geonuclei", path, "--box", "64,64,448,448", "-o", out,
        "--device", "cpu", "--json",
    )  # fmt: skip
    assert rc == 0, err
    result = json.loads(stdout)
    feats = _schema_ok(json.loads(out.read_text()))
    assert len(feats) == result["segmentation"]["count"] == result["geojson"]["features"] > 150
    assert {f["properties"]["classification"]["name"] for f in feats} <= {
        "epithelial",
        "lymphocyte",
    }
    seg = run_segmentation(open_slide(path), card, Box(64, 64, 448, 448), device="cpu")
    assert seg.box == Box(64, 64, 448, 448)  # model px = level-0 px here (0.5 µm/px both)
    for f in feats:
        ring = np.asarray(f["geometry"]["coordinates"][0])
        rr, cc = skimage_draw.polygon(ring[:, 1] - 64, ring[:, 0] - 64, seg.instances.shape)
        drawn = np.zeros(seg.instances.shape, bool)
        drawn[rr, cc] = True
        ids, counts = np.unique(seg.instances[drawn], return_counts=True)
        lab = ids[counts.argmax()]
        assert lab > 0
        inst = seg.instances == lab
        iou = (drawn & inst).sum() / (drawn | inst).sum()
        assert iou > 0.85, iou
        area = f["properties"]["measurements"]["area_um2"]
        assert area == pytest.approx(inst.sum() * 0.25, rel=1e-6)


def test_whole_slide_in_tiles_counts_each_nucleus_once(nuclei, tmp_path, capsys, monkeypatch):
    card, path = nuclei
    slide = open_slide(path)
    one = run_segmentation(slide, card, Box(0, 0, 1280, 768), device="cpu")
    monkeypatch.setattr(wholeslide, "MAX_SIDE", 600)  # cores of 600 - 2*64 - 2*64 = 344 px
    out = tmp_path / "slide.geojson"
    rc, stdout, err = run_cli(
        capsys, "experts", "run", "geonuclei", path, "-o", out, "--device", "cpu", "--json"
    )
    assert rc == 0, err
    s = json.loads(stdout)["segmentation"]
    assert s["tiles"] >= 6
    feats = _schema_ok(json.loads(out.read_text()))
    assert s["count"] == len(feats) == one.summary()["count"]
    centres = np.array(
        [np.asarray(f["geometry"]["coordinates"][0])[:-1].mean(axis=0) for f in feats]
    )
    d = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1)) + np.eye(len(centres)) * 1e9
    assert d.min() > 16  # no nucleus twice (they lie 32 px apart)
    assert sum(s["types"].values()) == s["count"]


def test_classifier_grid_as_tiles(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(load_card(classifier_card(tmp_path)))
    slide = checker_slide(tmp_path / "checker.tiff")
    out = tmp_path / "grid.geojson"
    rc, stdout, err = run_cli(
        capsys, "experts", "run", "redclass", slide, "-o", out, "--min-tissue", "0", "--json"
    )
    assert rc == 0, err
    result = json.loads(stdout)
    feats = _schema_ok(json.loads(out.read_text()))
    assert len(feats) == result["patches"] > 0
    for f in feats:
        ring = f["geometry"]["coordinates"][0]
        (x0, y0), (x1, y1) = ring[0], ring[2]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        red = (int(cx // 448) + int(cy // 448)) % 2 == 0
        props = f["properties"]
        assert props["objectType"] == "tile"
        assert props["classification"]["name"] == ("red" if red else "blue")
        assert set(props["measurements"]) == {"P(blue)", "P(red)"}


def test_bad_output_suffix_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(load_card(classifier_card(tmp_path)))
    slide = checker_slide(tmp_path / "checker.tiff")
    rc, _, err = run_cli(capsys, "experts", "run", "redclass", slide, "-o", tmp_path / "x.txt")
    assert rc == 2 and "give one image" in err and len(err.strip().splitlines()) == 1
