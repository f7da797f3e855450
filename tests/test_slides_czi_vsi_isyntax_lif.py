"""Zeiss CZI (pylibCZIrw, files its writer makes here, checked against libCZI and slideio),
VSI through slideio (the same slideio code run end to end on a CZI; VSI specifics at the seam,
since no writer or PyPI-shipped VSI exists), iSyntax through pyisyntax (at the seam, same reason),
LIF through readlif (a container laid out as readlif documents it). Missing extras, damaged files:
one line each."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import formatfactory as ff
import numpy as np
import pytest
import slidefactory as sf
from cli_helpers import run_cli

from slidescout.errors import SlideError
from slidescout.slides import Slide, clear_cache
from slidescout.slides.backend_czi import czi_metadata


@pytest.fixture(scope="module")
def czis(tmp_path_factory):
    pytest.importorskip("pylibCZIrw", reason="the 'czi' extra (pylibczirw) is not installed")
    d = tmp_path_factory.mktemp("czi")
    out = {
        "rgb": ff.make_czi(d / "rgb.czi", width=1300, height=900, z=3, t=2, scenes=2),
        "fl": ff.make_czi(
            d / "fl.czi", width=600, height=400, channels=3, compression="zstd1:ExplicitLevel=2"
        ),
        "fl_raw": ff.make_czi(d / "fl_raw.czi", width=600, height=400, channels=3),
        "plain": ff.make_czi(d / "plain.czi", width=600, height=400),
    }
    yield out
    clear_cache()


def _libczi(path: Path, level: int, c: int, plane: dict, roi, background) -> np.ndarray:
    from pylibCZIrw import czi

    with czi.open_czi(str(path)) as r:
        return np.asarray(
            r.read(roi=roi, plane={**plane, "C": c}, zoom=1 / 2**level, background_pixel=background)
        )


def test_czi_scenes_z_t_every_level_against_libczi(czis):
    s = Slide.open(czis["rgb"])
    info = s.info()
    assert info.backend == "pylibczirw" and s.format == "czi"
    assert "OpenSlide cannot open it" in info.backend_reason  # pylibCZIrw files carry a Z index
    assert s.dimensions == (2 * 1300 + 100, 900)  # both scenes and the gap between them
    assert s.level_dimensions == ((2700, 900), (1350, 450), (675, 225))
    assert s.mpp == pytest.approx(0.22) and s.objective_power is None
    assert s.properties["slidescout.plane"] == "t 1 of 2, z 2 of 3"
    assert s.properties["slidescout.scenes"] == "2 scenes, all shown"
    for level, (lw, lh) in enumerate(s.level_dimensions):
        f = 2**level
        ref = _libczi(czis["rgb"], level, 0, {"T": 0, "Z": 1}, (0, 0, lw * f, lh * f), (1, 1, 1))
        assert np.array_equal(s.read_level(level, 0, 0, lw, lh), ref[..., ::-1])  # MAD 0
    # level 0 of scene 0 is the written plane (uncompressed: exact)
    src = np.roll(sf.render_pattern(1300, 900, "tissue"), 7 * 1, axis=1)
    assert np.array_equal(s.read_level(0, 0, 0, 1300, 900), src)
    assert (s.read_level(0, 1300, 0, 100, 900) == 255).all()  # white between the scenes
    s.close()


def test_czi_zstd_fluorescence_channels_and_slideio_agrees(czis):
    slideio = pytest.importorskip("slideio", reason="the 'vsi' extra (slideio) is not installed")
    s = Slide.open(czis["fl"])
    info = s.info()
    assert info.channels == ["DAPI", "FITC", "TRITC"]
    assert info.channel_mapping == {"DAPI": "blue", "FITC": "green", "TRITC": "red"}
    raw = s._b._raw(0, 0, 0, 600, 400)
    data = sf.channel_data(600, 400, 3)
    assert np.array_equal(raw, data)  # Zstandard is lossless: MAD 0 against the written planes
    s.close()
    # the second reader: slideio agrees on the uncompressed file, and cannot decode Zstandard
    # subblocks at all (one reason libCZI is the CZI reader: docs/formats.md)
    raw_file = Slide.open(czis["fl_raw"])
    sc = slideio.open_slide(str(czis["fl_raw"]), "CZI").get_scene(0)
    theirs = sc.read_block_from_level(0, (0, 0, 600, 400))
    assert np.array_equal(raw_file._b._raw(0, 0, 0, 600, 400), theirs)
    assert [sc.get_channel_name(i) for i in range(3)] == info.channels
    raw_file.close()
    with pytest.raises(RuntimeError, match="Unsupported compression"):
        slideio.open_slide(str(czis["fl"]), "CZI").get_scene(0).read_block_from_level(
            0, (0, 0, 60, 40)
        )


def test_czi_metadata_objective_and_scaling():
    meta = {
        "ImageDocument": {
            "Metadata": {
                "Scaling": {
                    "Items": {
                        "Distance": [
                            {"@Id": "X", "Value": "1.1e-07"},
                            {"@Id": "Y", "Value": "1.2e-07"},
                        ]
                    }
                },
                "Information": {
                    "Instrument": {"Objectives": {"Objective": {"NominalMagnification": "40"}}},
                    "Image": {"Dimensions": {"Channels": {"Channel": {"@Name": "Hoechst"}}}},
                },
            }
        }
    }
    assert czi_metadata(meta) == ({"X": 1.1e-07, "Y": 1.2e-07}, ["Hoechst"], 40.0)


def test_czi_cli_and_damaged(czis, capsys, tmp_path):
    code, out, err = run_cli(capsys, "info", czis["rgb"])
    assert code == 0, err
    assert "pylibczirw (OpenSlide cannot open it" in out and "0.22 µm/px" in out
    code, out, err = run_cli(capsys, "thumbnail", czis["fl"], "-o", tmp_path / "t.png")
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "render", czis["rgb"], "--box", "1000,100,800,600", "-o", tmp_path / "r.jpg"
    )
    assert code == 0, err
    for cut in (0.5, 0.05):
        bad = tmp_path / f"bad{cut}.czi"
        data = Path(czis["plain"]).read_bytes()
        bad.write_bytes(data[: int(len(data) * cut)])
        code, out, err = run_cli(capsys, "thumbnail", bad, "-o", tmp_path / "x.png")
        assert code != 0 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------
# slideio (VSI)


def test_slideio_backend_end_to_end_on_a_czi(czis):
    """The slideio backend VSI uses, on the one format both slideio and a writer cover."""
    pytest.importorskip("slideio", reason="the 'vsi' extra (slideio) is not installed")
    from slidescout.slides.backend_slideio import SlideioBackend

    b = SlideioBackend(Path(czis["plain"]), driver="CZI", what="a CZI", extra="czi")
    assert b.level_dimensions == ((600, 400),) and b.name == "slideio"
    assert float(b.properties["openslide.mpp-x"]) == pytest.approx(0.22)
    ref = Slide.open(czis["plain"])
    # slideio hands CZI's Bgr24 over in its stored order (blue first); libCZI's order reversed
    mine = b.read_level(0, 0, 0, 600, 400)
    assert np.array_equal(mine[..., ::-1], ref.read_level(0, 0, 0, 600, 400))
    ref.close()
    b.close()


class _Size:
    def __init__(self, w: int, h: int) -> None:
        self.width, self.height = w, h


class _FakeScene:
    """slideio's documented Scene API: levels, resolution in metres, magnification, channels,
    ``read_block_from_level(level, rect, channel_indices, slices, frames)``."""

    num_zoom_levels, num_channels, num_z_slices, num_t_frames = 3, 3, 5, 1
    resolution, magnification = (2.5e-07, 2.5e-07), 40.0
    calls: list = []

    def get_zoom_level_info(self, i):
        return types.SimpleNamespace(size=_Size(4000 >> i, 3000 >> i))

    def get_channel_data_type(self, i):
        return np.uint8

    def get_channel_name(self, i):
        return "RGB"[i]

    def read_block_from_level(self, level, rect, channel_indices, slices, frames):
        self.calls.append((level, rect, slices, frames))
        x, y, w, h = rect
        yy, xx = np.mgrid[y : y + h, x : x + w]
        return np.stack([(xx + level) % 256, yy % 256, np.full_like(xx, 7)], -1).astype(np.uint8)

    def close(self):
        pass


class _FakeSlide:
    num_scenes = 2

    def get_scene(self, i):
        return _FakeScene()

    def close(self):
        pass


def _fake_slideio(monkeypatch, fail: str = ""):
    mod = types.ModuleType("slideio")

    def open_slide(path, driver):
        if fail:
            raise RuntimeError(fail)
        assert driver == "VSI"
        return _FakeSlide()

    mod.open_slide = open_slide  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slideio", mod)


def test_vsi_at_the_seam(monkeypatch, tmp_path):
    _fake_slideio(monkeypatch)
    vsi = tmp_path / "case.vsi"
    vsi.write_bytes(b"II*\x00" + b"\x00" * 200)  # a .vsi is a TIFF holding the overview
    ets = tmp_path / "_case_" / "stack1" / "frame_t.ets"
    ets.parent.mkdir(parents=True)
    ets.write_bytes(b"SIS\x00" + b"\x00" * 60)
    for path in (vsi, ets):  # an .ets opens the .vsi it belongs to
        s = Slide.open(path)
        assert s.path == vsi and s.backend_name == "slideio" and s.format == "vsi"
        assert s.level_dimensions == ((4000, 3000), (2000, 1500), (1000, 750))
        assert s.mpp == pytest.approx(0.25) and s.objective_power == 40
        assert s.properties["slidescout.scenes"] == "2 scenes, scene 0 shown"
        assert s.properties["slidescout.plane"] == "z 3 of 5"
        assert "OpenSlide does not read VSI" in s.info().backend_reason
        px = s.read_level(1, 10, 20, 3, 2)
        assert px[0, 0].tolist() == [11, 20, 7]
        assert _FakeScene.calls[-1] == (1, (10, 20, 3, 2), (2, 3), (0, 1))
        s.close()
    lone = tmp_path / "other" / "stack1" / "frame_t.ets"
    lone.parent.mkdir(parents=True)
    lone.write_bytes(b"SIS\x00")
    with pytest.raises(SlideError, match="open the .vsi file"):
        Slide.open(lone)


def test_vsi_reader_errors_are_one_line(monkeypatch, tmp_path):
    vsi = tmp_path / "bad.vsi"
    vsi.write_bytes(b"not a vsi at all" * 10)
    if "slideio" in sys.modules or _importable("slideio"):  # the real driver's refusal
        with pytest.raises(SlideError, match="slideio's VSI driver cannot open it") as e:
            Slide.open(vsi)
        assert "\n" not in str(e.value)
    _fake_slideio(monkeypatch, fail="VSI driver: invalid file header\nline two")
    with pytest.raises(SlideError, match="invalid file header line two"):
        Slide.open(vsi)
    monkeypatch.setitem(sys.modules, "slideio", None)
    with pytest.raises(SlideError, match=r"install the 'vsi' extra"):
        Slide.open(vsi)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ------------------------------------------------------------------------------------------
# iSyntax


class _FakeISyntax:
    """pyisyntax's documented ``ISyntax``: levels of downsample 2^k, mpp, RGBA ``read_region``."""

    level_dimensions = [(4096, 2048), (2048, 1024), (1024, 512)]
    mpp_x = mpp_y = 0.25

    @classmethod
    def open(cls, filename, cache_size=2000):
        if Path(filename).read_bytes()[:5] != b"<Data":
            raise RuntimeError("iSyntax parsing error")
        return cls()

    def read_region(self, x, y, width, height, level=0):
        out = np.zeros((height, width, 4), np.uint8)
        out[..., 0], out[..., 1], out[..., 2] = 200, 100 + level, 50
        out[..., 3] = 255
        out[0, 0, 3] = 0  # no scan there: white
        return out

    def read_label_image_jpeg(self):
        return memoryview(_jpeg_bytes())

    def read_macro_image_jpeg(self):
        return None

    def close(self):
        pass


def _jpeg_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 20, 30)).save(buf, "JPEG")
    return buf.getvalue()


def test_isyntax_at_the_seam(monkeypatch, tmp_path):
    mod = types.ModuleType("isyntax")
    mod.ISyntax = _FakeISyntax  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "isyntax", mod)
    f = tmp_path / "case.isyntax"
    f.write_bytes(b'<DataObject ObjectType="DPUfsImport">' + b"\x00" * 100)
    s = Slide.open(f)
    assert s.backend_name == "pyisyntax" and s.format == "isyntax"
    assert s.level_dimensions == ((4096, 2048), (2048, 1024), (1024, 512))
    assert s.level_downsamples == (1.0, 2.0, 4.0)
    assert s.mpp == pytest.approx(0.25) and s.mpp_source.value == "metadata"
    assert s.associated_names == ["label"]  # never in a view; only through associated_image
    assert s.associated_image("label").size == (40, 20)
    px = s.read_level(2, 0, 0, 2, 1)
    assert px[0, 0].tolist() == [255, 255, 255] and px[0, 1].tolist() == [200, 102, 50]
    assert "OpenSlide 4.0 does not read iSyntax" in s.info().backend_reason
    s.close()
    bad = tmp_path / "bad.isyntax"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(SlideError, match="libisyntax cannot open it"):
        Slide.open(bad)


def test_isyntax_real_reader_refuses_a_damaged_file(tmp_path, capsys):
    pytest.importorskip("isyntax", reason="the 'isyntax' extra (pyisyntax) is not installed")
    bad = tmp_path / "cut.isyntax"
    bad.write_bytes(b'<DataObject ObjectType="DPUfsImport">' * 20)
    code, out, err = run_cli(capsys, "info", bad)
    assert code != 0 and err.startswith("error:") and "libisyntax cannot open it" in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------
# LIF


@pytest.fixture(scope="module")
def lif(tmp_path_factory):
    pytest.importorskip("readlif", reason="the 'lif' extra (readlif) is not installed")
    d = sf.channel_data(300, 200, 2)
    planes = [(d[..., i] >> 8).astype(np.uint8) for i in range(2)]
    return ff.make_lif(
        tmp_path_factory.mktemp("lif") / "case.lif", planes, ["Blue", "Green"]
    ), planes


def test_lif_against_readlif(lif, capsys, tmp_path):
    from readlif.reader import LifFile

    path, planes = lif
    s = Slide.open(path)
    info = s.info()
    assert info.backend == "readlif" and s.format == "lif"
    assert s.level_dimensions == ((300, 200),)
    assert s.objective_power == 20
    img = LifFile(str(path)).get_image(0)
    assert s.mpp == pytest.approx(1 / img.scale[0])  # readlif's scale is px per µm
    assert info.channels == ["Blue", "Green"]
    raw = s._b._raw(0, 0, 0, 300, 200)
    for c in range(2):
        ref = np.asarray(img.get_frame(z=0, t=0, c=c))
        assert np.array_equal(raw[..., c], ref) and np.array_equal(ref, planes[c])  # MAD 0
    s.close()
    code, out, err = run_cli(capsys, "info", path)
    assert code == 0 and "OpenSlide does not read LIF" in out, err
    code, out, err = run_cli(capsys, "thumbnail", path, "-o", tmp_path / "t.png")
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "render", path, "--box", "0,0,150,100", "-o", tmp_path / "r.png"
    )
    assert code == 0, err


def test_lif_damaged_is_one_line(lif, tmp_path, capsys):
    path, _ = lif
    data = path.read_bytes()
    for n, name in ((len(data) - 5000, "cut.lif"), (40, "head.lif")):
        bad = tmp_path / name
        bad.write_bytes(data[:n])
        code, out, err = run_cli(capsys, "thumbnail", bad, "-o", tmp_path / "x.png")
        assert code != 0 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("module", "extra", "name", "head"),
    [
        ("pylibCZIrw", "czi", "x.czi", b"ZISRAWFILE" + b"\x00" * 200),
        ("isyntax", "isyntax", "x.isyntax", b"<DataObject>" + b"\x00" * 200),
        ("readlif.reader", "lif", "y.lif", b"\x70\x00\x00\x00\x10\x00\x00\x00*" + b"\x00" * 200),
    ],
)
def test_missing_extra_names_it(monkeypatch, tmp_path, capsys, module, extra, name, head):
    monkeypatch.setitem(sys.modules, module, None)
    f = tmp_path / name
    f.write_bytes(head)
    code, out, err = run_cli(capsys, "info", f)
    assert code != 0 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert f"install the '{extra}' extra" in err and "Traceback" not in err
