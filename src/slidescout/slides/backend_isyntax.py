"""Philips iSyntax through ``pyisyntax`` (libisyntax; the 'isyntax' extra).

libisyntax decodes the wavelet pyramid; level k has downsample 2^k. ``ISyntax.read_region(x, y,
w, h, level)`` takes level pixel coordinates and returns RGBA (alpha 255 where there is tissue
scan), composited here on white. mpp from the level-0 ``mpp_x``/``mpp_y``; the label and macro
images (JPEG) are listed as associated images and never reach a model. libisyntax keeps one
decoder state per file, so reads are serialised.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from slidescout.slides.backend_array import ArrayBackend, missing_extra

WHAT = "a Philips iSyntax slide"


def claims(path: Path, head: bytes) -> bool:
    return path.suffix.lower() == ".isyntax" or head.lstrip().startswith(b"<DataObject")


class ISyntaxBackend(ArrayBackend):
    """An iSyntax slide read with pyisyntax."""

    name = "pyisyntax"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "isyntax", "")
        try:
            from isyntax import ISyntax
        except Exception as exc:
            raise missing_extra(path.name, WHAT, "isyntax", exc) from None
        self._isy: Any = self._guard("libisyntax cannot open it", lambda: ISyntax.open(path))
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        self.reason = (
            f"libisyntax (pyisyntax) decodes its {len(self.level_dimensions)} wavelet levels"
        )

    def _setup(self) -> None:
        s = self._isy
        dims = self._guard("cannot read its levels", lambda: list(s.level_dimensions))
        props: dict[str, str] = {}
        mx, my = self._guard("cannot read its resolution", lambda: (s.mpp_x, s.mpp_y))
        if mx and my and mx > 0 and my > 0:
            props["openslide.mpp-x"] = repr(float(mx))
            props["openslide.mpp-y"] = repr(float(my))
        self.properties = props
        names = []
        for name, read in (("label", s.read_label_image_jpeg), ("macro", s.read_macro_image_jpeg)):
            try:
                if read() is not None:
                    names.append(name)
            except Exception:  # an absent or unreadable associated image is simply not listed
                pass
        self.associated_names = tuple(names)
        self._finish([(int(w), int(h)) for w, h in dims], [], 4, np.dtype(np.uint8))

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._guard(
            f"cannot read level {level} ({x},{y},{w},{h})",
            lambda: np.asarray(self._isy.read_region(x, y, w, h, level)),
        )

    def associated_image(self, name: str) -> Image.Image:
        if name not in self.associated_names:
            return super().associated_image(name)
        read = (
            self._isy.read_label_image_jpeg if name == "label" else self._isy.read_macro_image_jpeg
        )
        data = self._guard(f"cannot read its {name} image", lambda: bytes(read()))
        return Image.open(io.BytesIO(data)).convert("RGB")

    def close(self) -> None:
        isy = getattr(self, "_isy", None)
        if isy is not None:
            try:
                isy.close()
            except Exception:  # pragma: no cover - closing twice is harmless
                pass
