"""DICOM whole-slide images that OpenSlide cannot read, through ``wsidicom`` (the 'dicom' extra).

OpenSlide 4 reads DICOM WSI, but rejects series whose edge frames are cropped to the image
(some scanners and converters write the last column and row of tiles smaller than the tile size:
OpenSlide fails with "Dimensional mismatch reading JPEG, expected 256x256, got 256x128"), and
series it cannot open at all. The factory asks OpenSlide first (it opens the series and decodes
the bottom-right tile of every level); only when that fails is the series opened here.

The series is every file in the slide file's folder with its SeriesInstanceUID (wsidicom groups
them into levels, labels and overviews). mpp comes from each level's PixelSpacing; objective power
from the OpticalPathSequence's ObjectiveLensPower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from slidescout.slides.backend_array import ArrayBackend, missing_extra

WHAT = "a DICOM whole-slide image"
MAX_SERIES_FILES = 2000


def series_files(path: Path) -> list[Path]:
    """``path`` and the other DICOM files of its series in the same folder (pydicom headers)."""
    from pydicom import dcmread

    def uid(p: Path) -> str | None:
        try:
            ds = dcmread(p, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            return str(ds.get("SeriesInstanceUID", "")) or None
        except Exception:
            return None

    own = uid(path)
    if own is None:
        return [path]
    files = [path]
    for p in sorted(path.parent.iterdir())[:MAX_SERIES_FILES]:
        if p != path and p.is_file() and uid(p) == own:
            files.append(p)
    return files


def _objective_power(path: Path) -> float | None:
    from pydicom import dcmread

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["OpticalPathSequence"])
        for op in ds.get("OpticalPathSequence", []):
            if "ObjectiveLensPower" in op and op.ObjectiveLensPower:
                return float(op.ObjectiveLensPower)
    except Exception:
        return None
    return None


class WsiDicomBackend(ArrayBackend):
    """A DICOM WSI series read with wsidicom."""

    name = "wsidicom"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "dicom", "")
        try:
            from wsidicom import WsiDicom
        except Exception as exc:
            raise missing_extra(path.name, WHAT, "dicom", exc) from None
        files = self._guard("cannot list its DICOM series", lambda: series_files(path))
        self._wsi: Any = self._guard(
            "wsidicom cannot open it as a DICOM WSI series", lambda: WsiDicom.open(files)
        )
        try:
            self._setup(path)
        except BaseException:
            self.close()
            raise
        self.reason = f"wsidicom reads the series ({len(files)} files, {len(self._levels)} levels)"

    def _setup(self, path: Path) -> None:
        levels = self._guard("has no pyramid levels", lambda: list(self._wsi.levels))
        if not levels:
            raise self.error("has no pyramid levels")
        self._levels = levels
        dims = [(int(lv.size.width), int(lv.size.height)) for lv in levels]
        props: dict[str, str] = {}
        try:
            mpp = levels[0].mpp
            props["openslide.mpp-x"] = repr(float(mpp.width))
            props["openslide.mpp-y"] = repr(float(mpp.height))
        except Exception:  # no PixelSpacing: the mpp stays unknown
            pass
        power = _objective_power(path)
        if power is not None:
            props["openslide.objective-power"] = f"{power:g}"
        names = []
        if getattr(self._wsi, "labels", None):
            names.append("label")
        if getattr(self._wsi, "overviews", None):
            names.append("macro")
        self.associated_names = tuple(names)
        self.properties = props
        sample = self._guard(
            "cannot decode its first frame",
            lambda: np.asarray(self._wsi.read_region((0, 0), levels[-1].level, (1, 1))),
        )
        samples = sample.shape[2] if sample.ndim == 3 else 1
        self._finish(dims, [], samples, sample.dtype)

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        lv = self._levels[level].level
        arr = self._guard(
            f"cannot read level {level} ({x},{y},{w},{h})",
            lambda: np.asarray(self._wsi.read_region((x, y), lv, (w, h))),
        )
        return arr if arr.ndim == 3 else arr[..., None]

    def associated_image(self, name: str) -> Image.Image:
        if name not in self.associated_names:
            return super().associated_image(name)
        read = self._wsi.read_label if name == "label" else self._wsi.read_overview
        img = self._guard(f"cannot read its {name} image", lambda: read())
        return img.convert("RGB")

    def close(self) -> None:
        wsi = getattr(self, "_wsi", None)
        if wsi is not None:
            try:
                wsi.close()
            except Exception:  # pragma: no cover - closing twice is harmless
                pass
