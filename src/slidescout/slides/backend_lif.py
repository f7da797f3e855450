"""Leica LIF through ``readlif`` (the 'lif' extra).

A LIF file is a container of images (the XML header lists them; the pixels are memory blocks).
The slide is image 0 (the others are listed in ``slidescout.images``), one level (readlif reads
full planes): ``get_frame(z, t, c, m=0)`` per channel, a Z stack at its middle plane, a time
series at its first point. mpp is the inverse of readlif's ``scale`` (pixels per µm); objective
power from the hardware settings' ``Magnification``. Tiled mosaics (``m`` > 1) show tile 0, and
say so in ``slidescout.mosaic``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.slides.backend_array import ArrayBackend, missing_extra

WHAT = "a Leica LIF file"


def claims(path: Path, head: bytes) -> bool:
    return path.suffix.lower() == ".lif" or (head[:4] == b"\x70\x00\x00\x00" and head[8:9] == b"*")


class LifBackend(ArrayBackend):
    """Image 0 of a LIF file read with readlif (whole planes, cached)."""

    name = "readlif"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "lif", "")
        try:
            from readlif.reader import LifFile
        except Exception as exc:
            raise missing_extra(path.name, WHAT, "lif", exc) from None
        self._lif: Any = self._guard("readlif cannot open it", lambda: LifFile(str(path)))
        n = self._guard("cannot list its images", lambda: self._lif.num_images)
        if not n:
            raise self.error("holds no image")
        self._img: Any = self._guard("cannot open image 0", lambda: self._lif.get_image(0))
        self._planes: dict[int, np.ndarray] = {}
        self._setup(int(n))
        self.reason = f"readlif reads image 0 of {n} (one level, whole planes)"

    def _setup(self, n_images: int) -> None:
        im = self._img
        dims = im.dims
        props: dict[str, str] = {}
        if n_images > 1:
            props["slidescout.images"] = f"{n_images} images, image 0 shown"
        self._z, self._t = int(dims.z) // 2, 0
        said = [f"z {self._z + 1} of {dims.z}"] if dims.z > 1 else []
        said += [f"t 1 of {dims.t}"] if dims.t > 1 else []
        if said:
            props["slidescout.plane"] = ", ".join(said)
        if getattr(dims, "m", 1) > 1:
            props["slidescout.mosaic"] = f"{dims.m} mosaic tiles, tile 1 shown"
        sx, sy = (im.scale + (None, None))[:2]
        if sx and sy and sx > 0 and sy > 0:
            props["openslide.mpp-x"] = repr(1.0 / float(sx))
            props["openslide.mpp-y"] = repr(1.0 / float(sy))
        mag = (im.info.get("settings") or {}).get("Magnification")
        try:
            if mag and float(mag) > 0:
                props["openslide.objective-power"] = f"{float(mag):g}"
        except ValueError:
            pass
        self.properties = props
        self._nchan = int(im.channels)
        depth = max(im.bit_depth) if im.bit_depth else 8
        dtype = np.dtype(np.uint8 if depth <= 8 else np.uint16)
        names = self._channel_names(self._nchan)
        self._finish([(int(dims.x), int(dims.y))], names, self._nchan, dtype)

    def _channel_names(self, n: int) -> list[str]:
        """LUT names from the XML (Leica names channels by their look-up table), else numbers;
        none when the channels are the red, green and blue of a brightfield image."""
        names = [f"channel {i}" for i in range(n)]
        xml = getattr(self._lif, "xml_root", None)
        if xml is not None:
            found = [c.attrib.get("LUTName", "") for c in xml.iter("ChannelDescription")][:n]
            names = [f or names[i] for i, f in enumerate(found)] + names[len(found) :]
        return [] if [s.lower() for s in names] == ["red", "green", "blue"] else names

    def _plane(self, c: int) -> np.ndarray:
        hit = self._planes.get(c)
        if hit is None:
            frame = self._img.get_frame(z=self._z, t=self._t, c=c)
            hit = np.asarray(frame)
            self._planes[c] = hit
        return hit

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        n = min(3, self._nchan) if self.composite else self._nchan
        planes = [
            self._guard(f"cannot read channel {c}", partial(self._plane, c)) for c in range(n)
        ]
        return np.stack([p[y : y + h, x : x + w] for p in planes], axis=-1)
