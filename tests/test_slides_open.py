"""Opening slides: formats, metadata, mpp sources, bad files, privacy of associated images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import slidefactory as sf

from slidescout.errors import SlideError
from slidescout.slides import MppSource, Slide, SlideInfo, clear_cache, open_slide
from slidescout.slides.factory import open_backend


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("open")
    return {
        "tiff": sf.make_tiff(d / "gen.tif", 3000, 2000, mpp=0.25),
        "tiff_nompp": sf.make_tiff(d / "nompp.tif", 1200, 800, mpp=None),
        "svs": sf.make_svs(d / "case.svs", 3000, 2000),
        "svs_power_only": sf.make_svs(
            d / "power.svs", 1200, 800, mpp=None, app_mag=20, with_macro=False
        ),
        "svs_bare": sf.make_svs(
            d / "bare.svs", 1200, 800, mpp=None, app_mag=None, with_label=False, with_macro=False
        ),
        "png": sf.make_png(d / "photo.png", 300, 200),
        "jpeg": sf.make_jpeg(d / "photo.jpg", 320, 240),
        "dir": d,
    }


# ------------------------------------------------------------------------------ formats / info


def test_generic_tiff_info(files):
    s = Slide.open(files["tiff"])
    assert s.format == "generic-tiff" and s.vendor == "generic-tiff"
    assert s.backend_name == "pyvips"
    assert s.dimensions == (3000, 2000)
    assert s.level_count == 5
    assert s.level_dimensions[1] == (1500, 1000)
    assert s.level_downsamples[:4] == (1.0, 2.0, 4.0, 8.0)
    assert (
        s.mpp_x == pytest.approx(0.25)
        and s.mpp_y == pytest.approx(0.25)
        and s.mpp == pytest.approx(0.25)
    )
    assert s.mpp_source is MppSource.METADATA
    assert s.objective_power is None
    assert s.bounds is None
    assert s.associated_names == []
    assert s.slide_id == "gen"


def test_svs_info_mpp_from_description_and_associated_names(files):
    s = Slide.open(files["svs"])
    assert s.format == "aperio" and s.vendor == "aperio" and s.backend_name == "pyvips"
    assert s.dimensions == (3000, 2000)
    assert s.level_dimensions == ((3000, 2000), (750, 500))
    assert s.mpp == pytest.approx(0.252) and s.mpp_source is MppSource.METADATA
    assert s.objective_power == 40
    assert sorted(s.associated_names) == ["label", "macro", "thumbnail"]


def test_info_model_and_json(files):
    s = Slide.open(files["svs"])
    info = s.info()
    assert isinstance(info, SlideInfo)
    data = json.loads(info.to_json())
    assert data["width"] == 3000 and data["height"] == 2000
    assert data["format"] == "aperio" and data["mpp_source"] == "metadata"
    assert [lv["downsample"] for lv in data["levels"]] == [1.0, 4.0]
    assert data["levels"][1]["mpp"] == pytest.approx(1.008)
    assert sorted(data["associated_images"]) == ["label", "macro", "thumbnail"]
    assert data["objective_power"] == 40 and data["bounds"] is None
    assert len(info.to_json()) < 4000  # names only: no pixels of the label or macro


def test_model_properties_is_an_allow_list(files):
    s = Slide.open(files["svs"])
    props = s.model_properties()
    assert set(props) == {"width", "height", "mpp", "mpp_source", "objective_power"}
    assert props == {
        "width": 3000,
        "height": 2000,
        "mpp": pytest.approx(0.252),
        "mpp_source": "metadata",
        "objective_power": 40,
    }
    # raw properties hold scanner/file details that must not reach a model
    assert "aperio.ScanScope ID" in s.properties
    assert "SS1234" not in json.dumps(props)


def test_png_and_jpeg_are_one_level_slides_without_mpp(files):
    for key, size in (("png", (300, 200)), ("jpeg", (320, 240))):
        s = Slide.open(files[key])
        assert s.format == "image" and s.vendor is None
        assert s.dimensions == size and s.level_count == 1 and s.level_downsamples == (1.0,)
        assert s.mpp is None and s.mpp_source is MppSource.UNKNOWN
        view = s.read((0, 0, *size), 1000)
        assert view.image.shape == (size[1], size[0], 3) and view.mpp is None


# ------------------------------------------------------------------------------ mpp sources


def test_tiff_without_resolution_has_unknown_mpp(files):
    # pyvips' default resolution makes OpenSlide report mpp = 1000: that is not a measurement
    s = Slide.open(files["tiff_nompp"])
    assert float(s.properties["openslide.mpp-x"]) == pytest.approx(1000, rel=1e-3)
    assert s.mpp is None and s.mpp_source is MppSource.UNKNOWN
    assert "ignored" in s.info().mpp_note


def test_mpp_estimated_from_objective_power(files, caplog):
    with caplog.at_level("INFO", logger="slidescout.slides.metadata"):
        s = Slide.open(files["svs_power_only"])
    assert s.mpp_source is MppSource.ESTIMATED
    assert s.mpp == pytest.approx(10 / 20) and s.objective_power == 20
    assert any("estimated" in r.getMessage() for r in caplog.records)
    assert s.read((0, 0, 1200, 800), 600).mpp == pytest.approx(0.5 * 2)


def test_mpp_unknown_without_mpp_or_power(files):
    s = Slide.open(files["svs_bare"])
    assert s.mpp is None and s.mpp_source is MppSource.UNKNOWN and s.objective_power is None
    with pytest.raises(SlideError, match="mpp unknown"):
        s.read_mpp((0, 0, 100, 100), 0.5)


def test_tiff_resolution_in_inches(tmp_path):
    p = sf.make_tiff(tmp_path / "inch.tif", 600, 400, mpp=0.5, resunit="inch")
    s = Slide.open(p)
    assert s.mpp == pytest.approx(0.5, rel=1e-3) and s.mpp_source is MppSource.METADATA


# ------------------------------------------------------------------------------ bad files


def _err(path, backend="auto") -> str:
    with pytest.raises(SlideError) as exc:
        Slide.open(path, backend=backend)
    return str(exc.value)


def test_missing_file(tmp_path):
    msg = _err(tmp_path / "nope.svs")
    assert "not found" in msg and "nope.svs" in msg


def test_directory(files):
    assert "directory" in _err(files["dir"])


def test_empty_file(tmp_path):
    p = tmp_path / "empty.svs"
    p.write_bytes(b"")
    msg = _err(p)
    assert "empty.svs" in msg and "empty" in msg


def test_text_file_renamed_svs(tmp_path):
    p = tmp_path / "notes.svs"
    p.write_text("patient notes, not a slide\n" * 20)
    msg = _err(p)
    assert "notes.svs" in msg and "unsupported format" in msg


def test_unsupported_binary(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 40)
    assert "unsupported format" in _err(p)


@pytest.mark.parametrize("key", ["svs", "tiff", "png"])
def test_truncated_files(files, tmp_path, key):
    data = files[key].read_bytes()
    p = tmp_path / f"cut{files[key].suffix}"
    p.write_bytes(data[: len(data) // 2])
    msg = _err(p)
    assert p.name in msg and ("truncated" in msg or "corrupt" in msg)


def test_openslide_backend_rejects_plain_images(files):
    assert "OpenSlide does not recognise" in _err(files["png"], backend="openslide")


def test_unknown_backend_name(files):
    assert "unknown slide backend" in _err(files["tiff"], backend="tifffile")


def test_auto_falls_back_to_openslide_when_pyvips_cannot(files, monkeypatch):
    from slidescout.slides.backend_vips import VipsTiffBackend

    monkeypatch.setattr(
        VipsTiffBackend, "unsupported_reason", staticmethod(lambda *a: "JPEG 2000 tiles")
    )
    s = Slide.open(files["svs"])
    assert s.backend_name == "openslide"
    assert s.read((0, 0, 3000, 2000), 300).image.shape == (200, 300, 3)
    assert "JPEG 2000 tiles" in _err(files["svs"], backend="pyvips")


def test_corrupt_tile_data_is_a_slide_error(tmp_path):
    p = sf.make_svs(tmp_path / "corrupt.svs", 1024, 768, with_label=False, with_macro=False)
    data = bytearray(p.read_bytes())
    import tifffile

    with tifffile.TiffFile(p) as tif:
        off, cnt = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data[off : off + cnt] = b"\x00" * cnt  # first tile no longer a JPEG stream
    p.write_bytes(bytes(data))
    for backend in ("pyvips", "openslide"):
        s = Slide.open(p, backend=backend)  # the tile index is intact: opening works
        with pytest.raises(SlideError, match=r"corrupt\.svs: cannot read .*Not a JPEG"):
            s.read((0, 0, 200, 200), 200)
        with pytest.raises(SlideError, match="corrupt.svs"):
            s.read_level(0, 0, 0, 64, 64)


# ------------------------------------------------------------------------------ privacy


def test_associated_images_only_through_associated_image(files):
    s = Slide.open(files["svs"])
    label = np.asarray(s.associated_image("label"))
    macro = np.asarray(s.associated_image("macro"))
    assert sf.is_label_colour(label).mean() > 0.3
    assert sf.is_macro_colour(macro).mean() > 0.5
    views = [
        s.thumbnail(1024),
        s.thumbnail(64),
        s.read((0, 0, 3000, 2000), 4096),
        s.read((0, 0, 3000, 2000), 100),
    ]
    views += [s.read((x, y, 700, 500), 500) for x in (0, 2300) for y in (0, 1500)]
    for v in views:
        assert not sf.is_label_colour(v.image).any()
        assert not sf.is_macro_colour(v.image).any()
    for level in range(s.level_count):
        w, h = s.level_dimensions[level]
        raw = s.read_level(level, 0, 0, w, h)
        assert not sf.is_label_colour(raw).any() and not sf.is_macro_colour(raw).any()


def test_associated_image_unknown_name(files):
    s = Slide.open(files["svs"])
    with pytest.raises(SlideError, match="no associated image 'barcode'.*label"):
        s.associated_image("barcode")
    with pytest.raises(SlideError, match="it has none"):
        Slide.open(files["tiff"]).associated_image("label")


# ------------------------------------------------------------------------------ handle cache


def test_open_slide_caches_handles_and_notices_changes(tmp_path):
    clear_cache()
    p = sf.make_tiff(tmp_path / "c.tif", 600, 400)
    a, b = open_slide(p), open_slide(str(p))
    assert a is b
    sf.make_tiff(p, 800, 400)  # rewritten: a new handle
    c = open_slide(p)
    assert c is not a and c.dimensions == (800, 400)
    clear_cache()
    assert open_slide(p) is not c


def test_backend_factory_closes_cleanly(files):
    b = open_backend(files["svs"])
    b.close()
    with Slide.open(files["tiff"]) as s:
        assert s.read((0, 0, 10, 10), 10).image.shape == (10, 10, 3)


# ------------------------------------------------------------------------------ TIFF structure


def test_tiff_page_reader_matches_tifffile(files, tmp_path):
    import pyvips
    import tifffile

    from slidescout.slides.backends import tiff_pages

    big = tmp_path / "big.tif"
    pyvips.Image.new_from_file(str(files["png"])).tiffsave(
        str(big),
        tile=True,
        pyramid=True,
        bigtiff=True,
        tile_width=64,
        tile_height=64,
        compression="jpeg",
    )
    be = tmp_path / "be.tif"
    tifffile.imwrite(be, sf.render_pattern(300, 200), byteorder=">", tile=(64, 64))
    strip = tmp_path / "strip.tif"
    tifffile.imwrite(strip, sf.render_pattern(300, 200), rowsperstrip=50)
    for path in (files["tiff"], files["svs"], big, be, strip):
        ours = tiff_pages(path)
        with tifffile.TiffFile(path) as tif:
            assert len(ours) == len(tif.pages)
            for mine, page in zip(ours, tif.pages, strict=True):
                end = int((np.asarray(page.dataoffsets) + np.asarray(page.databytecounts)).max())
                assert (mine.width, mine.height, mine.tiled, mine.compression, mine.data_end) == (
                    page.imagewidth,
                    page.imagelength,
                    page.is_tiled,
                    int(page.compression),
                    end,
                )
                assert (mine.tile_w, mine.tile_h) == (page.tilewidth, page.tilelength)
    # a plain stripped TIFF is a one-level image slide
    s = Slide.open(strip)
    assert s.format == "image" and s.dimensions == (300, 200)
