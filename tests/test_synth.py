"""SynthPath generator: determinism, readability, ground truth, colour matching vs. separability."""

from __future__ import annotations

import json

import numpy as np
import openslide
import pytest
import tifffile
from PIL import Image, ImageDraw
from scipy import ndimage

from slidescout.errors import ConfigError, DatasetError
from slidescout.slides.synth import CLASSES, SynthTruth, generate_slide, load_truth

SIZE = (4000, 3000)
LESION = (600.0, 800.0)


def _tile_bytes(path, indices) -> list[bytes]:
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        fh = tf.filehandle
        out = []
        for i in indices:
            fh.seek(page.dataoffsets[i])
            out.append(fh.read(page.databytecounts[i]))
        return out


def _tiles_over(box, width, tile=256) -> list[int]:
    x, y, w, h = box
    across = -(-width // tile)
    return [
        r * across + c
        for r in range(y // tile, (y + h - 1) // tile + 1)
        for c in range(x // tile, (x + w - 1) // tile + 1)
    ]


def _polygon_mask(coords, shape, scale) -> np.ndarray:
    im = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(im).polygon([(x * scale, y * scale) for x, y in coords], fill=1)
    return np.asarray(im, bool)


def _tissue(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(int).sum(axis=2) < 3 * 228


def _nuclear_measure(rgb: np.ndarray) -> tuple[float, float]:
    """(fraction of hematoxylin-blue pixels, median area of nucleus-sized blue blobs, in px)."""
    r, b = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
    blue = ndimage.binary_fill_holes(b - r > 30)
    labels, _ = ndimage.label(blue)
    sizes = np.bincount(labels.ravel())[1:]
    sizes = sizes[sizes >= 80]  # ignore nuclear dust and specks
    return float(blue.mean()), float(np.median(sizes)) if len(sizes) else 0.0


@pytest.fixture(scope="module")
def same_seed(tmp_path_factory):
    a = generate_slide(
        tmp_path_factory.mktemp("a"), "s", size=SIZE, seed=5, primary="tumor", n_lesions=3
    )
    b = generate_slide(
        tmp_path_factory.mktemp("b"), "s", size=SIZE, seed=5, primary="tumor", n_lesions=3
    )
    return a, b


@pytest.fixture(scope="module")
def by_class(tmp_path_factory, same_seed):
    out = tmp_path_factory.mktemp("classes")
    slides = {"tumor": same_seed[0]}
    for i, cls in enumerate(("lymphocytes", "necrosis")):
        slides[cls] = generate_slide(
            out, f"c-{cls}", size=SIZE, seed=31 + i, primary=cls, n_lesions=2, lesion_size=LESION
        )
    return slides


def test_same_seed_same_slide(same_seed):
    a, b = same_seed
    assert a.truth_path.read_text() == b.truth_path.read_text()
    assert a.geojson.read_text() == b.geojson.read_text()
    les = a.truth.lesions_of("tumor")[0]
    tiles = _tiles_over(les.box, a.truth.width)[:12] + [0, 7, 31]
    assert _tile_bytes(a.path, tiles) == _tile_bytes(b.path, tiles)


def test_different_seed_differs(same_seed, tmp_path):
    c = generate_slide(tmp_path, "s", size=SIZE, seed=6, primary="tumor", n_lesions=3)
    a = same_seed[0]
    assert [x.box for x in c.truth.lesions] != [x.box for x in a.truth.lesions]
    tiles = _tiles_over((1000, 1000, 1500, 1000), SIZE[0])
    assert _tile_bytes(c.path, tiles) != _tile_bytes(a.path, tiles)


def test_openslide_reads_pyramid_and_mpp(same_seed):
    s = same_seed[0]
    with openslide.OpenSlide(str(s.path)) as sl:
        assert sl.dimensions == SIZE
        assert sl.properties["openslide.vendor"] == "generic-tiff"
        assert float(sl.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-4)
        assert float(sl.properties["openslide.mpp-y"]) == pytest.approx(0.25, rel=1e-4)
        assert sl.level_count >= 4
        assert [tuple(d) for d in sl.level_dimensions] == [tuple(d) for d in s.truth.levels]
        assert sl.level_downsamples[1] == pytest.approx(2.0, rel=0.01)
        region = np.asarray(sl.read_region((1000, 1000), 0, (256, 256)).convert("RGB"))
        assert region.std() > 3  # texture, not a flat fill
    with tifffile.TiffFile(s.path) as tf:
        page = tf.pages[0]
        assert page.is_tiled and page.tilewidth == 256 and page.tilelength == 256
        assert page.compression == tifffile.COMPRESSION.JPEG


def test_slidescout_slide_reads_it(same_seed):
    slides = pytest.importorskip("slidescout.slides")
    if not hasattr(slides, "Slide"):
        pytest.skip("slidescout.slides.Slide not available")
    s = same_seed[0]
    with slides.Slide.open(s.path) as slide:
        assert slide.dimensions == SIZE
        assert slide.mpp == pytest.approx(0.25, rel=1e-3)
        assert slide.mpp_source.value == "metadata"
        assert slide.objective_power == pytest.approx(s.truth.objective_power) == pytest.approx(40)
        les = s.truth.lesions[0]
        view = slide.read(les.box, max_side=512)
        assert max(view.width, view.height) <= 512 and view.image.std() > 3
        thumb = slide.thumbnail(1024)
        assert max(thumb.width, thumb.height) == 1024


def test_truth_schema_and_annotations(same_seed):
    s = same_seed[0]
    truth = load_truth(s.path)  # from the .tiff path: the .json beside it
    assert truth == load_truth(s.truth_path) == s.truth
    raw = json.loads(s.truth_path.read_text())
    assert {
        "slide_id",
        "width",
        "height",
        "mpp",
        "seed",
        "params",
        "lesions",
        "tissue",
        "primary",
    } <= raw.keys()
    assert all({"id", "class", "box"} <= les.keys() for les in raw["lesions"])
    assert truth.primary == "tumor" and truth.lesions_of("tumor")
    assert truth.objective_power == pytest.approx(40)
    assert {les.cls for les in truth.lesions} <= set(CLASSES)
    gj = json.loads(s.geojson.read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(truth.lesions)
    for feat, les in zip(gj["features"], truth.lesions, strict=True):
        assert feat["geometry"]["type"] == "Polygon"
        ring = np.array(feat["geometry"]["coordinates"][0])
        assert (ring[0] == ring[-1]).all()
        assert feat["properties"]["class"] == les.cls and feat["properties"]["id"] == les.id
        assert feat["properties"]["box"] == list(les.box)
        x, y, w, h = les.box
        assert ring[:, 0].min() >= x and ring[:, 0].max() <= x + w
        assert ring[:, 1].min() >= y and ring[:, 1].max() <= y + h


def test_lesions_lie_inside_tissue(by_class):
    for s in by_class.values():
        truth = s.truth
        with openslide.OpenSlide(str(s.path)) as sl:
            thumb = np.asarray(sl.get_thumbnail((1024, 1024)).convert("RGB"))
        scale = thumb.shape[1] / truth.width
        tissue = _tissue(thumb)
        # separate pieces in the thumbnail, as many as the truth says
        labels, n = ndimage.label(ndimage.binary_closing(tissue, iterations=2))
        big = np.bincount(labels.ravel())[1:] > 0.002 * tissue.size
        assert int(big.sum()) == len(truth.tissue)
        gj = json.loads(s.geojson.read_text())
        masks = []
        for feat, les in zip(gj["features"], truth.lesions, strict=True):
            m = _polygon_mask(feat["geometry"]["coordinates"][0], tissue.shape, scale)
            masks.append(m)
            assert tissue[ndimage.binary_erosion(m, iterations=1)].mean() > 0.97, les.id
            piece = next(p for p in truth.tissue if p.id == les.piece)
            px, py, pw, ph = piece.box
            x, y, w, h = les.box
            assert px <= x and py <= y and x + w <= px + pw and y + h <= py + ph
        for i in range(len(masks)):  # lesions never overlap
            for j in range(i + 1, len(masks)):
                assert not (masks[i] & masks[j]).any()


def test_colour_matched_at_thumbnail_but_separable_at_high_power(by_class):
    measures = {}
    for cls, s in by_class.items():
        truth = s.truth
        assert truth.colour_residual < 4
        gj = json.loads(s.geojson.read_text())
        with openslide.OpenSlide(str(s.path)) as sl:
            thumb = np.asarray(sl.get_thumbnail((1024, 1024)).convert("RGB"))
            scale = thumb.shape[1] / truth.width
            tissue = _tissue(thumb)
            lesion_any = np.zeros(tissue.shape, bool)
            for feat in gj["features"]:
                lesion_any |= _polygon_mask(feat["geometry"]["coordinates"][0], tissue.shape, scale)
            for feat, les in zip(gj["features"], truth.lesions, strict=True):
                m = _polygon_mask(feat["geometry"]["coordinates"][0], tissue.shape, scale)
                inner = ndimage.binary_erosion(m, iterations=2)
                width = int(max(6, 0.5 * np.sqrt(m.sum())))
                ring = (
                    ndimage.binary_dilation(m, iterations=width)
                    & ~ndimage.binary_dilation(m, iterations=2)
                    & tissue
                    & ~lesion_any
                )
                diff = thumb[inner].mean(axis=0) - thumb[ring].mean(axis=0)
                assert np.abs(diff).max() < 8, (cls, les.id, diff)
                x, y, w, h = les.box
                crop = np.asarray(
                    sl.read_region((x + w // 2 - 200, y + h // 2 - 200), 0, (400, 400)).convert(
                        "RGB"
                    )
                )
                measures.setdefault(les.cls, []).append(_nuclear_measure(crop))
    dark = {c: np.mean([m[0] for m in v]) for c, v in measures.items()}
    blob = {c: np.median([m[1] for m in v]) for c, v in measures.items()}
    assert dark["necrosis"] < 0.02
    assert 0.015 < dark["normal"] < 0.07
    assert dark["lymphocytes"] > 0.08 and dark["tumor"] > 0.08
    assert dark["lymphocytes"] > 2 * dark["normal"] and dark["tumor"] > 2 * dark["normal"]
    assert blob["tumor"] > 1.5 * blob["lymphocytes"]  # big pleomorphic nuclei vs small round ones


def test_progress_and_normal_slide(tmp_path):
    seen = []
    s = generate_slide(
        tmp_path,
        "n",
        size=(2048, 1536),
        seed=2,
        primary="normal",
        n_lesions=2,
        progress=seen.append,
    )
    assert seen and seen[-1] == 1.0
    assert s.truth.primary == "normal" and all(les.cls == "normal" for les in s.truth.lesions)
    assert isinstance(s.truth, SynthTruth) and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": (100, 100)}, "too small"),
        ({"size": ("a", 3)}, "bad slide size"),
        ({"primary": "cancer"}, "unknown primary"),
        ({"mpp": 0}, "mpp"),
        ({"lesion_size": (500, 100)}, "lesion size"),
    ],
)
def test_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_slide(tmp_path, "x", **kwargs)
    with pytest.raises(ConfigError, match="slide id"):
        generate_slide(tmp_path, "../evil", size=(2048, 2048))


def test_load_truth_errors(tmp_path):
    with pytest.raises(DatasetError, match="no SynthPath ground truth"):
        load_truth(tmp_path / "missing.tiff")
    bad = tmp_path / "bad.json"
    bad.write_text('{"slide_id": 3}')
    with pytest.raises(DatasetError, match="not a SynthPath truth file"):
        load_truth(bad)
