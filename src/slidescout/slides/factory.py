"""``open_backend``: which reader opens a file, asking each what it can do.

1. Files that are plainly not slides (CSV, matrix, text, PDF, ...) are refused by name.
2. OpenSlide's formats open with OpenSlide for metadata; TIFF layouts pyvips reads
   (``generic-tiff``, ``aperio``) take their pixels from pyvips (``VipsTiffBackend``).
3. A TIFF that OpenSlide does not know, cannot open (WebP or JPEG 2000 tiles), or reads only in
   part (SubIFD pyramids, OME-TIFF, QPTIFF, channel pages) is described by tifffile
   (``tiffmeta``) and read by pyvips or, for codecs pyvips lacks, tifffile + imagecodecs.
4. Anything else is a plain image (``VipsImageBackend``).

The chosen backend's ``reason`` says why; ``slidescout info`` shows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from slidescout.errors import SlideError
from slidescout.slides import backend_openslide as bos
from slidescout.slides import backend_tiff as bt
from slidescout.slides import backend_vips as bv
from slidescout.slides import tiffmeta
from slidescout.slides.backend_image import VipsImageBackend
from slidescout.slides.backends import (
    BACKENDS,
    VIPS_TIFF_FORMATS,
    Backend,
    TiffPage,
    check_not_truncated,
    is_tiff,
    tiff_pages,
)
from slidescout.slides.tiffmeta import PYVIPS_COMPRESSIONS, TiffStructure, compression_name

log = logging.getLogger(__name__)

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
    p = Path(path).expanduser()
    if not p.exists():
        raise SlideError(f"slide file not found: {p}")
    if p.is_dir():
        raise SlideError(
            f"slide path {p} is a directory; give the slide file itself "
            "(for MRXS the .mrxs file, for DICOM any .dcm file of the slide)"
        )
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise SlideError(f"cannot read slide file {p}: {exc.strerror or exc}") from None
    if size == 0:
        raise SlideError(f"slide file {p.name} is empty (0 bytes); copy or download it again")
    if not os.access(p, os.R_OK):
        raise SlideError(f"slide file {p.name} is not readable (permission denied)")

    fmt = bos.detect_format(p)
    tiff = is_tiff(p)
    if fmt is None and not tiff and (kind := non_slide_kind(p)) is not None:
        raise _refuse(p, kind)
    pages: list[TiffPage] | None = None
    if tiff:
        # plain TIFFs and the TIFF layouts pyvips reads are checked here; other vendors' TIFFs
        # (NDPI's 64-bit offset extension, ...) are left to OpenSlide, which reports its errors
        strict = fmt is None or fmt in VIPS_TIFF_FORMATS
        try:
            pages = tiff_pages(p)
        except SlideError:
            if strict:
                raise
            log.debug("%s: cannot parse its TIFF structure; leaving it to OpenSlide", p.name)
        if pages is not None and strict:
            check_not_truncated(p, pages)
    structure = None
    # tifffile reads the structure only where OpenSlide may fall short: files it does not know,
    # SubIFD pyramids, OME-TIFF/QPTIFF (checked below once OpenSlide has the description)
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
        if structure is not None and (
            structure.levels[0].tile_w
            or len(structure.levels) > 1
            or structure.kind in ("ome", "qpi")
            or structure.is_multichannel
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

    try:
        osr = bos.open_openslide(p, fmt)
    except SlideError as exc:
        if tiff and structure is None and backend != "openslide" and fmt == "generic-tiff":
            structure = _read_structure(p)
        if structure is None:
            raise
        return _structure_backend(p, structure, backend, str(exc).split(": ", 1)[-1])
    if structure is None and fmt == "generic-tiff" and _rich_description(osr.properties):
        structure = _read_structure(p)  # for OpenSlide's reading too: mpp from the OME-XML
    if structure is not None and backend != "openslide":
        why = _structure_better(structure, len(set(osr.level_dimensions)))
        if why:
            osr.close()
            return _structure_backend(p, structure, backend, why)
    reason: str | None = None
    try:
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
    except BaseException:
        osr.close()
        raise


def _read_structure(p: Path) -> TiffStructure | None:
    try:
        return tiffmeta.read_structure(p)
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
