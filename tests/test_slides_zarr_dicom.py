"""OME-Zarr (zarr) and DICOM WSI beyond OpenSlide (wsidicom), on files their writers make in the
test: every level against the reference reader (zarr's arrays, wsidicom's ``read_region``),
exact sizes, mpp, objective power, channel names; damaged files give one line; the CLI works."""

from __future__ import annotations

import json
import shutil
import sys

import formatfactory as ff
import numpy as np
import pytest
import slidefactory as sf
from cli_helpers import run_cli

from slidescout.errors import SlideError
from slidescout.slides import Slide, clear_cache

zarr = pytest.importorskip("zarr", reason="the 'zarr' extra (zarr>=3) is not installed")
W, H = 700, 500


@pytest.fixture(scope="module")
def zfiles(tmp_path_factory):
    d = tmp_path_factory.mktemp("zarr")
    fl = sf.channel_data(W, H, 3).transpose(2, 0, 1)
    out = {
        "rgb": ff.make_ome_zarr(d / "rgb.zarr", ff.rgb_levels(W, H, 3), mpp=0.25),
        "fl": ff.make_ome_zarr(
            d / "fl.zarr",
            [fl, np.ascontiguousarray(fl[:, ::2, ::2])],
            channels=["CD8", "DAPI", "PanCK"],
            version="0.5",
            unit="nanometer",
            mpp=325.0,
        ),
        "tczyx": ff.make_ome_zarr(
            d / "stack.zarr",
            [
                np.stack(
                    [np.stack([fl[:1] + 100 * z + 1000 * t for z in range(5)], 1) for t in range(2)]
                )
            ],
            axes="tczyx",
            channels=["GFP"],
        ),
    }
    yield out
    clear_cache()


def _zarr_level(path, level: int) -> np.ndarray:
    """The reference: zarr's own array of the level, as (y, x, c)."""
    return np.moveaxis(np.asarray(zarr.open_group(str(path), mode="r")[str(level)][:]), 0, -1)


def test_ome_zarr_rgb_every_level_is_zarr_pixels(zfiles):
    s = Slide.open(zfiles["rgb"])
    assert s.backend_name == "zarr" and s.format == "ome-zarr"
    ref = [_zarr_level(zfiles["rgb"], i) for i in range(3)]
    assert (
        s.level_dimensions
        == tuple((a.shape[1], a.shape[0]) for a in ref)
        == (
            (700, 500),
            (350, 250),
            (175, 125),
        )
    )
    assert s.mpp == pytest.approx(0.25) and s.mpp_source.value == "metadata"
    assert s.objective_power is None  # NGFF has no objective metadata
    for level, a in enumerate(ref):
        lw, lh = s.level_dimensions[level]
        assert np.array_equal(s.read_level(level, 0, 0, lw, lh), a)  # MAD 0: lossless
        assert np.array_equal(s.read_level(level, 17, 9, 61, 43), a[9:52, 17:78])
    info = s.info()
    assert "OpenSlide does not read Zarr" in info.backend_reason
    assert "OME-NGFF 0.4" in info.backend_reason
    # a view that maps level pixels 1:1 is the level's pixels
    v = s.read((0, 0, 700, 500), 350)
    assert v.level == 1 and np.array_equal(v.image, ref[1])
    s.close()


def test_ome_zarr_fluorescence_channels_units_and_v05(zfiles):
    s = Slide.open(zfiles["fl"])
    info = s.info()
    assert info.channels == ["CD8", "DAPI", "PanCK"]
    assert info.channel_mapping == {"CD8": "green", "DAPI": "blue", "PanCK": "red"}
    assert s.mpp == pytest.approx(0.325)  # 325 nanometre
    assert "OME-NGFF 0.5" in info.backend_reason and "Zarr v3" in info.backend_reason
    img = s.read_level(1, 0, 0, *s.level_dimensions[1])
    assert img.dtype == np.uint8 and img.shape == (250, 350, 3) and img.std() > 5
    assert "DAPI as blue" in s.model_properties()["channels"]
    s.close()


def test_ome_zarr_z_and_t_read_at_middle_plane_first_point(zfiles):
    s = Slide.open(zfiles["tczyx"])
    assert s.properties["slidescout.plane"] == "t 1 of 2, z 3 of 5"
    src = np.asarray(zarr.open_group(str(zfiles["tczyx"]), mode="r")["0"][0, 0, 2])
    b = s._b
    assert np.array_equal(b._raw(0, 0, 0, W, H)[..., 0], src)
    s.close()


def test_ome_zarr_from_an_fsspec_url(capsys):
    url = "memory://slidescout-test/rgb.zarr"
    ff.make_ome_zarr(url, ff.rgb_levels(W, H, 2), mpp=0.5)
    s = Slide.open(url)
    assert s.info().path == url and s.slide_id == "rgb"
    assert s.level_dimensions == ((700, 500), (350, 250)) and s.mpp == pytest.approx(0.5)
    assert np.array_equal(s.read_level(0, 0, 0, W, H), _zarr_level(url, 0))
    s.close()
    code, out, err = run_cli(capsys, "info", url)
    assert code == 0, err
    assert "ome-zarr" in out and "zarr (OpenSlide does not read Zarr" in out


def test_ome_zarr_cli_info_thumbnail_render(zfiles, capsys, tmp_path):
    code, out, err = run_cli(capsys, "info", zfiles["rgb"], "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["backend"] == "zarr" and info["level_count"] == 3 and info["mpp"] == 0.25
    out_png = tmp_path / "t.png"
    code, out, err = run_cli(capsys, "thumbnail", zfiles["fl"], "--max-side", "200", "-o", out_png)
    assert code == 0, err
    assert out_png.stat().st_size > 1000
    code, out, err = run_cli(
        capsys, "render", zfiles["rgb"], "--box", "100,100,400,300", "-o", tmp_path / "r.jpg"
    )
    assert code == 0 and "level 0" in out, err


def test_ome_zarr_bad_metadata_and_damaged_chunks(tmp_path, zfiles):
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2)
    plain.create_array("0", shape=(10, 10), dtype="u1")
    with pytest.raises(SlideError, match="without OME-NGFF multiscales") as e:
        Slide.open(tmp_path / "plain.zarr")
    assert "\n" not in str(e.value)
    plain.attrs["multiscales"] = [{"axes": [{"name": "y"}, {"name": "x"}], "datasets": []}]
    with pytest.raises(SlideError, match="invalid OME-NGFF metadata .*datasets"):
        Slide.open(tmp_path / "plain.zarr")
    # a chunk whose bytes are damaged: an error, never pixels
    bad = tmp_path / "bad.zarr"
    shutil.copytree(zfiles["rgb"], bad)
    chunk = next(p for p in sorted((bad / "0").rglob("*")) if p.is_file() and p.name[0] != ".")
    chunk.write_bytes(b"\x00garbage" * 20)
    clear_cache()
    s = Slide.open(bad)
    with pytest.raises(SlideError, match="cannot read level 0") as e:
        s.read_level(0, 0, 0, 300, 300)
    assert "\n" not in str(e.value)
    with pytest.raises(SlideError, match="only backend 'auto'"):
        Slide.open(zfiles["rgb"], backend="openslide")


def test_missing_zarr_extra_is_one_line(monkeypatch, zfiles, capsys):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(SlideError) as e:
        Slide.open(zfiles["rgb"])
    assert "install the 'zarr' extra" in str(e.value) and "\n" not in str(e.value)
    code, out, err = run_cli(capsys, "info", zfiles["rgb"])
    assert code != 0 and err.strip().startswith("error:") and "zarr" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------
# DICOM


@pytest.fixture(scope="module")
def dicoms(tmp_path_factory):
    pytest.importorskip("wsidicom", reason="the 'dicom' extra (wsidicom) is not installed")
    d = tmp_path_factory.mktemp("dicom")
    base = sf.render_pattern(W, H, "tissue")
    levels = sf.pyramid(base, min_side=100)[:3]
    out = {
        "levels": levels,
        "jpeg_cropped": ff.make_dicom_wsi(d / "jc", levels, crop_edges=True)[0],
        "raw": ff.make_dicom_wsi(d / "raw", levels, codec="raw")[0],
        "jpeg_full": ff.make_dicom_wsi(d / "jf", levels, power=40.0)[0],
    }
    yield out
    clear_cache()


def test_openslide_rejects_cropped_edge_frames(dicoms):
    """The premise: OpenSlide opens the series but cannot decode its cropped edge frames."""
    import openslide

    osr = openslide.OpenSlide(str(dicoms["jpeg_cropped"]))
    with pytest.raises(openslide.OpenSlideError, match="Dimensional mismatch"):
        osr.read_region((W - 1, H - 1), 0, (1, 1))
    osr.close()


def test_dicom_cropped_edges_read_by_wsidicom_at_every_level(dicoms):
    from wsidicom import WsiDicom

    s = Slide.open(dicoms["jpeg_cropped"])
    info = s.info()
    assert info.backend == "wsidicom"
    assert "Dimensional mismatch" in info.backend_reason and "3 files" in info.backend_reason
    assert s.level_dimensions == ((700, 500), (350, 250), (175, 125))
    assert s.mpp == pytest.approx(0.25) and s.objective_power == 20
    ref = WsiDicom.open(dicoms["jpeg_cropped"].parent)
    for level, src in enumerate(dicoms["levels"]):
        lw, lh = s.level_dimensions[level]
        mine = s.read_level(level, 0, 0, lw, lh)
        theirs = np.asarray(ref.read_region((0, 0), ref.levels[level].level, (lw, lh)))
        assert np.array_equal(mine, theirs[..., :3])  # frames passed through: MAD 0
        assert np.abs(mine.astype(int) - src).mean() < 3  # JPEG q95 of the source
        # the bottom-right corner, inside a cropped frame
        assert np.array_equal(
            s.read_level(level, lw - 40, lh - 30, 40, 30), theirs[lh - 30 :, lw - 40 :, :3]
        )
    ref.close()
    s.close()


def test_dicom_uncompressed_is_exact_and_openslide_kept_where_it_reads(dicoms):
    from slidescout.slides.backend_dicom import WsiDicomBackend

    auto = Slide.open(dicoms["raw"])
    assert auto.backend_name == "openslide"  # OpenSlide decodes every level: it stays
    b = WsiDicomBackend(dicoms["raw"])
    for level, src in enumerate(dicoms["levels"]):
        lw, lh = b.level_dimensions[level]
        assert (lw, lh) == auto.level_dimensions[level]
        mine = b.read_level(level, 0, 0, lw, lh)
        assert np.array_equal(mine, src)  # lossless: MAD 0 against the written pixels
        assert np.array_equal(mine, auto.read_level(level, 0, 0, lw, lh))  # and OpenSlide's
    assert b.properties["openslide.mpp-x"] == auto.properties["openslide.mpp-x"]
    b.close()
    auto.close()
    full = Slide.open(dicoms["jpeg_full"])  # whole frames: OpenSlide reads it, as before
    assert full.backend_name == "openslide" and full.format == "dicom"
    assert "decodes the last tile of every level" in full.info().backend_reason
    assert full.objective_power == 40
    full.close()


def test_dicom_cli_and_damaged_series(dicoms, capsys, tmp_path):
    code, out, err = run_cli(capsys, "info", dicoms["jpeg_cropped"])
    assert code == 0, err
    assert "wsidicom (OpenSlide cannot decode level 0" in out and "20x" in out
    code, out, err = run_cli(capsys, "thumbnail", dicoms["jpeg_cropped"], "-o", tmp_path / "t.jpg")
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        "render",
        dicoms["jpeg_cropped"],
        "--box",
        "500,300,200,200",
        "-o",
        tmp_path / "r.png",
    )
    assert code == 0, err
    # a series whose level-0 file is cut short: one line, no pixels
    bad = tmp_path / "bad"
    shutil.copytree(dicoms["jpeg_cropped"].parent, bad)
    f = bad / "level0.dcm"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    clear_cache()
    code, out, err = run_cli(capsys, "render", f, "--box", "0,0,700,500", "-o", tmp_path / "x.png")
    assert code != 0 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_missing_dicom_extra_names_it(monkeypatch, dicoms):
    monkeypatch.setitem(sys.modules, "wsidicom", None)
    clear_cache()
    with pytest.raises(SlideError) as e:
        Slide.open(dicoms["jpeg_cropped"])
    text = str(e.value)
    assert "install the 'dicom' extra" in text and "Dimensional mismatch" in text
    assert "\n" not in text


def test_bench_formats_smoke():
    """``benchmarks/bench_formats.py --smoke`` runs every format end to end (tiny slide)."""
    import subprocess
    from pathlib import Path

    pytest.importorskip("wsidicom", reason="the 'dicom' extra (wsidicom) is not installed")
    root = Path(__file__).resolve().parent.parent
    env = {**__import__("os").environ, "PYTHONPATH": str(root / "src")}
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_formats.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for key in ("| ome-subifd |", "| ome-zarr |", "| dicom |", "backend wsidicom", "x) |"):
        assert key in proc.stdout


def test_array_backend_views_resample_like_the_pyvips_backends(tmp_path):
    """A view of an OME-Zarr is resampled exactly as a pyvips-read image of the same pixels."""
    from PIL import Image

    rgb = sf.render_pattern(W, H, "tissue")
    ff.make_ome_zarr(tmp_path / "one.zarr", [np.ascontiguousarray(np.moveaxis(rgb, 2, 0))])
    Image.fromarray(rgb).save(tmp_path / "one.png")
    z, png = Slide.open(tmp_path / "one.zarr"), Slide.open(tmp_path / "one.png")
    assert png.backend_name == "pyvips"
    for box, side in (((101, 57, 433, 301), 200), ((0, 0, W, H), 256), ((650, 470, 50, 30), 37)):
        a, b = z.read(box, side), png.read(box, side)
        assert a.image.shape == b.image.shape
        assert np.array_equal(a.image, b.image), box
    z.close()
    png.close()
