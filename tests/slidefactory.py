"""Small synthetic slides for tests: generic pyramidal TIFF, Aperio-style SVS, PNG/JPEG.

Every function writes a file and returns its path. The default pixel pattern encodes position
(red grows with x, green with y, blue fixed at ``PATTERN_BLUE``) with a faint grid, so a test can
check *where* a view came from. Label and macro images are saturated magenta / cyan, colours the
pattern never produces, so privacy tests can prove they never reach a view.

Writers:
- ``make_tiff``: pyvips ``tiffsave`` (tiled JPEG, pyramid, resolution in px/cm): OpenSlide reads
  it as ``generic-tiff`` with ``openslide.mpp-x`` from the resolution tags.
- ``make_svs``: tifffile with JPEG tiles pre-encoded by PIL, following the Aperio layout
  (level 0, stripped thumbnail, tiled levels, label, macro); OpenSlide 4 reads it as ``aperio``.
- ``make_png`` / ``make_jpeg``: plain one-level images.
- ``make_vips_tiff``: pyvips ``tiffsave`` with JPEG/WebP/deflate tiles, optionally ``subifd``.
- ``make_ome_tiff``: tifffile OME-TIFF with a SubIFD pyramid, RGB or named channels (uint16).
- ``make_qptiff``: a QPTIFF-like file (Akoya/PerkinElmer layout: channel pages with QPI XML,
  a thumbnail, reduced-resolution channel pages, resolution in px/cm).
- ``make_jp2k_tiff``: tifffile with JPEG 2000 tiles (needs imagecodecs).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

PATTERN_BLUE = 96
LABEL_RGB = (255, 0, 255)  # magenta: never produced by the slide patterns
MACRO_RGB = (0, 255, 255)  # cyan: never produced by the slide patterns

Pattern = Callable[[int, int, int, int, int, int], np.ndarray]


def gradient_pattern(x0: int, y0: int, w: int, h: int, width: int, height: int) -> np.ndarray:
    """RGB block at level-0 (x0, y0, w, h): R ramps with x, G with y, B fixed, grid every 100 px."""
    xs = np.arange(x0, x0 + w, dtype=np.float32)
    ys = np.arange(y0, y0 + h, dtype=np.float32)
    r = np.broadcast_to(20 + 215 * xs[None, :] / max(1, width - 1), (h, w))
    g = np.broadcast_to(20 + 215 * ys[:, None] / max(1, height - 1), (h, w))
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = r.astype(np.uint8)
    out[..., 1] = g.astype(np.uint8)
    out[..., 2] = PATTERN_BLUE
    grid = ((xs[None, :] % 100) < 2) | ((ys[:, None] % 100) < 2)
    out[grid] = (out[grid] * 0.6).astype(np.uint8)
    return out


def tissue_pattern(x0: int, y0: int, w: int, h: int, width: int, height: int) -> np.ndarray:
    """Pinkish stain-like texture with purple 'nuclei' dots on a white background (deterministic)."""
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    blob = (np.sin(xs / 173.0) * np.cos(ys / 131.0) + np.sin((xs + ys) / 411.0)) * 0.5
    tissue = blob > -0.2
    nuclei = (np.sin(xs / 7.3) * np.sin(ys / 6.1) > 0.85) & tissue
    out = np.full((h, w, 3), 242, np.uint8)
    out[tissue] = (232, 170, 200)
    out[nuclei] = (110, 60, 150)
    return out


PATTERNS: dict[str, Pattern] = {"gradient": gradient_pattern, "tissue": tissue_pattern}


def _pattern(pattern: str | Pattern) -> Pattern:
    if callable(pattern):
        return pattern
    try:
        return PATTERNS[pattern]
    except KeyError:
        raise ValueError(f"unknown pattern {pattern!r}; choose one of {sorted(PATTERNS)}") from None


def render_pattern(width: int, height: int, pattern: str | Pattern = "gradient") -> np.ndarray:
    """The full level-0 image of a pattern (small slides only)."""
    return _pattern(pattern)(0, 0, width, height, width, height)


def label_image(size: tuple[int, int] = (300, 300)) -> np.ndarray:
    """A 'label' with a magenta/black checkerboard (stands for patient identifiers)."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w, 3), np.uint8)
    out[((xs // 20) + (ys // 20)) % 2 == 0] = LABEL_RGB
    return out


def macro_image(size: tuple[int, int] = (600, 220)) -> np.ndarray:
    """A 'macro' photo: cyan with a black stripe."""
    w, h = size
    out = np.zeros((h, w, 3), np.uint8)
    out[:] = MACRO_RGB
    out[h // 3 : h // 3 + 10] = 0
    return out


# ---------------------------------------------------------------- generic TIFF (pyvips)


def make_tiff(
    path: str | Path,
    width: int,
    height: int,
    mpp: float | None = 0.25,
    tile: int = 256,
    pattern: str | Pattern = "gradient",
    *,
    pyramid: bool = True,
    quality: int = 90,
    resunit: str = "cm",
) -> Path:
    """Write a tiled JPEG generic TIFF (pyramidal by default) with correct resolution tags.

    ``mpp=None`` writes no meaningful resolution (pyvips' default 1 px/mm, unit inch), which is
    the "mpp≈1000" trap from DESIGN.md; the engine must then report mpp unknown.
    """
    import pyvips

    path = Path(path)
    arr = render_pattern(width, height, pattern)
    img = pyvips.Image.new_from_array(arr, interpretation="srgb")
    kwargs: dict = dict(
        tile=True,
        tile_width=tile,
        tile_height=tile,
        pyramid=pyramid,
        compression="jpeg",
        Q=quality,
    )
    if mpp is not None:
        px_per_mm = 1000.0 / mpp
        kwargs.update(xres=px_per_mm, yres=px_per_mm, resunit=resunit)
    img.tiffsave(str(path), **kwargs)
    return path


# ---------------------------------------------------------------- third-party layouts


def halve(arr: np.ndarray) -> np.ndarray:
    """2x2 mean (floor size), channels last, dtype kept."""
    h, w = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2
    a = arr[:h, :w].astype(np.float32)
    out = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
    return (out + 0.5).astype(arr.dtype)


def pyramid(arr: np.ndarray, min_side: int = 200) -> list[np.ndarray]:
    levels = [arr]
    while min(levels[-1].shape[:2]) // 2 >= min_side:
        levels.append(halve(levels[-1]))
    return levels


def make_vips_tiff(
    path: str | Path,
    width: int,
    height: int,
    compression: str = "webp",
    *,
    subifd: bool = False,
    mpp: float = 0.5,
    tile: int = 256,
    pattern: str | Pattern = "tissue",
) -> Path:
    """pyvips ``tiffsave``: tiled pyramid in the main chain, or in SubIFDs with ``subifd``."""
    import pyvips

    path = Path(path)
    img = pyvips.Image.new_from_array(render_pattern(width, height, pattern), interpretation="srgb")
    img.tiffsave(
        str(path),
        tile=True,
        tile_width=tile,
        tile_height=tile,
        pyramid=True,
        subifd=subifd,
        compression=compression,
        Q=90,
        xres=1000.0 / mpp,
        yres=1000.0 / mpp,
        resunit="cm",
    )
    return path


def channel_data(width: int, height: int, n: int) -> np.ndarray:
    """(height, width, n) uint16 fluorescence-like channels: dim background, bright spots."""
    base = render_pattern(width, height, "tissue").astype(np.uint16)
    grad = render_pattern(width, height, "gradient").astype(np.uint16)
    planes = [
        (255 - base[..., 1]) * 12 + 40,
        grad[..., 0] * 9 + 30,
        grad[..., 1] * 5 + 20 * (base[..., 0] < 200),
    ]
    return np.stack([planes[i % 3] for i in range(n)], axis=-1).astype(np.uint16)


def make_ome_tiff(
    path: str | Path,
    width: int,
    height: int,
    channels: list[str] | None = None,
    *,
    mpp: float = 0.25,
    unit: str = "µm",
    magnification: float | None = None,
    tile: int = 256,
) -> Path:
    """tifffile OME-TIFF, deflate tiles, pyramid in SubIFDs; RGB, or uint16 ``channels`` (CYX)."""
    import tifffile

    path = Path(path)
    size = mpp / {"µm": 1.0, "nm": 1e-3, "mm": 1e3}[unit]
    if channels:
        levels = [
            lv.transpose(2, 0, 1) for lv in pyramid(channel_data(width, height, len(channels)))
        ]
        meta: dict = {"axes": "CYX", "Channel": {"Name": list(channels)}}
        photometric = "minisblack"
    else:
        levels = pyramid(render_pattern(width, height, "tissue"))
        meta = {"axes": "YXS"}
        photometric = "rgb"
    meta.update(
        PhysicalSizeX=size, PhysicalSizeXUnit=unit, PhysicalSizeY=size, PhysicalSizeYUnit=unit
    )
    opts = dict(tile=(tile, tile), photometric=photometric, compression="zlib")
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(levels[0], subifds=len(levels) - 1, metadata=meta, **opts)
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, **opts)
    if magnification:  # tifffile writes no Instrument: add one as Bio-Formats does
        with tifffile.TiffFile(path, mode="r+b") as tif:
            xml = tif.pages[0].description
            obj = (
                f'<Instrument ID="Instrument:0"><Objective ID="Objective:0" '
                f'NominalMagnification="{magnification:g}"/></Instrument>'
            )
            tif.pages[0].tags["ImageDescription"].overwrite(
                xml.replace("<Image ", obj + "<Image ", 1).encode()
            )
    return path


def _qpi_xml(kind: str, name: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><PerkinElmer-QPI-ImageDescription>'
        f"<DescriptionVersion>2</DescriptionVersion><AcquisitionSoftware>PerkinElmer-QPI</AcquisitionSoftware>"
        f"<ImageType>{kind}</ImageType><Name>{name}</Name><Objective>20x</Objective>"
        "</PerkinElmer-QPI-ImageDescription>"
    )


def make_qptiff(
    path: str | Path,
    width: int,
    height: int,
    channels: tuple[str, ...] = ("DAPI", "FITC", "Cy5"),
    *,
    mpp: float = 0.4965,
    tile: int = 256,
) -> Path:
    """A QPTIFF-like file: per-channel full-resolution pages, a thumbnail, per-channel reduced
    pages (halving), resolution tags in px/cm. No OME-XML: names live in each page's QPI XML."""
    import tifffile

    path = Path(path)
    data = channel_data(width, height, len(channels))
    levels = pyramid(data)
    res = (1e4 / mpp, 1e4 / mpp)
    soft = "PerkinElmer-QPI"
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, name in enumerate(channels):
            tw.write(
                levels[0][..., i],
                tile=(tile, tile),
                compression="zlib",
                description=_qpi_xml("FullResolution", name),
                software=soft,
                resolution=res,
                resolutionunit="CENTIMETER",
                metadata=None,
            )
        thumb = (levels[-1][..., :3] >> 4).clip(0, 255).astype(np.uint8)
        tw.write(
            thumb,
            photometric="rgb",
            description=_qpi_xml("Thumbnail"),
            software=soft,
            metadata=None,
        )
        for lv in levels[1:]:
            for i, name in enumerate(channels):
                tw.write(
                    lv[..., i],
                    tile=(tile, tile),
                    compression="zlib",
                    description=_qpi_xml("ReducedResolution", name),
                    software=soft,
                    resolution=(res[0] / 2, res[1] / 2),
                    resolutionunit="CENTIMETER",
                    subfiletype=1,
                    metadata=None,
                )
    return path


def make_jp2k_tiff(
    path: str | Path,
    width: int,
    height: int,
    *,
    code: int = 33004,
    mpp: float = 0.25,
    tile: int = 256,
) -> Path:
    """JPEG 2000 tiles (written by imagecodecs as 34712, the tag then set to ``code``), SubIFD level."""
    import tifffile

    path = Path(path)
    levels = pyramid(render_pattern(width, height, "tissue"))
    opts = dict(
        tile=(tile, tile), photometric="rgb", compression="jpeg2000", compressionargs={"level": 95}
    )
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            levels[0],
            subifds=len(levels) - 1,
            resolution=(1e4 / mpp, 1e4 / mpp),
            resolutionunit="CENTIMETER",
            description=f"scanner test |AppMag = 40|MPP = {mpp}",
            metadata=None,
            **opts,
        )
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, metadata=None, **opts)
    if code != 34712:
        with tifffile.TiffFile(path, mode="r+b") as tif:
            for page in [tif.pages[0], *(tif.pages[0].pages or [])]:
                page.tags["Compression"].overwrite(code)
    return path


# ---------------------------------------------------------------- Aperio SVS (tifffile)


def _jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    # Aperio stores JPEG tiles in RGB (no YCbCr transform) with PhotometricInterpretation RGB
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality, keep_rgb=True, subsampling=0)
    return buf.getvalue()


def _ensure_tifffile_jpeg() -> None:
    """tifffile looks up a JPEG encoder even for pre-encoded tiles; without imagecodecs it has
    none, so register a PIL-based one (tifffile has no public codec registry)."""
    from tifffile import TIFF

    try:
        TIFF.COMPRESSORS[7]
    except KeyError:

        def encode(data, level=None, **_kw) -> bytes:  # pragma: no cover - tiles arrive as bytes
            arr = np.asarray(data)
            while arr.ndim > 3:
                arr = arr[0]
            return _jpeg_bytes(arr, level or 90)

        TIFF.COMPRESSORS._codecs[7] = encode  # noqa: SLF001


def _tiles(arr: np.ndarray, tile: int, quality: int):
    h, w = arr.shape[:2]
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            block = np.full((tile, tile, 3), 255, np.uint8)
            part = arr[ty : ty + tile, tx : tx + tile]
            block[: part.shape[0], : part.shape[1]] = part
            yield _jpeg_bytes(block, quality)


def _downscale(arr: np.ndarray, factor: int) -> np.ndarray:
    h, w = arr.shape[:2]
    img = Image.fromarray(arr, "RGB")
    return np.asarray(
        img.resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.LANCZOS)
    )


def make_svs(
    path: str | Path,
    width: int,
    height: int,
    mpp: float | None = 0.252,
    app_mag: float | None = 40,
    with_label: bool = True,
    with_macro: bool = True,
    *,
    tile: int = 256,
    pattern: str | Pattern = "gradient",
    level_factor: int = 4,
    min_level_side: int = 256,
    quality: int = 90,
) -> Path:
    """Write an Aperio-style SVS that OpenSlide 4 reads as vendor ``aperio``.

    Layout (DESIGN.md recipe): page 0 tiled level 0 whose ImageDescription starts with
    ``Aperio Image Library`` and carries ``|AppMag = 40|MPP = 0.252``; page 1 a stripped
    thumbnail; then tiled levels (each ``level_factor`` smaller); then ``label`` (NewSubfileType 1)
    and ``macro`` (NewSubfileType 9) stripped pages. ``mpp=None`` / ``app_mag=None`` leave those
    keys out.
    """
    import tifffile

    _ensure_tifffile_jpeg()
    path = Path(path)
    base = render_pattern(width, height, pattern)
    levels = [base]
    factor = level_factor
    while (
        max(width // factor, height // factor) >= min_level_side
        and min(width // factor, height // factor) >= 1
    ):
        size = (width // factor, height // factor)
        levels.append(
            np.asarray(Image.fromarray(base, "RGB").resize(size, Image.Resampling.LANCZOS))
        )
        factor *= level_factor

    head = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) JPEG/RGB Q={quality}"
    fields = []
    if app_mag is not None:
        fields.append(f"AppMag = {app_mag:g}")
    if mpp is not None:
        fields.append(f"MPP = {mpp}")
    fields += ["ScanScope ID = SS1234", "Filename = synthetic", "Title = slidescout test slide"]
    desc0 = head + "|" + "|".join(fields)

    thumb = _downscale(base, max(1, max(width, height) // 512 + 1))

    def write_tiled(
        tw: tifffile.TiffWriter, arr: np.ndarray, description: str, subfiletype: int
    ) -> None:
        tw.write(
            _tiles(arr, tile, quality),
            shape=arr.shape,
            dtype=np.uint8,
            tile=(tile, tile),
            compression="jpeg",
            compressionargs={"outcolorspace": "RGB"},  # Aperio: RGB JPEG, no YCbCr transform
            subsampling=(1, 1),
            photometric="rgb",
            description=description,
            subfiletype=subfiletype,
            metadata=None,
        )

    def write_stripped(
        tw: tifffile.TiffWriter, arr: np.ndarray, description: str, subfiletype: int
    ) -> None:
        tw.write(
            np.ascontiguousarray(arr),
            photometric="rgb",
            description=description,
            subfiletype=subfiletype,
            metadata=None,
            rowsperstrip=arr.shape[0],
        )

    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        write_tiled(tw, levels[0], desc0, 0)
        write_stripped(tw, thumb, head + f" -> {thumb.shape[1]}x{thumb.shape[0]} - |", 0)
        for lvl in levels[1:]:
            lh, lw = lvl.shape[:2]
            write_tiled(tw, lvl, head + f" -> {lw}x{lh} - |", 0)
        if with_label:
            write_stripped(tw, label_image(), "Aperio Image Library v12.0.15\r\nlabel 300x300", 1)
        if with_macro:
            write_stripped(tw, macro_image(), "Aperio Image Library v12.0.15\r\nmacro 600x220", 9)
    return path


# ---------------------------------------------------------------- plain images


def make_png(path: str | Path, w: int, h: int, pattern: str | Pattern = "gradient") -> Path:
    """A plain PNG (one level, no mpp)."""
    path = Path(path)
    Image.fromarray(render_pattern(w, h, pattern), "RGB").save(path, "PNG")
    return path


def make_jpeg(
    path: str | Path, w: int, h: int, pattern: str | Pattern = "gradient", quality: int = 90
) -> Path:
    """A plain JPEG (one level, no mpp)."""
    path = Path(path)
    Image.fromarray(render_pattern(w, h, pattern), "RGB").save(path, "JPEG", quality=quality)
    return path


def is_label_colour(img: np.ndarray, tol: int = 50) -> np.ndarray:
    """Mask of pixels close to the label's magenta."""
    a = img.astype(np.int16)
    return (a[..., 0] > 255 - tol) & (a[..., 1] < tol) & (a[..., 2] > 255 - tol)


def is_macro_colour(img: np.ndarray, tol: int = 50) -> np.ndarray:
    """Mask of pixels close to the macro's cyan."""
    a = img.astype(np.int16)
    return (a[..., 0] < tol) & (a[..., 1] > 255 - tol) & (a[..., 2] > 255 - tol)
