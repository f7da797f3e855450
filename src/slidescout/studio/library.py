"""The slides a studio serves: the files under its folder, each under an opaque key.

Listing and resolving go through :class:`~slidescout.tools.mcp_server.library.SlideLibrary` (no
hidden files, no symbolic link that leads out of the folder); the page only ever sees keys.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slidescout.errors import SlidescoutError
from slidescout.slides import open_slide
from slidescout.tools.mcp_server.library import SlideLibrary

__all__ = ["SlideEntry", "StudioLibrary"]


@dataclass(frozen=True)
class SlideEntry:
    """One slide of the folder: its key (URLs), its id (path in the folder) and its file."""

    key: str
    slide_id: str
    path: Path


class StudioLibrary:
    """The slides under ``root``, by key. Thread-safe; the listing is re-read on ``refresh``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.library = SlideLibrary(root)
        self.root = self.library.root
        self._salt = os.urandom(8)
        self._lock = threading.Lock()
        self._by_key: dict[str, SlideEntry] = {}
        self.refresh()

    def key_for(self, slide_id: str) -> str:
        return hashlib.sha256(self._salt + slide_id.encode()).hexdigest()[:20]

    def refresh(self) -> list[SlideEntry]:
        entries = []
        for sid in self.library.ids():
            try:
                path = self.library.resolve(sid)
            except SlidescoutError:
                continue
            entries.append(SlideEntry(self.key_for(sid), sid, path))
        with self._lock:
            self._by_key = {e.key: e for e in entries}
        return entries

    def get(self, key: str) -> SlideEntry | None:
        """The slide of a key (re-listing once for a slide added since), or None."""
        with self._lock:
            entry = self._by_key.get(key)
        if entry is None:
            entry = next((e for e in self.refresh() if e.key == key), None)
        if entry is None or not entry.path.is_file():
            return None
        return entry

    def describe(self, entry: SlideEntry) -> dict[str, Any]:
        """What the slide list shows: size, µm/px (and its source), objective, vendor; or the error."""
        out: dict[str, Any] = {"key": entry.key, "name": entry.slide_id}
        try:
            slide = open_slide(entry.path)
        except SlidescoutError as exc:
            out["error"] = self.library.scrub(str(exc))
            return out
        w, h = slide.dimensions
        out.update(
            width=int(w),
            height=int(h),
            mpp=slide.mpp,
            mpp_source=slide.mpp_source.value if slide.mpp else None,
            objective_power=slide.objective_power,
            vendor=slide.vendor or slide.format,
            thumbnail=f"slides/{entry.key}_thumb.jpeg",
            dzi=f"slides/{entry.key}.dzi",
        )
        return out
