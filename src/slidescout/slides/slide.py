"""``Slide``: one whole-slide image (or plain image) with views in level-0 coordinates.

    slide = Slide.open("case.svs")          # or open_slide(path): cached handle
    view = slide.read((12000, 8000, 6000, 4000), max_side=1000, guides=True)
    view.image, view.box, view.level, view.downsample, view.mpp

Views never contain the label/macro/thumbnail images a slide file may carry; only
``associated_image(name)`` returns those, and only ``model_properties()`` may go to a model.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from slidescout.core.types import Box, GuideStyle, LevelRule, MppSource, View
from slidescout.errors import SlideError
from slidescout.slides.backends import Backend, PatchReader, padded_read
from slidescout.slides.cache import HANDLE_CACHE_SIZE, VIEW_CACHE_BYTES, LRUCache
from slidescout.slides.factory import open_backend
from slidescout.slides.giant_read import giant_read
from slidescout.slides.guides import draw_guides
from slidescout.slides.metadata import LevelInfo, SlideInfo, parse_bounds, resolve_mpp
from slidescout.slides.render import (
    MAX_SIDE_LIMIT,
    check_max_side,
    clamp_box,
    fit_output,
    parse_box,
    plan_region,
    size_text,
)

READ_LEVEL_MAX_PX = 64 * 1024 * 1024  # one read_level call returns at most this many pixels

_inflight: dict[tuple, threading.Lock] = {}
_inflight_guard = threading.Lock()
_views: LRUCache[tuple, View] = LRUCache(
    max_bytes=VIEW_CACHE_BYTES, sizeof=lambda v: int(v.image.nbytes) + 512
)


class Slide:
    """A slide opened with one backend (pyvips or OpenSlide), read in level-0 coordinates."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self.path: Path = backend.path
        where, mtime, size = backend.identity()
        self._key = (where, backend.name, mtime, size)
        self._where = where
        self._file_size = size
        w, h = backend.level_dimensions[0]
        self._res = resolve_mpp(backend.properties, backend.format, backend.path.name)
        self._bounds = parse_bounds(backend.properties, w, h)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, backend: str = "auto") -> Slide:
        """Open a slide file. ``backend``: ``auto`` (pyvips where it can), ``pyvips``, ``openslide``."""
        return cls(open_backend(path, backend))

    def close(self) -> None:
        """Release the file handle."""
        self._b.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return f"Slide({self.path.name!r}, {self.format}, {w}x{h}, levels={self.level_count}, backend={self.backend_name})"

    # -- metadata ----------------------------------------------------------------------------
    @property
    def slide_id(self) -> str:
        """The file name without its extension."""
        return self.path.stem

    @property
    def format(self) -> str:
        """The file format the backend detected."""
        return self._b.format

    @property
    def vendor(self) -> str | None:
        """The scanner vendor, when known."""
        return self._b.vendor

    @property
    def backend_name(self) -> str:
        """The reader in use (openslide, pyvips, pillow...)."""
        return self._b.name

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)`` in pixels."""
        return self._b.level_dimensions[0]

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self._b.level_dimensions)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of every level, level 0 first."""
        return self._b.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per pixel of every level."""
        return self._b.level_downsamples

    @property
    def mpp_x(self) -> float | None:
        """Microns per pixel along x at level 0 (None when unknown)."""
        return self._res.mpp_x

    @property
    def mpp_y(self) -> float | None:
        """Microns per pixel along y at level 0 (None when unknown)."""
        return self._res.mpp_y

    @property
    def mpp(self) -> float | None:
        """Microns per pixel at level 0 (None when unknown)."""
        return self._res.mpp

    @property
    def mpp_source(self) -> MppSource:
        """Where the mpp came from: metadata, estimated or unknown."""
        return self._res.source

    @property
    def objective_power(self) -> float | None:
        """The scan's objective power (40 for 40x), when known."""
        return self._res.objective_power

    @property
    def bounds(self) -> Box | None:
        """OpenSlide's ``bounds-*`` rectangle (the scanned area) in level-0 px, if the format has one."""
        return self._bounds

    @property
    def associated_names(self) -> list[str]:
        """Names of the associated images (label, macro...); never sent to a model."""
        return list(self._b.associated_names)

    @property
    def properties(self) -> Mapping[str, str]:
        """All raw metadata (may hold identifiers: never send it to a model; see model_properties)."""
        return MappingProxyType(dict(self._b.properties))

    def info(self) -> SlideInfo:
        """A summary for people and models: size, levels, mpp and its source."""
        w, h = self.dimensions
        mpp = self.mpp
        levels = [
            LevelInfo(level=i, width=lw, height=lh, downsample=ds, mpp=mpp * ds if mpp else None)
            for i, ((lw, lh), ds) in enumerate(
                zip(self.level_dimensions, self.level_downsamples, strict=True)
            )
        ]
        return SlideInfo(
            path=self._where,
            slide_id=self.slide_id,
            format=self.format,
            vendor=self.vendor,
            backend=self.backend_name,
            backend_reason=self._b.reason,
            file_size=self._file_size,
            width=w,
            height=h,
            level_count=self.level_count,
            levels=levels,
            mpp_x=self.mpp_x,
            mpp_y=self.mpp_y,
            mpp=mpp,
            mpp_source=self.mpp_source,
            mpp_note=self._res.note,
            objective_power=self.objective_power,
            bounds=self.bounds.as_tuple() if self.bounds else None,
            associated_images=self.associated_names,
            channels=list(self._b.channels),
            channel_mapping=dict(self._b.channel_mapping),
        )

    def model_properties(self) -> dict[str, Any]:
        """The allow-list of properties that may be shown to a model (DESIGN.md: privacy)."""
        w, h = self.dimensions
        props: dict[str, Any] = {
            "width": w,
            "height": h,
            "mpp": self.mpp,
            "mpp_source": self.mpp_source.value,
            "objective_power": self.objective_power,
        }
        if self.channels_text:
            props["channels"] = self.channels_text
        return props

    @property
    def channels_text(self) -> str:
        """How a multi-channel image is shown, e.g. "DAPI as blue, CD8 as green (3 channels)"; '' if RGB."""
        if not self._b.channel_mapping:
            return ""
        shown = ", ".join(f"{name} as {colour}" for name, colour in self._b.channel_mapping)
        n = len(self._b.channels)
        return f"fluorescence composite: {shown}" + (f" (first 3 of {n} channels)" if n > 3 else "")

    # -- views -------------------------------------------------------------------------------
    def _name(self) -> str:
        return self.path.name

    def _shown_box(self, box: object) -> tuple[Box, Box]:
        w, h = self.dimensions
        requested = parse_box(box, self._name(), w, h)
        return requested, clamp_box(requested, self._name(), w, h)

    def read(
        self,
        box: Box | tuple | list | str,
        max_side: int = 1000,
        *,
        guides: bool = False,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        """View of a level-0 box, long side ``min(max_side, box long side)`` (never upscaled).

        A box partly outside the slide is clamped (``view.clamped``, ``view.requested``); one wholly
        outside, of zero/negative size or not numeric raises ``SlideError``. ``level_rule`` "giant"
        and ``guide_style`` "giant" render as GIANT does (see ``render`` and ``guides``).
        """
        side = check_max_side(max_side)
        requested, shown = self._shown_box(box)
        out_w, out_h = fit_output(shown, side)
        return self._view(shown, out_w, out_h, guides, requested, level_rule, guide_style)

    def read_mpp(
        self,
        box: Box | tuple | list | str,
        mpp: float,
        *,
        max_side: int | None = None,
        guides: bool = False,
    ) -> View:
        """View of a level-0 box at a target output resolution in µm/px (e.g. 0.5 for "20x")."""
        limit = MAX_SIDE_LIMIT if max_side is None else check_max_side(max_side)
        if (
            isinstance(mpp, bool)
            or not isinstance(mpp, numbers.Real)
            or not math.isfinite(mpp)
            or mpp <= 0
        ):
            raise SlideError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
        if self.mpp is None:
            raise SlideError(
                f"slide {self._name()} has no known resolution (mpp unknown), so it cannot be "
                f"read at {mpp:g} µm/px; use a max_side view instead"
            )
        requested, shown = self._shown_box(box)
        ds = max(1.0, mpp / self.mpp)
        out_w, out_h = max(1, round(shown.w / ds)), max(1, round(shown.h / ds))
        if max(out_w, out_h) > limit:
            max_box = int(limit * ds)
            coarsest = self.mpp * max(shown.w, shown.h) / limit
            raise SlideError(
                f"at {mpp:g} µm/px the box {shown} would be {out_w} x {out_h} px; the most is {limit} px "
                f"on the long side: use a box at most {max_box} level-0 px on its long side, or an mpp of "
                f"at least {coarsest:.3g}"
            )
        mpp = float(mpp)
        view = self._view(shown, out_w, out_h, guides, requested)
        if mpp < self.mpp * 0.999:
            view.meta["note"] = (
                f"asked for {mpp:g} µm/px but the slide's native resolution is "
                f"{self.mpp:.4g} µm/px; shown at native resolution (never upsampled)"
            )
        return view

    def thumbnail(
        self,
        max_side: int = 1024,
        *,
        guides: bool = False,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        """The overview: the whole slide, or its ``bounds`` region when the format records one."""
        side = check_max_side(max_side)
        w, h = self.dimensions
        box = self.bounds or Box(0, 0, w, h)
        out_w, out_h = fit_output(box, side)
        view = self._view(box, out_w, out_h, guides, box, level_rule, guide_style)
        view.meta["kind"] = "thumbnail"
        return view

    def _view(
        self,
        shown: Box,
        out_w: int,
        out_h: int,
        guides: bool,
        requested: Box,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        if level_rule not in ("fine", "giant") or guide_style not in ("scout", "giant"):
            raise SlideError(
                f"level_rule must be fine or giant and guide_style scout or giant, "
                f"got {level_rule!r} and {guide_style!r}"
            )
        key = (self._key, shown.as_tuple(), out_w, out_h, bool(guides) and guide_style, level_rule)
        cached = _views.get(key)
        if cached is None:
            # single flight: concurrent requests for the same view (32 samples opening the same
            # overview) wait for one render instead of each rendering it
            with _inflight_guard:
                lock = _inflight.setdefault(key, threading.Lock())
            with lock:
                cached = _views.get(key)
                if cached is None:
                    cached = self._render_view(
                        key, shown, out_w, out_h, guides, level_rule, guide_style
                    )
            with _inflight_guard:
                _inflight.pop(key, None)
        return dataclasses.replace(
            cached, requested=requested, clamped=requested != shown, meta=dict(cached.meta)
        )

    def _render_view(
        self,
        key: tuple,
        shown: Box,
        out_w: int,
        out_h: int,
        guides: bool,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        giant = giant_read(self._b, shown, max(out_w, out_h)) if level_rule == "giant" else None
        if giant is not None:  # GIANT's own read and resize, pixel for pixel
            image, level = giant
            out_h, out_w = image.shape[:2]
        else:
            region = plan_region(self._b, shown, out_w, out_h, level_rule)
            image, level = self._b.render(region), region.level
        if guides:
            image = draw_guides(image, shown, style=guide_style)
        image = np.ascontiguousarray(image)
        image.setflags(write=False)  # shared through the cache
        ds = (shown.w / out_w + shown.h / out_h) / 2
        cached = _views.put(
            key,
            View(
                image=image,
                box=shown,
                level=level,
                downsample=ds,
                mpp=self.mpp * ds if self.mpp else None,
                guides=bool(guides),
                meta={
                    "slide_id": self.slide_id,
                    "backend": self.backend_name,
                    "level_downsample": self.level_downsamples[level],
                    "mpp_source": self.mpp_source.value,
                    **({"channels": self.channels_text} if self.channels_text else {}),
                },
            ),
        )
        return cached

    # -- raw pixels --------------------------------------------------------------------------
    def _check_level(self, level: object) -> int:
        index = (
            int(level)
            if isinstance(level, numbers.Integral) and not isinstance(level, bool)
            else -1
        )
        if not 0 <= index < self.level_count:
            raise SlideError(
                f"slide {self._name()} has levels 0..{self.level_count - 1}, got level {level!r}"
            )
        return index

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Raw RGB (h, w, 3) uint8 at ``level``, in that level's pixel coordinates.

        Parts outside the level are white; a rectangle wholly outside raises ``SlideError``.
        """
        level = self._check_level(level)
        try:
            x, y, w, h = (int(v) for v in (x, y, w, h))
        except (TypeError, ValueError):
            raise SlideError(f"read_level needs integer x, y, w, h, got {(x, y, w, h)!r}") from None
        lw, lh = self.level_dimensions[level]
        if w <= 0 or h <= 0:
            raise SlideError(
                f"read_level size {w}x{h} must be positive (level {level} is {lw} x {lh} px)"
            )
        if w * h > READ_LEVEL_MAX_PX:
            raise SlideError(
                f"read_level of {w}x{h} px is too large; the most is {READ_LEVEL_MAX_PX} px "
                "per call: read tiles, or use read() for a downsampled view"
            )
        if Box(x, y, w, h).intersect(Box(0, 0, lw, lh)) is None:
            raise SlideError(
                f"({x},{y},{w},{h}) lies outside level {level} of slide {self._name()} "
                f"(level {level} is {lw} x {lh} px; {size_text(*self.dimensions)})"
            )
        return padded_read(self._b, level, x, y, w, h)

    def patch_reader(self, level: int = 0) -> PatchReader:
        """A thread-safe reader for many small reads at one level: ``.fetch(x, y, w, h)``."""
        return self._b.patch_reader(self._check_level(level))

    def best_level_for_downsample(self, downsample: float) -> int:
        """Coarsest level whose downsample does not exceed ``downsample``."""
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * 1.0001:
                best = i
        return best

    def associated_image(self, name: str) -> Image.Image:
        """A label/macro/thumbnail image. May show patient identifiers: never send it to a model."""
        return self._b.associated_image(name)


# ------------------------------------------------------------------------------------------
# cached handles

_handles: LRUCache[tuple, Slide] = LRUCache(max_items=HANDLE_CACHE_SIZE)


def open_slide(path: str | os.PathLike, backend: str = "auto") -> Slide:
    """A cached open ``Slide`` (reopened when the file changes); thread-safe."""
    if isinstance(path, str) and "://" in path:  # a URL (OME-Zarr through fsspec)
        return _handles.get_or_create((path, backend), lambda: Slide.open(path, backend))
    p = Path(path).expanduser()
    try:
        st = p.stat()
        key = (str(p.resolve()), backend, st.st_mtime_ns, st.st_size)
    except OSError:
        return Slide.open(p, backend)  # raises the proper SlideError
    return _handles.get_or_create(key, lambda: Slide.open(p, backend))


def clear_cache() -> None:
    """Forget cached slide handles and rendered views."""
    _handles.clear()
    _views.clear()
