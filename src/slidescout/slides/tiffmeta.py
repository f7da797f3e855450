"""A TIFF's structure read with tifffile: pyramid levels (main chain or SubIFDs), tiles,
compression, resolution, ImageDescription, OME-XML and QPTIFF channel names.

Used when OpenSlide cannot open a TIFF-family file, or reads fewer levels than it has (SubIFD
pyramids, OME-TIFF, QPTIFF). Metadata comes back as ``properties`` with OpenSlide's key names
(``openslide.mpp-x``, ``openslide.objective-power``), so ``metadata.resolve_mpp`` treats every
backend alike. Never raises anything but ``SlideError``.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slidescout.errors import SlideError
from slidescout.slides.integrity import SlideDataError, segment_damage

log = logging.getLogger(__name__)
# tifffile logs what it skips in a damaged file (a bad tag, an OME-XML that does not parse) as
# warnings; with no handler configured Python prints them to stderr, around the one-line error.
# A NullHandler keeps them off the terminal; an application that configures logging still gets
# them through the root logger.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

# TIFF compression codes and names, for messages and backend choice
COMPRESSION_NAMES = {
    1: "none",
    5: "LZW",
    6: "old JPEG",
    7: "JPEG",
    8: "deflate",
    32946: "deflate",
    32773: "PackBits",
    33003: "Aperio JPEG 2000 YCbCr",
    33004: "JPEG 2000",
    33005: "Aperio JPEG 2000 RGB",
    34712: "JPEG 2000",
    34887: "LERC",
    34892: "lossy JPEG",
    34925: "LZMA",
    34933: "PNG",
    34934: "JPEG XR",
    50000: "Zstandard",
    50001: "WebP",
    50002: "JPEG XL",
    52546: "JPEG XL",
}
# what pyvips-binary's tiffload decodes
PYVIPS_COMPRESSIONS = frozenset({1, 5, 7, 8, 32946, 32773, 50001})
# what OpenSlide 4 decodes in a generic TIFF
OPENSLIDE_COMPRESSIONS = frozenset({1, 5, 7, 8, 32946, 32773, 33003, 33005})
# µm per unit
_UNITS = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "um": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "nm": 1e-3,
    "Å": 1e-4,
    "pm": 1e-6,
}
# ImageDescription keys that state an objective power: Aperio "AppMag = 40", libvips/OpenSlide
# property dumps "openslide.objective-power", "objective_power=40", "Magnification: 20x", ...
_POWER_RE = re.compile(
    r"(?:AppMag|objective[ _.-]?power|NominalMagnification|Objective[ _]?Magnification|Magnification|Objective)"
    r"\W{0,40}?(\d+(?:\.\d+)?)\s*[xX]?",
    re.IGNORECASE,
)
# libvips' XML dump of image properties (tiffsave properties=True): <name>KEY</name><value>40</value>
_POWER_XML_RE = re.compile(
    r"(?:objective-power|AppMag|NominalMagnification)</name>\s*<value[^>]*>\s*(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
# nuclear stains shown in blue in a fluorescence composite
_NUCLEAR = re.compile(r"dapi|hoechst|nuclear|nucleus|draq5|sytox|\bdna\b", re.IGNORECASE)


def compression_known(code: int) -> bool:
    """Whether ``code`` is a TIFF compression any reader here knows (ours, or tifffile's list)."""
    if code in COMPRESSION_NAMES:
        return True
    import tifffile

    return code in {int(c) for c in tifffile.COMPRESSION}


def compression_damage(code: int) -> str:
    """'' for a known TIFF compression, else why the page cannot be decoded."""
    if compression_known(code):
        return ""
    return f"uses TIFF compression {code}, which is not a TIFF compression any reader knows"


def compression_name(code: int) -> str:
    return f"{code} ({COMPRESSION_NAMES[code]})" if code in COMPRESSION_NAMES else str(code)


@dataclass(frozen=True)
class TiffLevel:
    """One pyramid level: size, tiling, and where each channel plane lives."""

    width: int
    height: int
    planes: tuple[
        tuple[int, int], ...
    ]  # (main-chain page, SubIFD index or -1), one per channel page
    tile_w: int
    tile_h: int
    compression: int


@dataclass
class TiffStructure:
    kind: str  # "ome", "qpi", "generic", ...
    levels: list[TiffLevel]
    samples: int  # samples per pixel of one plane (3 = RGB)
    dtype: str
    channels: list[str] = field(default_factory=list)  # names when the planes are channels
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return {"ome": "ome-tiff", "qpi": "qptiff"}.get(self.kind, "generic-tiff")

    @property
    def is_multichannel(self) -> bool:
        return len(self.levels[0].planes) > 1 or self.samples not in (1, 3, 4)

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith("float")

    @property
    def compressions(self) -> set[int]:
        return {lv.compression for lv in self.levels}

    def uses_subifds(self) -> bool:
        return any(sub >= 0 for lv in self.levels for _, sub in lv.planes)


def read_structure(path: Path) -> TiffStructure:
    """The pyramid of the first image series of a TIFF (``SlideError`` if tifffile cannot read it)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _structure(tif)
    except SlideDataError:
        raise
    except SlideError as exc:
        raise SlideError(f"slide {path.name}: {exc}") from None
    except Exception as exc:  # tifffile raises many types on odd files
        raise SlideError(
            f"slide {path.name}: tifffile cannot read its TIFF structure "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _structure(tif) -> TiffStructure:
    series = tif.series[0]
    # offsets of SubIFD pages -> (main page, subifd index)
    where: dict[int, tuple[int, int]] = {}
    for i, page in enumerate(tif.pages):
        where[page.offset] = (i, -1)
        for j, off in enumerate(page.subifds or ()):
            where[off] = (i, j)
    levels: list[TiffLevel] = []
    for lv in series.levels:
        pages = [p for p in lv.pages if p is not None]
        key = pages[0].keyframe if hasattr(pages[0], "keyframe") else pages[0]
        planes = tuple(where[p.offset] for p in pages if p.offset in where)
        if len(planes) != len(pages):
            break
        for page in pages:
            _check_data(tif, page, len(levels))
        levels.append(
            TiffLevel(
                int(key.imagewidth),
                int(key.imagelength),
                planes,
                int(key.tilewidth),
                int(key.tilelength),
                int(key.compression),
            )
        )
    if not levels:
        raise SlideError("the first image has no readable pages")
    # levels must shrink
    levels = [lv for i, lv in enumerate(levels) if i == 0 or lv.width < levels[0].width]
    page0 = tif.pages[0]
    key0 = series.keyframe
    samples = int(key0.samplesperpixel)
    props: dict[str, str] = {"tiff.kind": series.kind or "generic"}
    desc = str(page0.description or "")
    if desc:
        props["tiff.ImageDescription"] = desc[:4000]
    if page0.software:
        props["tiff.Software"] = str(page0.software)[:200]
    kind = "ome" if tif.is_ome else "qpi" if tif.is_qpi else (series.kind or "generic")
    structure = TiffStructure(kind, levels, samples, str(key0.dtype))
    _resolution_tags(key0, props)
    if kind == "ome":
        _ome(tif.ome_metadata or "", structure, props)
    elif kind == "qpi":
        structure.channels = [
            _qpi_name(tif.pages[p].description, i) for i, (p, _) in enumerate(levels[0].planes)
        ]
    if "openslide.objective-power" not in props and (power := objective_power(desc)) is not None:
        props["openslide.objective-power"] = f"{power:g}"
    if len(levels[0].planes) > 1 and not structure.channels:
        structure.channels = [f"channel {i}" for i in range(len(levels[0].planes))]
    structure.properties = props
    return structure


def _check_data(tif, page, level: int) -> None:
    """``SlideDataError`` when the page's tiles or strips cannot hold the pixels it declares."""
    key = page.keyframe if hasattr(page, "keyframe") else page
    samples = int(key.samplesperpixel)
    separate = int(key.planarconfig) == 2
    damage = compression_damage(int(key.compression)) or segment_damage(
        width=int(key.imagewidth),
        height=int(key.imagelength),
        bits_per_pixel=int(key.bitspersample) * (1 if separate else samples),
        planes=samples if separate else 1,
        tile_w=int(key.tilewidth),
        tile_h=int(key.tilelength),
        rows_per_strip=int(key.rowsperstrip),
        compression=int(key.compression),
        offsets=np.asarray(page.dataoffsets),
        counts=np.asarray(page.databytecounts),
        file_size=int(tif.filehandle.size),
    )
    if damage:
        raise SlideDataError(f"slide {Path(tif.filehandle.name).name}: level {level} {damage}")


def _resolution_tags(page, props: dict[str, str]) -> None:
    """``openslide.mpp-x/y`` from XResolution/YResolution in px/cm or px/inch."""
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    code = int(unit.value) if unit is not None else 2  # TIFF default: inch
    props["tiff.ResolutionUnit"] = {1: "none", 2: "inch", 3: "centimeter"}.get(code, str(code))
    for axis, name in (("x", "XResolution"), ("y", "YResolution")):
        tag = tags.get(name)
        if tag is None or code not in (2, 3):
            continue
        try:
            num, den = tag.value
            res = num / den
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if res > 0:
            props[f"openslide.mpp-{axis}"] = f"{(25400.0 if code == 2 else 10000.0) / res:.6g}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome(xml: str, structure: TiffStructure, props: dict[str, str]) -> None:
    """mpp from PhysicalSizeX/Y (with units), NominalMagnification, channel names."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        log.info("OME-XML does not parse (%s); ignoring it", exc)
        return
    pixels = next((e for e in root.iter() if _local(e.tag) == "Pixels"), None)
    if pixels is not None:
        for axis in ("X", "Y"):
            size = pixels.get(f"PhysicalSize{axis}")
            unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
            try:
                value = float(size) * _UNITS[unit] if size is not None else None
            except (ValueError, KeyError):
                value = None
            if value:
                props[f"openslide.mpp-{axis.lower()}"] = f"{value:.6g}"
                props["tiff.ResolutionUnit"] = "ome"
        names = [
            c.get("Name") or c.get("ID") or f"channel {i}"
            for i, c in enumerate(e for e in pixels if _local(e.tag) == "Channel")
        ]
        if len(names) > 1 or (names and structure.samples == 1):
            structure.channels = [str(n) for n in names]
    obj = next(
        (e for e in root.iter() if _local(e.tag) == "Objective" and e.get("NominalMagnification")),
        None,
    )
    if obj is not None:
        props["openslide.objective-power"] = str(obj.get("NominalMagnification"))


def _qpi_name(description: str | None, index: int) -> str:
    try:
        root = ET.fromstring(
            str(description or "").encode("utf-8", "replace").replace(b"utf-16", b"utf-8")
        )
        name = root.findtext("Name")
    except ET.ParseError:
        name = None
    return (name or "").strip() or f"channel {index}"


def objective_power(description: str) -> float | None:
    """An objective power stated in an ImageDescription, or None."""
    text = description or ""
    for m in (*_POWER_XML_RE.finditer(text), *_POWER_RE.finditer(text)):
        value = float(m.group(1))
        if 0.5 <= value <= 200:
            return value
    return None


def composite_mapping(names: list[str]) -> list[tuple[str, str]]:
    """(channel name, display colour) for up to three channels: a nuclear stain in blue, the
    others in green, red, blue order; a single channel in grey."""
    shown = names[:3]
    if len(shown) == 1:
        return [(shown[0], "grey")]
    colours: dict[int, str] = {}
    nuclear = next((i for i, n in enumerate(shown) if _NUCLEAR.search(n)), None)
    if nuclear is not None:
        colours[nuclear] = "blue"
    free = [c for c in ("green", "red", "blue") if c not in colours.values()]
    for i in range(len(shown)):
        if i not in colours:
            colours[i] = free.pop(0)
    return [(shown[i], colours[i]) for i in range(len(shown))]
