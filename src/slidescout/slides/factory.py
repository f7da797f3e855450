"""``open_backend``: which reader opens a file, asking each what it can do.

1. Files that are plainly not slides (CSV, matrix, text, PDF, ...) are refused by name.
2. OpenSlide's formats open with OpenSlide for metadata; TIFF layouts pyvips reads
   (``generic-tiff``, ``aperio``) take their pixels from pyvips (``VipsTiffBackend``).
3. A TIFF that OpenSlide does not know, cannot open (WebP or JPEG 2000 tiles), or reads only in
   part (SubIFD pyramids, OME-TIFF, QPTIFF, channel pages) is described by tifffile
   (``tiffmeta``) and read by pyvips or, for codecs pyvips lacks, tifffile + imagecodecs.
4. Anything else is a plain image (``VipsImageBackend``).

Before these, the readers of formats beyond OpenSlide and TIFF (``readers.READERS``, each behind an
extra) are asked whether they recognise the file: iSyntax, VSI (+ .ets) and LIF go to their reader
directly; DICOM and Zeiss CZI, which OpenSlide reads in part, go to OpenSlide first and to their
reader (wsidicom, pylibCZIrw) when OpenSlide cannot open the file or cannot decode the last tile of
a level (e.g. DICOM edge frames cropped to the image). An OME-Zarr folder, or any URL, is read by
``zarr`` (``backend_zarr``).

The chosen backend's ``reason`` says why; ``slidescout info`` shows it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slidescout.errors import SlideError
from slidescout.slides import backend_array as bad
from slidescout.slides import backend_openslide as bos
from slidescout.slides import backend_tiff as bt
from slidescout.slides import backend_vips as bv
from slidescout.slides import backend_zarr as bz
from slidescout.slides import readers, tiffmeta
from slidescout.slides.backend_image import VipsImageBackend
from slidescout.slides.backends import (
    BACKENDS,
    VIPS_TIFF_FORMATS,
    Backend,
    TiffPage,
    _reason,
    check_pages,
    is_tiff,
    tiff_pages,
)
from slidescout.slides.integrity import SlideDataError
from slidescout.slides.tiffmeta import PYVIPS_COMPRESSIONS, TiffStructure, compression_name

log = logging.getLogger(__name__)

# Single-file slide formats, by suffix, for listing a folder of slides: OpenSlide's, then those
# of the readers behind extras (DICOM and OME-Zarr are left out: one slide is many files)
SLIDE_SUFFIXES: tuple[str, ...] = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".czi",
    ".vsi",
    ".isyntax",
    ".lif",
)
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")  # plain images, opened as slides

_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"MATLAB", "a MATLAB matrix file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x89HDF", "an HDF5 file"),
    (b"SQLite format", "an SQLite database"),
)
_TEXT_KINDS = {
    ".csv": "a CSV table",
    ".tsv": "a TSV table",
    ".mat": "a matrix file",
    ".json": "a JSON file",
    ".jsonl": "a JSON lines file",
    ".txt": "a text file",
    ".md": "a text file",
    ".xml": "an XML file",
}
# loaders of libvips that read any table or raw bytes as an "image"
NON_IMAGE_LOADERS = ("csvload", "matrixload", "matload", "rawload", "fitsload")


def non_slide_kind(path: Path) -> str | None:
    """What a file is when it is plainly not a slide or an image (a PDF, a CSV, text...), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    for sig, kind in _SIGNATURES:
        if head.startswith(sig):
            return kind
    if b"\x00" in head or head[:1] == b"P" and head[1:2].isdigit() or b"<svg" in head[:1024]:
        return None  # binary, or a PNM/SVG image written as text
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the head
            return None
    return _TEXT_KINDS.get(path.suffix.lower(), "a text file")


def _refuse(path: Path, kind: str) -> SlideError:
    return SlideError(
        f"slide {path.name}: {kind}, not a slide or an image (unsupported format); expected an "
        "OpenSlide format (SVS, NDPI, MRXS, SCN, tiled TIFF, OME-TIFF, DICOM...) or PNG/JPEG/TIFF"
    )


def open_backend(path: str | os.PathLike, backend: str = "auto") -> Backend:
    """Open ``path`` with the requested backend; every failure is a ``SlideError``.

    Each reader is asked what it can do: OpenSlide for the formats it knows; tifffile for the
    structure of any TIFF that OpenSlide cannot open, or reads only in part (SubIFD / OME-TIFF /
    QPTIFF pyramids, channels), decoded by pyvips or, for codecs pyvips lacks, by tifffile."""
    if backend not in BACKENDS:
        raise SlideError(f"unknown slide backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if bz.is_url(path):
        return _zarr(str(path), backend)
    p = Path(path).expanduser()
    if not p.exists():
        raise SlideError(f"slide file not found: {p}")
    if p.is_dir() and bz.claims(p):
        return _zarr(p, backend)
    if p.is_dir():
        raise SlideError(
            f"slide path {p} is a directory; give the slide file itself "
            "(for MRXS the .mrxs file, for DICOM any .dcm file of the slide)"
        )
    _check_regular_file(p)

    reader = readers.claim(p)
    if reader is not None and reader.openslide_vendor is None:
        return _open_reader(reader, p, backend, reader.no_openslide)
    fmt = bos.detect_format(p)
    if reader is not None and fmt != reader.openslide_vendor:
        reader = None  # e.g. a DICOM file that is not a slide: OpenSlide's answer stands
    if reader is not None and backend == "auto":
        return _openslide_or_reader(p, fmt, reader)
    tiff = is_tiff(p)
    if fmt is None and not tiff and (kind := non_slide_kind(p)) is not None:
        raise _refuse(p, kind)
    pages = _checked_pages(p, fmt) if tiff else None
    structure = None
    # tifffile reads the structure only where OpenSlide may fall short: files it does not know,
    # SubIFD pyramids, OME-TIFF/QPTIFF (checked in _open_known once OpenSlide has the description)
    if (
        tiff
        and backend != "openslide"
        and (
            fmt is None
            or fmt == "generic-tiff"
            and pages is not None
            and any(pg.subifds for pg in pages)
        )
    ):
        structure = _read_structure(p)
    if fmt is None:
        return _open_unknown(p, structure, backend)
    return _open_known(p, fmt, backend, tiff, pages, structure)


def _check_regular_file(p: Path) -> None:
    """A non-empty, readable regular file, or a ``SlideError`` saying what it is instead."""
    try:
        st = p.stat()
    except OSError as exc:
        raise SlideError(f"cannot read slide file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO, a socket, a device: reading it may never end
        raise SlideError(f"slide path {p} is not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise SlideError(f"slide file {p.name} is empty (0 bytes); copy or download it again")
    if not os.access(p, os.R_OK):
        raise SlideError(f"slide file {p.name} is not readable (permission denied)")


def _checked_pages(p: Path, fmt: str | None) -> list[TiffPage] | None:
    """The TIFF's pages, checked where pyvips would read them; ``None`` where the structure of
    another vendor's TIFF cannot be parsed (OpenSlide then reports its own errors)."""
    # plain TIFFs and the TIFF layouts pyvips reads are checked here; other vendors' TIFFs
    # (NDPI's 64-bit offset extension, ...) are left to OpenSlide, which reports its errors
    strict = fmt is None or fmt in VIPS_TIFF_FORMATS
    try:
        pages = tiff_pages(p)
    except SlideError:
        if strict:
            raise
        log.debug("%s: cannot parse its TIFF structure; leaving it to OpenSlide", p.name)
        return None
    if strict:
        check_pages(p, pages)
    return pages


def _open_unknown(p: Path, structure: TiffStructure | None, backend: str) -> Backend:
    """A file OpenSlide does not recognise: a tifffile structure worth reading, else a plain
    image through pyvips (refused when pyvips reads it as a non-image)."""
    if structure is not None and (
        structure.levels[0].tile_w
        or len(structure.levels) > 1
        or structure.kind in ("ome", "qpi")
        or structure.is_multichannel
        or structure.is_float
        or not structure.compressions <= PYVIPS_COMPRESSIONS
    ):
        return _structure_backend(p, structure, backend, "OpenSlide does not recognise it")
    if backend == "openslide":
        raise SlideError(
            f"slide {p.name}: OpenSlide does not recognise this file format; "
            "use backend 'auto' for plain images"
        )
    img = VipsImageBackend.open(p)
    loader = img.properties.get("slidescout.loader", "")
    if loader.startswith(NON_IMAGE_LOADERS):
        img.close()
        raise _refuse(p, non_slide_kind(p) or f"a {loader} file")
    img.reason = f"not an OpenSlide format; a plain image ({loader})"
    return img


def _open_known(
    p: Path,
    fmt: str,
    backend: str,
    tiff: bool,
    pages: list[TiffPage] | None,
    structure: TiffStructure | None,
) -> Backend:
    """A format OpenSlide knows: OpenSlide opens it; the tifffile structure takes over where it
    reads more, else pixels come from pyvips where it can, else from OpenSlide."""
    try:
        osr = bos.open_openslide(p, fmt)
    except SlideError as exc:
        if tiff and structure is None and backend != "openslide" and fmt == "generic-tiff":
            structure = _read_structure(p)
        if structure is None:
            raise
        return _structure_backend(p, structure, backend, str(exc).split(": ", 1)[-1])
    if (
        structure is None
        and fmt == "generic-tiff"
        and (_rich_description(osr.properties) or any(pg.sample_format == 3 for pg in pages or ()))
    ):
        structure = _read_structure(p)  # for OpenSlide's reading too: mpp from the OME-XML
    if structure is not None and backend != "openslide":
        why = _structure_better(structure, len(set(osr.level_dimensions)))
        if why:
            osr.close()
            return _structure_backend(p, structure, backend, why)
    try:
        return _pixel_backend(p, fmt, backend, osr, pages, structure)
    except BaseException:
        osr.close()
        raise


def _pixel_backend(
    p: Path,
    fmt: str,
    backend: str,
    osr: Any,
    pages: list[TiffPage] | None,
    structure: TiffStructure | None,
) -> Backend:
    """pyvips tiffload for the pixels where it can read them, else OpenSlide itself."""
    reason: str | None = None
    if backend != "openslide":
        reason = bv.VipsTiffBackend.unsupported_reason(fmt, osr, pages)
        if reason is None:
            assert pages is not None
            b: Backend = bv.VipsTiffBackend(p, fmt, osr, pages)
            b.reason = f"OpenSlide reads it as {fmt}; pixels from pyvips tiffload"
            return _with_ome_resolution(b, structure)
        if backend == "pyvips":
            raise SlideError(
                f"slide {p.name}: the pyvips backend cannot read it ({reason}); "
                "use backend 'auto' or 'openslide'"
            )
        log.debug("%s: using OpenSlide for pixels (%s)", p.name, reason)
    b = bos.OpenSlideBackend(p, fmt, osr)
    b.reason = f"OpenSlide reads it as {fmt}" + (
        " (requested)" if backend == "openslide" else f"; pyvips cannot ({reason})"
    )
    return _with_ome_resolution(b, structure)


def _zarr(location: str | Path, backend: str) -> Backend:
    if backend != "auto":
        raise SlideError(
            f"slide {Path(str(location)).name}: an OME-Zarr image, which only backend 'auto' "
            "reads (through zarr)"
        )
    b = bz.ZarrBackend(location)
    b.reason = f"OpenSlide does not read Zarr; {b.reason}"
    return b


def _open_reader(reader: readers.FormatReader, p: Path, backend: str, why: str) -> Backend:
    """``reader``'s backend for ``p``; ``why``: why OpenSlide does not read it (for ``info``)."""
    if backend != "auto":
        raise SlideError(
            f"slide {p.name}: {reader.what}, which backend {backend!r} cannot read ({why}); "
            "use backend 'auto'"
        )
    try:
        b = reader.open(p)
    except bad.MissingReader as exc:
        raise bad.MissingReader(f"{exc}; {why}") from None
    b.reason = f"{why}; {b.reason}"
    return b


def _openslide_or_reader(p: Path, fmt: str | None, reader: readers.FormatReader) -> Backend:
    """OpenSlide when it opens the file and decodes the last tile of every level; else the
    format's own reader (OpenSlide's failure is the reason ``info`` shows)."""
    try:
        osr = bos.open_openslide(p, fmt or "")
    except SlideError as exc:
        return _open_reader(reader, p, "auto", str(exc).split(": ", 1)[-1])
    why = _openslide_fails(osr)
    if why:
        osr.close()
        return _open_reader(reader, p, "auto", why)
    b = bos.OpenSlideBackend(p, fmt or "", osr)
    b.reason = f"OpenSlide reads it as {fmt} (it decodes the last tile of every level)"
    return b


def _openslide_fails(osr) -> str:
    """Why OpenSlide cannot decode the bottom-right pixel of some level (the last tile, where
    cropped edge frames sit), or ''. One tile per level: cheap."""
    for level, (w, h) in enumerate(osr.level_dimensions):
        ds = osr.level_downsamples[level]
        try:
            osr.read_region((int((w - 1) * ds), int((h - 1) * ds)), level, (1, 1))
        except Exception as exc:
            return f"OpenSlide cannot decode level {level} ({_reason(exc)})"
    return ""


def _read_structure(p: Path) -> TiffStructure | None:
    try:
        return tiffmeta.read_structure(p)
    except SlideDataError:
        raise  # damage is an error whoever would read the file
    except SlideError as exc:
        log.debug("%s: %s", p.name, exc)
        return None


def _rich_description(props: Mapping[str, str]) -> bool:
    """OME-XML or PerkinElmer QPI metadata, which OpenSlide's generic-tiff does not read."""
    desc = props.get("tiff.ImageDescription", "").rstrip()
    return (
        desc.endswith("OME>")
        or "PerkinElmer-QPI" in desc[:400]
        or props.get("tiff.Software", "").startswith("PerkinElmer-QPI")
    )


def _with_ome_resolution(b: Backend, st: TiffStructure | None) -> Backend:
    """OpenSlide's reading of a file with OME-XML, plus the OME mpp and magnification (OpenSlide's
    generic-tiff reads only the resolution tags, often a writer's default)."""
    if st is None or st.properties.get("tiff.ResolutionUnit") != "ome":
        return b
    keys = ("openslide.mpp-x", "openslide.mpp-y", "tiff.ResolutionUnit")
    extra = {k: st.properties[k] for k in keys if k in st.properties}
    if (
        "openslide.objective-power" in st.properties
        and "openslide.objective-power" not in b.properties
    ):
        extra["openslide.objective-power"] = st.properties["openslide.objective-power"]
    b.properties = {**b.properties, **extra}
    b.reason += "; mpp from its OME-XML"
    return b


def _structure_better(st: TiffStructure, openslide_levels: int) -> str:
    """Why tifffile's view of a TIFF that OpenSlide opened beats OpenSlide's, or ''."""
    if len(st.levels) > openslide_levels:
        how = "SubIFD pyramid" if st.uses_subifds() else "pyramid"
        return f"OpenSlide reads {openslide_levels} of its {len(st.levels)} levels ({how})"
    if len(st.levels) < openslide_levels:  # e.g. an OME-TIFF whose pyramid is in the main chain
        return ""
    if st.kind in ("ome", "qpi"):
        return f"{st.format} metadata (resolution, channels) that OpenSlide does not read"
    if st.is_multichannel:
        return f"{len(st.levels[0].planes)} channel pages that OpenSlide does not combine"
    if st.is_float:
        return f"{st.dtype} samples, which OpenSlide cannot render"
    return ""


def _structure_backend(p: Path, st: TiffStructure, backend: str, why: str) -> Backend:
    """The pyvips or tifffile backend over a tifffile structure; ``why``: what OpenSlide lacks."""
    if backend == "openslide":
        raise SlideError(f"slide {p.name}: {why}; use backend 'auto'")
    comps = sorted(st.compressions)
    names = ", ".join(compression_name(c) for c in comps)
    if all(c in PYVIPS_COMPRESSIONS for c in comps):
        return bt.TiffPyramidBackend(
            p,
            st,
            f"{why}; structure from tifffile ({st.format}, {len(st.levels)} "
            f"levels), reading with pyvips",
        )
    if backend == "pyvips":
        raise SlideError(
            f"slide {p.name}: pyvips cannot decode TIFF compression {names}; use backend 'auto'"
        )
    try:
        import imagecodecs  # noqa: F401
    except Exception:
        raise SlideError(
            f"slide {p.name}: TIFF compression {names} needs imagecodecs to be decoded "
            "(pip install imagecodecs)"
        ) from None
    return bt.TifffileBackend(
        p,
        st,
        f"{why}; pyvips cannot decode TIFF compression {names}, "
        f"reading with tifffile + imagecodecs",
    )
