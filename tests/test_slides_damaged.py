"""Damaged, forged and unusual files: a view shows the file's pixels, or the answer is one line
of error; never black, white or invented pixels, never unbounded memory (issue 21, items 5-8).

Every file is built here from a writer's output with bytes patched (``badfiles``)."""

from __future__ import annotations

import subprocess
import sys

import badfiles as bf
import numpy as np
import pytest
import slidefactory as sf
from cli_helpers import run_cli

from slidescout.errors import SlideError
from slidescout.slides import Slide, clear_cache, open_slide
from slidescout.slides.integrity import MAX_SEGMENT_BYTES

W, H = 1200, 900


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


def _open_error(path, backend: str = "auto") -> str:
    with pytest.raises(SlideError) as info:
        Slide.open(path, backend=backend)
    return str(info.value)


def _one_line_error(capsys, *args) -> str:
    rc, out, err = run_cli(capsys, *args)
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, out, err)
    return lines[0]


# ------------------------------------------------------------------- a failed decode stays one


def test_a_failed_decode_stays_an_error_when_the_file_is_opened_again(tmp_path):
    """libvips' operation cache used to hand every reopening the image whose tile had failed,
    and that tile then read as black with no error."""
    p = sf.make_svs(tmp_path / "corrupt.svs", 1024, 768, with_label=False, with_macro=False)
    bf.zero_segments(p, slice(0, 1))  # the first tile is no longer a JPEG stream
    for _ in range(3):
        s = Slide.open(p)
        with pytest.raises(SlideError, match="Not a JPEG"):
            s.read((0, 0, 200, 200), 200)
    for _ in range(2):
        clear_cache()
        with pytest.raises(SlideError, match="Not a JPEG"):
            open_slide(p).read_level(0, 0, 0, 64, 64)
    # the tiles that are intact still read, and show the pattern
    good = open_slide(p).read_level(0, 512, 512, 64, 64)
    assert np.abs(good.astype(int) - sf.render_pattern(1024, 768)[512:576, 512:576]).mean() < 4


# -------------------------------------------------------- declared pixels the bytes cannot hold


def test_a_tiny_tiff_declaring_a_terapixel_is_refused_at_open(tmp_path, capsys):
    p = bf.raw_tiff(
        tmp_path / "huge.tif", bf.rgb_strip_tags(10**6, 10**6, 1, 8), b"\x80" * 8
    )  # one uncompressed strip of 8 bytes
    assert p.stat().st_size < 300
    msg = _open_error(p)
    assert "huge.tif" in msg and "1000000 x 1000000" in msg and "cannot hold" in msg
    for cmd in ("info", "thumbnail"):
        extra = ["-o", str(tmp_path / "t.jpg")] if cmd == "thumbnail" else []
        assert "cannot hold" in _one_line_error(capsys, cmd, p, *extra)


def test_a_deflate_strip_cannot_expand_past_deflates_limit(tmp_path):
    stream = bf.deflate_zeros(30_000_000)  # ~29 kB that expand to 30 MB
    p = bf.raw_tiff(
        tmp_path / "deflate.tif", bf.rgb_strip_tags(40_000, 40_000, 8, len(stream)), stream
    )
    assert "cannot hold" in _open_error(p) and "1032:1" in _open_error(p)


def test_one_strip_may_not_decode_to_more_than_the_cap(tmp_path):
    """A real deflate stream (within deflate's ratio) whose one strip decodes to 270 MB: no single
    decode may allocate that much, whatever the file holds."""
    n = 10_000 * 9_000 * 3
    assert n > MAX_SEGMENT_BYTES
    stream = bf.deflate_zeros(n)
    p = bf.raw_tiff(
        tmp_path / "strip.tif", bf.rgb_strip_tags(10_000, 9_000, 8, len(stream)), stream
    )
    assert p.stat().st_size < 400_000
    assert "decodes at most 268 MB at once" in _open_error(p)


def test_png_and_jpeg_declaring_a_gigapixel_are_refused(tmp_path, capsys):
    png = bf.png_bomb(tmp_path / "bomb.png")
    jpg = bf.jpeg_bomb(tmp_path / "bomb.jpg")
    assert png.stat().st_size < 1000 and jpg.stat().st_size < 1000
    assert "20000 x 19000" in _open_error(png) and "deflate cannot expand" in _open_error(png)
    assert "60000 x 60000" in _open_error(jpg) and "JPEG cannot expand" in _open_error(jpg)
    assert "bomb.png" in _one_line_error(capsys, "thumbnail", png, "-o", tmp_path / "t.jpg")


def test_highly_compressible_real_files_still_open(tmp_path):
    """The limits are the codecs' own: constant images (the most compressible there are) open."""
    import pyvips
    from PIL import Image

    flat = np.full((3000, 4000, 3), 243, np.uint8)
    Image.fromarray(flat).save(tmp_path / "flat.png", optimize=True)
    Image.fromarray(flat).save(tmp_path / "flat.jpg", quality=30, optimize=True)
    pyvips.Image.new_from_array(flat, interpretation="srgb").tiffsave(
        str(tmp_path / "flat.tif"), tile=True, pyramid=True, compression="deflate", level=9
    )
    bf.raw_tiff(
        tmp_path / "strips.tif",
        bf.rgb_strip_tags(4000, 3000, 8, len(s := bf.deflate_zeros(4000 * 3000 * 3))),
        s,
    )
    for name, value in (("flat.png", 243), ("flat.jpg", 243), ("flat.tif", 243), ("strips.tif", 0)):
        v = Slide.open(tmp_path / name).read((0, 0, 4000, 3000), 400)
        assert np.abs(v.image.astype(int) - value).max() <= 2, name


# --------------------------------------------------------- tiles that decode to nothing


@pytest.mark.parametrize("compression", ["webp", "deflate"])
def test_zero_filled_tiles_are_an_error_not_black(tmp_path, compression, capsys):
    p = sf.make_vips_tiff(tmp_path / f"{compression}.tif", W, H, compression, tile=128)
    bf.zero_segments(p, slice(0, 4))  # the first tiles of level 0
    s = Slide.open(p)
    with pytest.raises(SlideError, match=f"{compression}.tif: cannot read"):
        s.read((0, 0, 256, 256), 256)  # level 0
    view = s.read((0, 0, W, H), 300)  # level 2 is intact
    assert view.level == 2 and view.image.mean() > 100
    out = tmp_path / "v.png"
    _one_line_error(capsys, "render", p, "--box", "0,0,256,256", "--max-side", "256", "-o", out)
    assert not out.exists()


def test_a_tiff_without_any_tile_data_is_refused(tmp_path):
    import tifffile

    p = tmp_path / "empty.tif"
    tifffile.imwrite(p, sf.render_pattern(W, H), tile=(128, 128), compression="zlib")
    bf.overwrite_tag(p, "TileOffsets", 0)
    bf.overwrite_tag(p, "TileByteCounts", 0)
    assert "no image data" in _open_error(p)


def test_a_subifd_level_past_the_end_of_the_file_is_refused_at_open(tmp_path, capsys):
    p = sf.make_vips_tiff(tmp_path / "sub.tif", W, H, "jpeg", subifd=True, tile=128)
    size = p.stat().st_size
    offsets = bf.tag_values(p, "TileOffsets", subifd=0)
    bf.overwrite_tag(p, "TileOffsets", offsets + size, subifd=0)
    msg = _open_error(p)
    assert "sub.tif: level 1 is truncated" in msg
    assert "truncated" in _one_line_error(capsys, "info", p)


@pytest.mark.parametrize("tile", [(128, 128), None])
def test_an_unknown_compression_is_refused_at_open(tmp_path, tile, capsys):
    import tifffile

    p = tmp_path / "unknown.tif"
    tifffile.imwrite(p, sf.render_pattern(600, 400), tile=tile, compression="zlib")
    bf.overwrite_tag(p, "Compression", 12345)
    assert "TIFF compression 12345" in _open_error(p)
    assert "12345" in _one_line_error(capsys, "info", p)


# ----------------------------------------------------------------- layouts that must read


def test_tiled_planar_separate_rgb_reads_exactly(tmp_path):
    import tifffile

    ref = sf.render_pattern(W, H, "tissue")
    p = tmp_path / "planar.tif"
    tifffile.imwrite(
        p,
        np.moveaxis(ref, -1, 0),
        tile=(128, 128),
        planarconfig="separate",
        photometric="rgb",
        compression="zlib",
    )
    s = Slide.open(p)
    assert "planar" in s.info().backend_reason
    assert np.array_equal(s.read_level(0, 0, 0, W, H), ref)
    assert np.array_equal(s.read((100, 50, 700, 500), 700).image, ref[50:550, 100:800])


@pytest.mark.parametrize("tile", [(128, 128), None])
@pytest.mark.parametrize("samples", [1, 3])
def test_floats_in_unit_range_show_as_0_to_255(tmp_path, tile, samples):
    import tifffile

    rng = np.random.default_rng(0)
    data = rng.random((H, W, samples), dtype=np.float32)[..., 0 if samples == 1 else slice(None)]
    p = tmp_path / "float.tif"
    tifffile.imwrite(p, data, tile=tile, photometric="minisblack" if samples == 1 else "rgb")
    expected = np.clip(data * 255 + 0.5, 0, 255).astype(np.uint8)
    if samples == 1:
        expected = np.repeat(expected[..., None], 3, axis=2)
    got = Slide.open(p).read_level(0, 0, 0, W, H)
    assert np.abs(got.astype(int) - expected).max() <= 1 and got.mean() > 100


def test_tifffile_warnings_stay_off_the_terminal(tmp_path):
    """tifffile logs what it skips (here an OME-XML that does not parse); without a handler
    Python printed it to stderr around slidescout's own output."""
    import tifffile

    p = sf.make_ome_tiff(tmp_path / "bad.ome.tif", W, H, mpp=0.25, tile=128)
    with tifffile.TiffFile(p) as tif:
        at = tif.pages[0].tags["ImageDescription"].valueoffset
    data = bytearray(p.read_bytes())
    data[at + 200 : at + 260] = b"<<<<" * 15
    p.write_bytes(bytes(data))
    r = subprocess.run(
        [sys.executable, "-c", "from slidescout.cli import main; main()", "info", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "1200 x 900" in r.stdout
    assert r.stderr.strip() == ""
