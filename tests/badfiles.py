"""Damaged and forged image files for tests, built from bytes (no probe files are shipped).

- ``raw_tiff``: a one-IFD little-endian TIFF from raw tags, for headers no writer would produce
  (a 10^6 x 10^6 px page in one 8-byte strip, a compression code nobody knows);
- ``overwrite_tag``: rewrite an array tag (tile offsets, byte counts, compression) of a TIFF
  written by tifffile or pyvips, in place;
- ``zero_segments``: zero the bytes of some tiles (a disk block lost, a download filled with 0);
- ``png_bomb`` / ``jpeg_bomb``: a few hundred bytes declaring a gigapixel image.

Imported by the slide tests; it holds no tests itself.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

TYPES = {3: "H", 4: "I", 16: "Q"}  # TIFF type -> struct code


def raw_tiff(path: Path, tags: dict[int, tuple[int, list[int]]], data: bytes = b"") -> Path:
    """Write a one-IFD TIFF. ``tags``: tag -> (TIFF type 3 or 4, values). ``data`` is placed after
    the IFD; the values of StripOffsets and TileOffsets (273, 324) are offsets into ``data``."""
    items = sorted(tags.items())
    ifd_size = 2 + 12 * len(items) + 4
    extra_at = 8 + ifd_size
    extras_len = sum(
        struct.calcsize(TYPES[t]) * len(v)
        for _, (t, v) in items
        if struct.calcsize(TYPES[t]) * len(v) > 4
    )
    data_at = extra_at + extras_len
    entries, extras = b"", b""
    for tag, (typ, values) in items:
        if tag in (273, 324):
            values = [v + data_at for v in values]
        payload = struct.pack("<" + TYPES[typ] * len(values), *values)
        if len(payload) <= 4:
            entries += struct.pack("<HHI", tag, typ, len(values)) + payload.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, typ, len(values), extra_at + len(extras))
            extras += payload
    head = b"II*\0" + struct.pack("<IH", 8, len(items))
    path.write_bytes(head + entries + struct.pack("<I", 0) + extras + data)
    return path


def rgb_strip_tags(width: int, height: int, compression: int, count: int) -> dict:
    """Tags of an 8-bit RGB page held in one strip of ``count`` bytes at offset 0 of the data."""
    return {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [8, 8, 8]),
        259: (3, [compression]),
        262: (3, [2]),
        273: (4, [0]),
        277: (3, [3]),
        278: (4, [height]),
        279: (4, [count]),
    }


def deflate_zeros(n: int) -> bytes:
    """A zlib stream of ``n`` zero bytes, compressed in chunks (never ``n`` bytes in memory)."""
    c = zlib.compressobj(9)
    chunk = bytes(16 * 1024 * 1024)
    parts = []
    while n > 0:
        k = min(n, len(chunk))
        parts.append(c.compress(chunk if k == len(chunk) else chunk[:k]))
        n -= k
    parts.append(c.flush())
    return b"".join(parts)


def overwrite_tag(path: Path, name: str, values, page: int = 0, subifd: int | None = None) -> None:
    """Overwrite the values of tag ``name`` of a page (or one of its SubIFDs), in place."""
    import tifffile

    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        target = tif.pages[page]
        if subifd is not None:
            tif.filehandle.seek(target.subifds[subifd])
            target = tifffile.TiffPage(tif, index=(page, subifd))
        tag = target.tags[name]
        code = tifffile.DATATYPE(tag.dtype).name
        fmt = {"SHORT": "H", "LONG": "I", "LONG8": "Q"}[code]
        arr = np.broadcast_to(np.asarray(values), (tag.count,))
        raw = struct.pack("<" + fmt * tag.count, *(int(v) for v in arr))
        at = tag.valueoffset
    data[at : at + len(raw)] = raw
    path.write_bytes(bytes(data))


def tag_values(path: Path, name: str, page: int = 0, subifd: int | None = None) -> np.ndarray:
    """The values of tag ``name`` of a page (or one of its SubIFDs)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        target = tif.pages[page]
        if subifd is not None:
            tif.filehandle.seek(target.subifds[subifd])
            target = tifffile.TiffPage(tif, index=(page, subifd))
        return np.atleast_1d(np.asarray(target.tags[name].value))


def segments(path: Path, page: int = 0) -> list[tuple[int, int]]:
    """(offset, byte count) of every tile or strip of a main-chain page."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        p = tif.pages[page]
        return list(zip(map(int, p.dataoffsets), map(int, p.databytecounts), strict=True))


def zero_segments(path: Path, which: slice = slice(None), page: int = 0) -> None:
    """Fill the bytes of the chosen tiles or strips with zeros (offsets and counts stay valid)."""
    data = bytearray(path.read_bytes())
    for off, cnt in segments(path, page)[which]:
        data[off : off + cnt] = bytes(cnt)
    path.write_bytes(bytes(data))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(path: Path, width: int = 20000, height: int = 19000) -> Path:
    """A valid PNG header (correct CRCs) declaring ``width x height`` RGB, with 3 rows of data."""
    rows = b"".join(b"\0" + bytes([200]) * (width * 3) for _ in range(3))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )
    return path


def jpeg_bomb(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A 64 px JPEG whose frame header is patched to declare ``width x height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path
