"""OME-Zarr (OME-NGFF 0.4 on Zarr v2, 0.5 on Zarr v3): a local folder or any URL fsspec reads.

Arrays come from ``zarr`` (the 'zarr' extra); the NGFF metadata is small JSON, validated here with
pydantic against the spec's rules that matter for reading (``ome-zarr-models``, the spec's own
models, fails to build under pydantic 2.13, and ``ome-zarr`` pulls s3fs/aiobotocore, which would
move boto3's botocore: see docs/formats.md):

- ``multiscales[0]``: ``axes`` (names, types, units) and ``datasets`` (array path + scale), finest
  first; the level-0 mpp is the x/y scale (times a global scale) converted to µm;
- ``omero.channels``: channel labels and colours (labels name the fluorescence composite);
- a ``t`` axis is read at its first point, a ``z`` axis at its middle plane (both said in
  ``slidescout.plane``); a ``c`` axis of 3 or 4 uint8 channels is RGB(A), anything else a
  composite.

A chunk that is missing reads as the array's fill value (Zarr's rule); a chunk that does not
decode is a ``SlideError``.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slidescout.slides.backend_array import ArrayBackend, missing_extra

UNIT_UM = {
    "angstrom": 1e-4,
    "picometer": 1e-6,
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "micron": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}
WHAT = "an OME-Zarr image"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class Transform(_Loose):
    type: str
    scale: list[float] | None = None
    translation: list[float] | None = None


class Axis(_Loose):
    name: str
    type: str | None = None
    unit: str | None = None


class Dataset(_Loose):
    path: str
    coordinateTransformations: list[Transform] = Field(default_factory=list)


class Multiscale(_Loose):
    axes: list[Axis] = Field(min_length=2, max_length=5)
    datasets: list[Dataset] = Field(min_length=1)
    coordinateTransformations: list[Transform] = Field(default_factory=list)
    version: str | None = None


class OmeroChannel(_Loose):
    label: str | None = None
    color: str | None = None


class Omero(_Loose):
    channels: list[OmeroChannel] = Field(default_factory=list)


class NgffImage(_Loose):
    multiscales: list[Multiscale] = Field(min_length=1)
    omero: Omero | None = None
    version: str | None = None


def is_url(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and "://" in location


def claims(path: Path) -> bool:
    """A folder that is a Zarr group (Zarr v3 ``zarr.json`` or v2 ``.zattrs``/``.zgroup``)."""
    return path.is_dir() and any((path / n).is_file() for n in ("zarr.json", ".zattrs", ".zgroup"))


def _scale(transforms: list[Transform], n: int) -> list[float]:
    out = [1.0] * n
    for t in transforms:
        if t.type == "scale" and t.scale is not None and len(t.scale) == n:
            out = [a * b for a, b in zip(out, t.scale, strict=True)]
    return out


class ZarrBackend(ArrayBackend):
    """An OME-Zarr multiscale image read with zarr (``location``: folder or fsspec URL)."""

    name = "zarr"

    def __init__(self, location: str | os.PathLike) -> None:
        url = str(location) if is_url(location) else None
        path = Path(url.rstrip("/").rsplit("/", 1)[-1] or "image.zarr") if url else Path(location)
        super().__init__(path, "ome-zarr", "")
        self.location = url or str(path)
        try:
            import zarr
        except Exception as exc:
            raise missing_extra(path.name, WHAT, "zarr", exc) from None
        group = self._guard(
            "cannot open it as a Zarr group", lambda: zarr.open_group(self.location, mode="r")
        )
        attrs = dict(group.attrs)
        if "ome" in attrs and isinstance(attrs["ome"], dict):  # NGFF 0.5 (Zarr v3)
            attrs = dict(attrs["ome"])
        if "multiscales" not in attrs:
            hint = (
                " (a bioformats2raw/plate container: give the path of one image inside it, "
                "e.g. .../0)"
                if "bioformats2raw.layout" in attrs or "plate" in attrs
                else ""
            )
            raise self.error(f"is a Zarr group without OME-NGFF multiscales metadata{hint}")
        try:
            meta = NgffImage.model_validate(attrs)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise self.error(f"has invalid OME-NGFF metadata ({where}: {first['msg']})") from None
        self._open_levels(group, meta)
        ms = meta.multiscales[0]
        version = (
            ms.version or meta.version or ("0.5" if group.metadata.zarr_format == 3 else "0.4")
        )
        self.reason = (
            f"OME-NGFF {version} multiscales (Zarr v{group.metadata.zarr_format}), "
            f"{len(self._arrays)} levels, arrays from zarr"
        )

    def identity(self) -> tuple[str, int, int]:
        if is_url(self.location):
            return self.location, 0, 0
        meta = next(
            (self.path / n for n in ("zarr.json", ".zattrs") if (self.path / n).exists()),
            self.path,
        )
        st = meta.stat()
        return str(self.path.resolve()), st.st_mtime_ns, st.st_size

    def _open_levels(self, group: Any, meta: NgffImage) -> None:
        ms = meta.multiscales[0]
        names = [a.name.lower() for a in ms.axes]
        if "x" not in names or "y" not in names:
            raise self.error(f"has no x and y axes (axes {names})")
        self._axes = names
        self._arrays = []
        for ds in ms.datasets:
            arr = self._guard(
                f"cannot open level array {ds.path!r}", partial(group.__getitem__, ds.path)
            )
            if not hasattr(arr, "shape") or len(arr.shape) != len(names):
                raise self.error(
                    f"level array {ds.path!r} has {len(getattr(arr, 'shape', ()))} dimensions "
                    f"for {len(names)} axes"
                )
            self._arrays.append(arr)
        shape0 = self._arrays[0].shape
        ix, iy = names.index("x"), names.index("y")
        dims = [(int(a.shape[ix]), int(a.shape[iy])) for a in self._arrays]
        props: dict[str, str] = {"slidescout.axes": "".join(names)}
        plane = []
        self._fixed: dict[int, int] = {}
        for axis in ("t", "z"):
            if axis in names:
                i = names.index(axis)
                n = int(shape0[i])
                self._fixed[i] = 0 if axis == "t" else n // 2
                if n > 1:
                    plane.append(f"{axis} {self._fixed[i] + 1} of {n}")
        if plane:
            props["slidescout.plane"] = ", ".join(plane)
        self._c = names.index("c") if "c" in names else None
        samples = int(shape0[self._c]) if self._c is not None else 1
        labels = [
            ch.label or f"channel {i}"
            for i, ch in enumerate((meta.omero.channels if meta.omero else [])[:samples])
        ]
        # mpp: the x/y scale of level 0 (and any global scale), in the axis unit
        scale = _scale(ms.datasets[0].coordinateTransformations, len(names))
        glob = _scale(ms.coordinateTransformations, len(names))
        for key, i in (("openslide.mpp-x", ix), ("openslide.mpp-y", iy)):
            unit = (ms.axes[i].unit or "").lower()
            if unit in UNIT_UM:
                props[key] = repr(scale[i] * glob[i] * UNIT_UM[unit])
        self.properties = props
        dtype = np.dtype(self._arrays[0].dtype)
        rgb = samples in (3, 4) and dtype == np.uint8
        self._finish(dims, [] if rgb else labels, samples, dtype)

    def _raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        arr = self._arrays[level]
        index: list[Any] = []
        for i, name in enumerate(self._axes):
            if name == "x":
                index.append(slice(x, x + w))
            elif name == "y":
                index.append(slice(y, y + h))
            elif i == self._c:
                n = int(arr.shape[i])
                index.append(slice(0, min(n, 3) if self.composite else n))
            else:
                index.append(min(self._fixed.get(i, 0), int(arr.shape[i]) - 1))
        data = self._guard(
            f"cannot read level {level} ({x},{y},{w},{h})",
            lambda: np.asarray(arr[tuple(index)]),
        )
        kept = [n for i, n in enumerate(self._axes) if not isinstance(index[i], int)]
        order = [kept.index("y"), kept.index("x")] + ([kept.index("c")] if "c" in kept else [])
        data = np.transpose(data, order)
        return data if data.ndim == 3 else data[..., None]
