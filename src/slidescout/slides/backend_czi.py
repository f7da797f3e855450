"""Zeiss CZI through ``pylibCZIrw`` (Zeiss's own libCZI; the 'czi' extra).

libCZI composes a plane of the whole image from its subblocks at any zoom, using the pyramid
subblocks a scanner wrote. Level k here is that composition at zoom 1/2^k (the level-0 box
``2^k`` times the level box), so every level is pixel-exact against ``CziReader.read`` with the
same zoom; levels stop once the long side is under ``MIN_LEVEL_SIDE``.

- every scene at once: the image is the bounding rectangle of all scenes (white between scenes for
  brightfield, black for fluorescence); the scene count is in ``slidescout.scenes``;
- a Z stack is read at its middle plane, a time series at its first point (``slidescout.plane``);
- Bgr24/Bgra32 is RGB; Gray8/Gray16/Gray32Float channels make the fluorescence composite, named
  from the metadata's channel names;
- mpp from ``Scaling/Items/Distance`` (metres per pixel), objective power from the instrument's
  objective ``NominalMagnification``. Subblocks in JPEG XR or Zstandard decode through libCZI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slidescout.slides.backend_array import ArrayBackend, missing_extra

WHAT = "a Zeiss CZI file"
MIN_LEVEL_SIDE = 512


def claims(path: Path, head: bytes) -> bool:
    return head.startswith(b"ZISRAWFILE")


def _find(tree: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in xmltodict's dict/list tree."""
    out: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key:
                    out.append(v)
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    return out


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def czi_metadata(meta: Any) -> tuple[dict[str, float], list[str], float | None]:
    """(metres per pixel by axis, channel names, objective power) from libCZI's XML as a dict."""
    scale: dict[str, float] = {}
    for dist in _find(meta, "Distance"):
        for d in _as_list(dist):
            if isinstance(d, dict) and d.get("@Id") in ("X", "Y"):
                try:
                    scale[d["@Id"]] = float(d.get("Value", ""))
                except (TypeError, ValueError):
                    pass
    names: list[str] = []
    for chans in _find(meta, "Channels"):
        if isinstance(chans, dict) and "Channel" in chans:
            names = [
                str(c.get("@Name") or c.get("Name") or c.get("@Id") or f"channel {i}")
                for i, c in enumerate(_as_list(chans["Channel"]))
                if isinstance(c, dict)
            ]
            if names:
                break
    power = None
    for mag in _find(meta, "NominalMagnification"):
        try:
            power = float(mag)
            break
        except (TypeError, ValueError):
            continue
    return scale, names, power


class CziBackend(ArrayBackend):
    """A CZI read with pylibCZIrw."""

    name = "pylibczirw"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "czi", "")
        try:
            from pylibCZIrw import czi
        except Exception as exc:
            raise missing_extra(path.name, WHAT, "czi", exc) from None
        self._ctx: Any = None
        self._reader: Any = None
        try:
            self._ctx = czi.open_czi(str(path))
            self._reader = self._guard("libCZI cannot open it", self._ctx.__enter__)
            self._setup()
        except BaseException:
            self.close()
            raise
        self.reason = (
            f"libCZI (pylibCZIrw) composes its subblocks{self._pixel_note}, "
            f"levels by zoom 1/2^k: {len(self.level_dimensions)}"
        )

    def _setup(self) -> None:
        r = self._reader
        box = self._guard("cannot read its dimensions", lambda: dict(r.total_bounding_box))
        rect = self._guard("cannot read its dimensions", lambda: r.total_bounding_rectangle)
        types = self._guard("cannot read its pixel types", lambda: dict(r.pixel_types))
        meta = self._guard("cannot read its metadata", lambda: r.metadata)
        self._x0, self._y0 = int(rect.x), int(rect.y)
        w0, h0 = int(rect.w), int(rect.h)
        plane: dict[str, int] = {}
        props: dict[str, str] = {}
        said = []
        for axis in ("T", "Z"):
            lo, hi = box.get(axis, (0, 1))
            plane[axis] = int(lo) if axis == "T" else int(lo + (hi - lo) // 2)
            if hi - lo > 1:
                said.append(f"{axis.lower()} {plane[axis] - lo + 1} of {hi - lo}")
        self._plane = plane
        if said:
            props["slidescout.plane"] = ", ".join(said)
        scenes = self._guard("cannot read its scenes", lambda: r.scenes_bounding_rectangle)
        if len(scenes) > 1:
            props["slidescout.scenes"] = f"{len(scenes)} scenes, all shown"
        c_lo, c_hi = box.get("C", (0, 1))
        self._c0 = int(c_lo)
        scale, names, power = czi_metadata(meta)
        for key, axis in (("openslide.mpp-x", "X"), ("openslide.mpp-y", "Y")):
            if scale.get(axis):
                props[key] = repr(scale[axis] * 1e6)
        if power:
            props["openslide.objective-power"] = f"{power:g}"
        ptype = str(types.get(self._c0, next(iter(types.values()), "Gray8")))
        props["slidescout.pixel-type"] = ptype
        self.properties = props
        rgb = ptype.startswith("Bgr")
        n = int(c_hi - c_lo)
        self._background = (1.0, 1.0, 1.0) if rgb else (0.0, 0.0, 0.0)
        self._pixel_note = f" ({ptype}, {n} channel{'s' if n != 1 else ''})"
        dims = [(w0, h0)]
        while max(dims[-1]) >= 2 * MIN_LEVEL_SIDE:
            k = len(dims)
            dims.append((w0 // 2**k, h0 // 2**k))
        sample = self._read(len(dims) - 1, self._c0, 0, 0, 1, 1)
        if rgb:
            self._finish(dims, [], sample.shape[2], sample.dtype)
        else:
            self._nchan = n
            self._finish(dims, (names + [f"channel {i}" for i in range(n)])[:n], n, sample.dtype)

    def _read(self, level: int, c: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        f = 2**level
        roi = (self._x0 + x * f, self._y0 + y * f, w * f, h * f)
        plane = {**self._plane, "C": c}
        zoom = 1.0 / f
        arr = self._guard(
            f"cannot read level {level} ({x},{y},{w},{h})",
            lambda: self._reader.read(
                roi=roi, plane=plane, zoom=zoom, background_pixel=self._background
            ),
        )
        return np.asarray(arr)

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if not self.composite:
            arr = self._read(level, self._c0, x, y, w, h)
            return arr[..., [2, 1, 0, *range(3, arr.shape[2])]] if arr.shape[2] >= 3 else arr
        n = min(3, self._nchan)
        planes = [self._read(level, self._c0 + i, x, y, w, h)[..., 0] for i in range(n)]
        return np.stack(planes, axis=-1)

    def close(self) -> None:
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None and getattr(self, "_reader", None) is not None:
            try:
                ctx.__exit__(None, None, None)
            except Exception:  # pragma: no cover - closing twice is harmless
                pass
