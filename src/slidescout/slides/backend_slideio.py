"""Olympus/Evident VSI (with its ``_name_/stack*/frame_t.ets`` pixel files) through ``slideio``
(the 'vsi' extra).

slideio's VSI driver reads the .vsi and the .ets files beside it. The slide is scene 0 (the
first scanned area; the others are listed in ``slidescout.scenes``), read level by level with
``Scene.read_block_from_level`` (the level's own pixels, no resampling); a Z stack at its middle
slice, a time series at its first frame. mpp from ``Scene.resolution`` (metres per pixel),
objective power from ``Scene.magnification``.

Opening an ``.ets`` file opens the .vsi it belongs to (``NAME.vsi`` beside ``_NAME_/``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.errors import SlideError
from slidescout.slides.backend_array import ArrayBackend, missing_extra

WHAT = "an Olympus/Evident VSI slide"


def claims(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in (".vsi", ".ets")


def vsi_for_ets(path: Path) -> Path:
    """The .vsi that an .ets pixel file belongs to (``NAME.vsi`` + ``_NAME_/stackN/frame_t.ets``)."""
    folder = path.parent.parent
    name = folder.name
    if name.startswith("_") and name.endswith("_") and len(name) > 2:
        vsi = folder.parent / f"{name[1:-1]}.vsi"
        if vsi.is_file():
            return vsi
    raise SlideError(
        f"slide {path.name}: an Olympus .ets pixel file, which is read through its .vsi file "
        f"(expected NAME.vsi beside the _NAME_ folder two levels up); open the .vsi file"
    )


class SlideioBackend(ArrayBackend):
    """A slide read with slideio (``driver``: its driver id, e.g. ``VSI``)."""

    name = "slideio"

    def __init__(
        self, path: Path, driver: str = "VSI", what: str = WHAT, extra: str = "vsi"
    ) -> None:
        if path.suffix.lower() == ".ets":
            path = vsi_for_ets(path)
        super().__init__(path, driver.lower(), "")
        try:
            import slideio
        except Exception as exc:
            raise missing_extra(path.name, what, extra, exc) from None
        self._slide: Any = self._guard(
            f"slideio's {driver} driver cannot open it",
            lambda: slideio.open_slide(str(path), driver),
        )
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        self.reason = f"slideio's {driver} driver reads scene 0 ({self._nlevels} stored levels)"

    def _setup(self) -> None:
        n_scenes = self._guard("cannot count its scenes", lambda: self._slide.num_scenes)
        if n_scenes < 1:
            raise self.error("has no image scene")
        sc = self._scene = self._guard("cannot open scene 0", lambda: self._slide.get_scene(0))
        props: dict[str, str] = {}
        if n_scenes > 1:
            props["slidescout.scenes"] = f"{n_scenes} scenes, scene 0 shown"
        self._nlevels = int(self._guard("cannot read its levels", lambda: sc.num_zoom_levels))
        dims = []
        for i in range(self._nlevels):
            info = self._guard(f"cannot read level {i}", partial(sc.get_zoom_level_info, i))
            dims.append((int(info.size.width), int(info.size.height)))
        nz, nt = int(sc.num_z_slices), int(sc.num_t_frames)
        self._z, self._t = nz // 2, 0
        said = [f"z {self._z + 1} of {nz}"] if nz > 1 else []
        said += [f"t 1 of {nt}"] if nt > 1 else []
        if said:
            props["slidescout.plane"] = ", ".join(said)
        rx, ry = sc.resolution
        if rx and ry and rx > 0 and ry > 0:
            props["openslide.mpp-x"] = repr(float(rx) * 1e6)
            props["openslide.mpp-y"] = repr(float(ry) * 1e6)
        if sc.magnification and sc.magnification > 0:
            props["openslide.objective-power"] = f"{float(sc.magnification):g}"
        self.properties = props
        self._nchan = int(sc.num_channels)
        dtype = np.dtype(
            self._guard("cannot read its data type", lambda: sc.get_channel_data_type(0))
        )
        names = [str(sc.get_channel_name(i)) for i in range(self._nchan)]
        rgb = self._nchan in (3, 4) and dtype == np.uint8
        self._finish(dims, [] if rgb else names, self._nchan, dtype)

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        chans = list(range(min(3, self._nchan))) if self.composite else []
        arr = self._guard(
            f"cannot read level {level} ({x},{y},{w},{h})",
            lambda: self._scene.read_block_from_level(
                level,
                (x, y, w, h),
                channel_indices=chans,
                slices=(self._z, self._z + 1),
                frames=(self._t, self._t + 1),
            ),
        )
        arr = np.asarray(arr)
        return arr if arr.ndim == 3 else arr[..., None]

    def close(self) -> None:
        for obj in (getattr(self, "_scene", None), getattr(self, "_slide", None)):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # pragma: no cover - closing twice is harmless
                    pass
