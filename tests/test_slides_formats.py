"""Slides written by third-party writers (pyvips tiffsave, tifffile OME-TIFF / QPTIFF-like /
JPEG 2000): the engine opens each with the right levels and mpp, and a box at a level matches a
second reader (tifffile, and tiffslide where installed) at that level."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import slidefactory as sf

from slidescout.errors import SlideError
from slidescout.slides import Slide, clear_cache

W, H = 1200, 900
LEVELS = [(1200, 900), (600, 450), (300, 225)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    out = {
        "webp": sf.make_vips_tiff(d / "webp.tif", W, H, "webp", tile=128),
        "deflate": sf.make_vips_tiff(d / "deflate.tif", W, H, "deflate", tile=128),
        "jpeg": sf.make_vips_tiff(d / "jpeg.tif", W, H, "jpeg", tile=128),
        "subifd": sf.make_vips_tiff(d / "subifd.tif", W, H, "jpeg", subifd=True, tile=128),
        "ome_rgb": sf.make_ome_tiff(d / "rgb.ome.tif", W, H, mpp=0.25, magnification=40, tile=128),
        "ome_3c": sf.make_ome_tiff(
            d / "fl.ome.tif", W, H, ["DAPI", "CD8", "PanCK"], mpp=0.325, unit="nm", tile=128
        ),
        "qptiff": sf.make_qptiff(d / "fl.qptiff", W, H, ("FITC", "DAPI", "Cy5"), tile=128),
    }
    yield out
    clear_cache()


def _optional(name: str):
    """An optional second reader or codec library, or a clean skip (any import failure)."""
    import importlib

    try:
        return importlib.import_module(name)
    except Exception as exc:  # not only ImportError: a broken install must skip too
        pytest.skip(f"{name} is not usable ({type(exc).__name__}); pip install {name}")


def _tifffile_level(path, level: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[level].asarray()


def _box(s: Slide, level: int) -> tuple[int, int, int, int]:
    lw, lh = s.level_dimensions[level]
    return lw // 3, lh // 4, min(217, lw - lw // 3), min(131, lh - lh // 4)


def _assert_close(a: np.ndarray, b: np.ndarray, tol: int) -> None:
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= tol, f"max diff {diff.max()}, mean {diff.mean():.3f}"


@pytest.mark.parametrize(
    "key,mpp,tol",
    [
        ("webp", 0.5, 0),
        ("deflate", 0.5, 0),
        ("jpeg", 0.5, 2),
        ("subifd", 0.5, 2),
        ("ome_rgb", 0.25, 0),
    ],
)
def test_rgb_tiffs_match_tifffile_at_each_level(files, key, mpp, tol):
    if key in ("jpeg", "subifd", "webp"):
        _optional("imagecodecs")  # tifffile decodes JPEG and WebP tiles with it
    s = Slide.open(files[key])
    assert s.level_dimensions[:3] == tuple(LEVELS)
    assert s.mpp == pytest.approx(mpp, rel=1e-4) and s.mpp_source.value == "metadata"
    assert s.backend_name == "pyvips"
    for level in range(s.level_count):
        x, y, w, h = _box(s, level)
        ref = _tifffile_level(files[key], level)[y : y + h, x : x + w]
        _assert_close(s.read_level(level, x, y, w, h), ref, tol)
    thumb = s.thumbnail(300)
    assert thumb.level == 2  # the pyramid is used, not level 0


def test_webp_is_read_by_pyvips_and_info_says_why(files):
    info = Slide.open(files["webp"]).info()
    assert info.backend == "pyvips"
    assert "TIFF compression 50001 (WebP) is not supported by OpenSlide" in info.backend_reason
    assert "reading with pyvips" in info.backend_reason
    with pytest.raises(SlideError, match=r"50001 \(WebP\) is not supported by OpenSlide"):
        Slide.open(files["webp"], backend="openslide")
    assert Slide.open(files["webp"], backend="pyvips").level_count == 5  # tiffsave halves to 1 tile


def test_subifd_pyramids_are_levels(files):
    for key in ("subifd", "ome_rgb", "ome_3c"):
        info = Slide.open(files[key]).info()
        assert info.level_count == (5 if key == "subifd" else 3)
        assert "SubIFD pyramid" in info.backend_reason and "tifffile" in info.backend_reason
    # OpenSlide alone sees one level of the SubIFD file
    assert Slide.open(files["subifd"], backend="openslide").level_count == 1


def test_ome_metadata(files):
    rgb = Slide.open(files["ome_rgb"])
    assert rgb.format == "ome-tiff" and rgb.objective_power == 40
    assert rgb.info().channels == [] and "channels" not in rgb.model_properties()
    fl = Slide.open(files["ome_3c"])
    assert fl.mpp == pytest.approx(0.325)  # 325 nm
    assert fl.info().channel_mapping == {"DAPI": "blue", "CD8": "green", "PanCK": "red"}


def _composite_ref(path, level: int, box, order: list[int]) -> np.ndarray:
    """The composite computed independently from tifffile's channel planes: each channel stretched
    between its 0.5th and 99.8th percentile on the coarsest level."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        levels = tif.series[0].levels
        coarse = levels[-1].asarray()
        data = levels[level].asarray()
    x, y, w, h = box
    out = np.zeros((h, w, 3), np.uint8)
    for band, c in enumerate(order):
        lo, hi = np.percentile(coarse[c], [0.5, 99.8])
        v = (data[c, y : y + h, x : x + w].astype(np.float64) - lo) * (255.0 / (hi - lo))
        out[..., band] = np.clip(np.floor(v + 0.5), 0, 255)
    return out


@pytest.mark.parametrize("key,order", [("ome_3c", [2, 1, 0]), ("qptiff", [2, 0, 1])])
def test_fluorescence_composite_matches_tifffile(files, key, order):
    s = Slide.open(files[key])
    for level in range(s.level_count):
        box = _box(s, level)
        _assert_close(s.read_level(level, *box), _composite_ref(files[key], level, box, order), 1)
    v = s.read((100, 100, 600, 400), 300)
    assert v.meta["channels"].startswith("fluorescence composite:")
    assert "as blue" in v.describe() and "channels" in s.model_properties()
    assert v.image[..., 2].mean() > 20  # not the nearly black channel 0 of the raw file


def test_qptiff(files):
    s = Slide.open(files["qptiff"])
    assert s.format == "qptiff" and s.level_dimensions == tuple(LEVELS)
    assert s.mpp == pytest.approx(0.4965, rel=1e-4) and s.mpp_source.value == "metadata"
    assert s.objective_power == 20
    info = s.info()
    assert info.channels == ["FITC", "DAPI", "Cy5"]
    assert info.channel_mapping == {"FITC": "green", "DAPI": "blue", "Cy5": "red"}
    assert s.thumbnail(300).level == 2


def test_tiffslide_agrees(files):
    tiffslide = _optional("tiffslide")
    for key in ("webp", "deflate", "ome_rgb"):
        s = Slide.open(files[key])
        ts = tiffslide.TiffSlide(files[key])
        assert tuple(tuple(d) for d in ts.level_dimensions) == s.level_dimensions
        for level in range(s.level_count):
            x, y, w, h = _box(s, level)
            whole = np.asarray(
                ts.read_region((0, 0), level, s.level_dimensions[level], as_array=True)
            )
            _assert_close(s.read_level(level, x, y, w, h), whole[y : y + h, x : x + w, :3], 0)
        ts.close()


@pytest.mark.parametrize("code", [33004, 34712])
def test_jpeg2000_tiles_read_with_tifffile(tmp_path, code):
    _optional("imagecodecs")
    p = sf.make_jp2k_tiff(tmp_path / "j2k.tif", 800, 600, code=code, tile=128)
    s = Slide.open(p)
    assert s.backend_name == "tifffile" and s.level_count == 2
    assert f"{code} (JPEG 2000)" in s.info().backend_reason
    assert s.mpp == pytest.approx(0.25) and s.objective_power == 40
    for level in range(2):
        x, y, w, h = _box(s, level)
        _assert_close(
            s.read_level(level, x, y, w, h), _tifffile_level(p, level)[y : y + h, x : x + w], 0
        )
    assert s.read((0, 0, 800, 600), 200).image.shape == (150, 200, 3)
    pr = s.patch_reader(0)
    assert pr.fetch(790, 590, 20, 20)[15, 15].tolist() == [255, 255, 255]
    with pytest.raises(SlideError, match=r"pyvips cannot decode TIFF compression .*JPEG 2000"):
        Slide.open(p, backend="pyvips")


# ------------------------------------------------------------------------------ resolution tags


@pytest.mark.parametrize(
    "unit,res,mpp", [("CENTIMETER", 20000, 0.5), ("INCH", 50800, 0.5), ("INCH", 72, None)]
)
def test_plain_tiff_resolution_tags(tmp_path, unit, res, mpp):
    import tifffile

    p = tmp_path / "plain.tif"
    tifffile.imwrite(
        p, sf.render_pattern(300, 200), rowsperstrip=64, resolution=(res, res), resolutionunit=unit
    )
    s = Slide.open(p)
    assert s.format == "image" and "plain image (tiffload)" in s.info().backend_reason
    assert s.mpp == (pytest.approx(mpp, rel=1e-4) if mpp else None)


def test_objective_power_from_image_description(tmp_path):
    import pyvips

    img = pyvips.Image.new_from_array(sf.render_pattern(600, 400), interpretation="srgb").copy()
    img.set_type(pyvips.GValue.gstr_type, "image-description", "scanner X |AppMag = 20|")
    p = tmp_path / "desc.tif"
    img.tiffsave(
        str(p), tile=True, pyramid=True, compression="jpeg", xres=4000, yres=4000, resunit="cm"
    )
    s = Slide.open(p)
    assert s.format == "generic-tiff" and s.objective_power == 20 and s.mpp == pytest.approx(0.25)


# ------------------------------------------------------------------------------ not slides


@pytest.mark.parametrize(
    "name,content,kind",
    [
        (
            "questions.csv",
            "id,question,answer\n1,what is it?,tumour\n2,where?,left\n",
            "a CSV table",
        ),
        ("m.mat", "2 2\n1 2\n3 4\n", "a matrix file"),
        ("notes.txt", "just some notes\n", "a text file"),
        ("doc.pdf", "%PDF-1.4\n1 0 obj\n", "a PDF document"),
    ],
)
def test_non_slides_refused_by_name(tmp_path, name, content, kind):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(SlideError) as exc:
        Slide.open(p)
    assert f"slide {name}: {kind}, not a slide" in str(exc.value)


def test_cli_info_refuses_csv_in_one_line(tmp_path):
    p = tmp_path / "questions.csv"
    p.write_text("id,question\n" + "".join(f"{i},why {i}?\n" for i in range(700)))
    r = subprocess.run(
        [sys.executable, "-c", "from slidescout.cli import main; main()", "info", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "questions.csv: a CSV table, not a slide" in lines[0]


def test_whole_file_with_codec_pyvips_lacks_is_not_called_truncated(tmp_path):
    _optional("imagecodecs")
    import tifffile

    p = tmp_path / "strips.tif"
    tifffile.imwrite(
        p, sf.render_pattern(300, 200), rowsperstrip=64, compression="jpeg2000", photometric="rgb"
    )
    s = Slide.open(p)
    assert s.backend_name == "tifffile" and "JPEG 2000" in s.info().backend_reason
    assert s.read_level(0, 0, 0, 300, 200).shape == (200, 300, 3)


def test_ome_tiff_with_main_chain_pyramid_keeps_openslide_levels_and_ome_mpp(tmp_path):
    import tifffile

    p = tmp_path / "main.ome.tif"
    levels = sf.pyramid(sf.render_pattern(W, H, "tissue"))
    with tifffile.TiffWriter(p, ome=True) as tw:  # reduced levels as further main-chain pages
        tw.write(
            levels[0],
            tile=(128, 128),
            photometric="rgb",
            metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
        )
        for lv in levels[1:]:
            tw.write(lv, tile=(128, 128), photometric="rgb", subfiletype=1)
    for backend in ("auto", "openslide"):
        s = Slide.open(p, backend=backend)
        assert s.level_dimensions == tuple(LEVELS)
        assert s.mpp == pytest.approx(0.5) and "mpp from its OME-XML" in s.info().backend_reason


@pytest.mark.parametrize(
    "text,power",
    [
        ("Aperio Image Library v12.0.5 |AppMag = 20|MPP = 0.499", 20),
        (
            '<property>\n  <name>openslide.objective-power</name>\n  <value type="VipsRefString">40</value>',
            40,
        ),
        ('<name>aperio.AppMag</name><value type="gchararray">10</value>', 10),
        ('<Objective ID="Objective:0" NominalMagnification="63.0"/>', 63),
        ("SynthPath ...; objective_power=40|AppMag = 40|MPP = 0.25", 40),
        ("Objective Magnification: 20x", 20),
        ("<Objective>20x</Objective>", 20),
        ("scanned at 0.25 um/px, no magnification stated", None),
        ("AppMag = 0", None),
    ],
)
def test_objective_power_in_descriptions(text, power):
    from slidescout.slides.tiffmeta import objective_power

    assert objective_power(text) == power


def test_single_16bit_channel_is_stretched_grey(tmp_path):
    import tifffile

    p = tmp_path / "one.ome.tif"
    data = sf.channel_data(600, 400, 1)[..., 0]
    tifffile.imwrite(
        p,
        data,
        tile=(128, 128),
        compression="zlib",
        ome=True,
        metadata={
            "axes": "YX",
            "Channel": {"Name": ["DAPI"]},
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
        },
    )
    s = Slide.open(p)
    assert s.info().channel_mapping == {"DAPI": "grey"}
    img = s.read_level(0, 0, 0, 600, 400)
    assert (img[..., 0] == img[..., 2]).all() and img.max() > 200 and img.min() < 50
