"""Can a file's bytes hold the pixels it declares? Checks made before anything is decoded.

A TIFF page or a PNG states its size in a few header bytes; a decoder believes it and allocates
for it. A 136-byte TIFF can declare 10^6 x 10^6 px in one raw strip, and a few kB of PNG can
declare a gigapixel. Each codec has a hard limit on how many bytes one stored byte can expand to
(deflate 1032:1, PackBits 64:1, uncompressed 1:1), so a page whose tiles or strips would have to
expand further is damaged or forged: it is refused before any decode, in one line. For codecs
without such a limit (WebP, JPEG 2000, Zstandard, ...), one tile or strip may decode to at most
``MAX_SEGMENT_BYTES``, so no single decode allocates more than that whatever the file claims.

The functions return the reason as text ('' when the data can be what it claims); callers say
which file and raise ``SlideError``.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from slidescout.errors import SlideError

# the most bytes one compressed tile or strip may decode to (real slides use tiles of 0.2-4 MB
# and strips of a few rows; an uncompressed strip is bounded by its own bytes instead)
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
# the most decoded bytes per stored byte each TIFF compression can produce: the format's limit
# (deflate: 258 bytes from ~2 bits, 1032:1; PackBits: 128 from 2; LZW: 12-bit codes whose strings
# grow one byte per code, ~1400:1), for JPEG a bound well above what Huffman coding reaches
# (a constant image with 4:2:0 and optimised tables is ~510:1). Other codecs have no bound here.
MAX_RATIO = {1: 1, 32773: 64, 8: 1032, 32946: 1032, 5: 1500, 7: 4096, 6: 4096}
RATIO_SLACK_BYTES = 64  # headers and end markers of a tiny compressed segment
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


class SlideDataError(SlideError):
    """A file whose bytes cannot be the image it declares (damaged, truncated or forged)."""


def human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover - loop always returns


def segment_sizes(
    width: int, height: int, bits_per_pixel: int, tile_w: int, tile_h: int, rows_per_strip: int
) -> np.ndarray:
    """Decoded bytes of each tile or strip of one plane, in file order."""
    if tile_w and tile_h:
        n = math.ceil(width / tile_w) * math.ceil(height / tile_h)
        return np.full(n, math.ceil(tile_w * bits_per_pixel / 8) * tile_h, np.int64)
    rows = min(max(1, rows_per_strip), height) if rows_per_strip else height
    row_bytes = math.ceil(width * bits_per_pixel / 8)
    n = math.ceil(height / rows)
    sizes = np.full(n, rows * row_bytes, np.int64)
    sizes[-1] = (height - (n - 1) * rows) * row_bytes
    return sizes


def segment_damage(
    *,
    width: int,
    height: int,
    bits_per_pixel: int,
    planes: int,
    tile_w: int,
    tile_h: int,
    rows_per_strip: int,
    compression: int,
    offsets: np.ndarray,
    counts: np.ndarray,
    file_size: int,
) -> str:
    """Why a TIFF page's tiles or strips cannot be the image it declares, or ''.

    ``bits_per_pixel``: of one plane (all samples when they are interleaved, one when
    PlanarConfiguration is 2 and each of the ``planes`` samples has its own segments)."""
    if width <= 0 or height <= 0:
        return f"declares a size of {width} x {height} px"
    kind = "tile" if tile_w and tile_h else "strip"
    sizes = np.tile(
        segment_sizes(width, height, max(1, bits_per_pixel), tile_w, tile_h, rows_per_strip),
        max(1, planes),
    )
    offsets, counts = np.asarray(offsets, np.int64), np.asarray(counts, np.int64)
    if offsets.size < sizes.size or counts.size < sizes.size:
        return (
            f"lists {min(offsets.size, counts.size)} {kind}s but its size "
            f"({width} x {height} px) needs {sizes.size}"
        )
    offsets, counts = offsets[: sizes.size], counts[: sizes.size]
    if not counts.any():
        return f"has no image data: every {kind}'s offset and byte count is 0"
    ends = offsets + counts
    if int(ends.max()) > file_size:
        i = int(np.argmax(ends))
        return (
            f"is truncated: {kind} {i} ends at byte {int(ends[i])} but the file has {file_size}; "
            "copy or download it again"
        )
    declared = f"declares {width} x {height} px"
    ratio = MAX_RATIO.get(compression)
    if ratio is not None:
        slack = 0 if ratio == 1 else ratio * RATIO_SLACK_BYTES
        short = (counts > 0) & (sizes > counts * ratio + slack)
        if short.any():
            i = int(np.argmax(short))
            how = "uncompressed" if ratio == 1 else f"compression {compression} at most {ratio}:1"
            return (
                f"{declared} that its bytes cannot hold: {kind} {i} has {int(counts[i])} bytes "
                f"but would decode to {human_bytes(int(sizes[i]))} ({how})"
            )
    if ratio != 1 and int(sizes.max()) > MAX_SEGMENT_BYTES:
        return (
            f"{declared} with {kind}s that decode to {human_bytes(int(sizes.max()))} each; "
            f"slidescout decodes at most {human_bytes(MAX_SEGMENT_BYTES)} at once"
        )
    return ""


def png_damage(path: Path) -> str:
    """Why a PNG's compressed data cannot hold the pixels its header declares, or ''.

    The image data is one deflate stream (the IDAT chunks); deflate expands at most 1032:1."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return ""
            head = f.read(25)  # IHDR: length, type, 13 bytes of data, CRC
            if len(head) < 25 or head[4:8] != b"IHDR":
                return "has no PNG header (IHDR) where it should be"
            width, height, depth, colour = struct.unpack(">IIBB", head[8:18])
            data = 0
            while chunk := f.read(8):
                if len(chunk) < 8:
                    break
                length, kind = struct.unpack(">I4s", chunk)
                if kind == b"IDAT":
                    data += length
                elif kind == b"IEND":
                    break
                f.seek(length + 4, 1)  # data and CRC
    except OSError:
        return ""
    row = math.ceil(width * PNG_CHANNELS.get(colour, 4) * max(1, depth) / 8) + 1  # + filter byte
    decoded = row * height
    if decoded > MAX_RATIO[8] * data + MAX_RATIO[8] * RATIO_SLACK_BYTES:
        return (
            f"declares {width} x {height} px ({human_bytes(decoded)} decoded) but holds "
            f"{human_bytes(data)} of compressed image data, which deflate cannot expand to that"
        )
    return ""


def jpeg_damage(path: Path) -> str:
    """Why a JPEG file is too small for the size its frame header declares, or ''."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return ""
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return ""
                kind = marker[1]
                if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
                    continue  # no length
                length = f.read(2)
                if len(length) < 2:
                    return ""
                n = struct.unpack(">H", length)[0]
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):  # a frame header
                    head = f.read(6)
                    if len(head) < 6:
                        return ""
                    _, height, width, comps = struct.unpack(">BHHB", head)
                    break
                f.seek(n - 2, 1)
    except OSError:
        return ""
    decoded = width * height * max(1, comps)
    ratio = MAX_RATIO[7]
    if decoded > ratio * size + ratio * RATIO_SLACK_BYTES:
        return (
            f"declares {width} x {height} px ({human_bytes(decoded)} decoded) in a file of "
            f"{human_bytes(size)}, which JPEG cannot expand to that"
        )
    return ""


def image_file_damage(path: Path) -> str:
    """Why a plain PNG or JPEG file cannot hold the pixels it declares, or ''."""
    return png_damage(path) or jpeg_damage(path)
