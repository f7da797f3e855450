"""The slides an MCP server may serve: the files under one folder, addressed by id.

A slide id is the file's path relative to the folder, with ``/`` separators (``case1.svs``,
``lung/case2.tiff``). Ids are checked before any file is touched: absolute paths, ``..``, hidden
parts, backslashes and symbolic links that lead out of the folder are refused, so a client can
never read a file outside it. Only properties on the model allow-list are listed (size,
resolution, objective power); label and macro images are never read.

This module does not import ``mcp``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import Field

from slidescout.errors import ConfigError, SlidescoutError, ToolError
from slidescout.slides import open_slide
from slidescout.slides.factory import IMAGE_SUFFIXES, SLIDE_SUFFIXES
from slidescout.tools.base import ToolResult, tool
from slidescout.tools.context import ToolContext

SLIDE_EXTENSIONS: tuple[str, ...] = SLIDE_SUFFIXES + IMAGE_SUFFIXES  # what a folder lists
LIBRARY_KEY = "slidescout.mcp.library"  # where list_slides finds the library in ctx.extras
MAX_SCAN = 100_000  # files looked at per listing, so a huge folder cannot stall the server
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class SlideIdError(ToolError):
    """A slide id that is malformed, unknown, or leads outside the slide folder."""


class SlideLibrary:
    """The slide files under ``root`` (recursively; hidden files and folders skipped)."""

    def __init__(
        self, root: str | os.PathLike[str], extensions: tuple[str, ...] = SLIDE_EXTENSIONS
    ) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"slide folder {path} does not exist or is not a folder; give the folder "
                "that holds the slides"
            )
        self.root = path.resolve()
        self.extensions = tuple(e.lower() for e in extensions)

    # -- listing -------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Every slide id, sorted. Symbolic links are listed only when they stay inside the folder;
        linked folders are not walked."""
        return self.scan()[0]

    def scan(self) -> tuple[list[str], int]:
        """(every slide id, sorted; how many symbolic links were skipped: slide links leading
        out of the folder, and linked folders, which are not walked)."""
        out: list[str] = []
        seen = skipped = 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            visible = sorted(d for d in dirnames if not d.startswith("."))
            skipped += sum(1 for d in visible if os.path.islink(os.path.join(dirpath, d)))
            dirnames[:] = visible
            for fn in sorted(filenames):
                seen += 1
                if seen > MAX_SCAN:
                    return sorted(out), skipped
                if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in self.extensions:
                    continue
                p = Path(dirpath) / fn
                if p.is_symlink() and not self._inside(p):
                    skipped += 1
                    continue
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out), skipped

    def _inside(self, p: Path) -> bool:
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return real.is_file() and real.is_relative_to(self.root)

    # -- resolving -----------------------------------------------------------------------------
    def resolve(self, slide_id: Any) -> Path:
        """The file of a slide id, or a :class:`SlideIdError` the model can act on."""
        if not isinstance(slide_id, str) or not slide_id.strip():
            raise SlideIdError(
                "slide_id must be a non-empty string such as 'case1.svs'; call "
                "list_slides to see the ids"
            )
        sid = slide_id.strip()
        if "\x00" in sid or "\\" in sid:
            raise SlideIdError(
                f"slide_id {sid!r} contains a backslash or NUL character; use the id "
                "exactly as list_slides gives it (folders separated by '/')"
            )
        if sid.startswith(("/", "~")) or _DRIVE_RE.match(sid):
            raise SlideIdError(
                f"slide_id {sid!r} is an absolute path; slides are addressed by their "
                "path relative to the slide folder, as list_slides gives it"
            )
        parts = PurePosixPath(sid).parts
        if any(part in ("..", ".") for part in sid.split("/")):
            raise SlideIdError(
                f"slide_id {sid!r} contains '..' or '.'; only slides inside the slide "
                "folder can be opened: use an id from list_slides"
            )
        if any(part.startswith(".") for part in parts):
            raise self._unknown(sid)
        if os.path.splitext(sid)[1].lower() not in self.extensions:
            raise SlideIdError(
                f"slide_id {sid!r} is not a slide file (known extensions: "
                f"{', '.join(self.extensions)}); call list_slides for the ids"
            )
        path = self.root.joinpath(*parts)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise self._unknown(sid) from None
        if not real.is_relative_to(self.root):
            raise SlideIdError(
                f"slide_id {sid!r} leads outside the slide folder (a symbolic link) and "
                "cannot be served"
            )
        if not real.is_file():
            raise self._unknown(sid)
        return path

    def _unknown(self, sid: str) -> SlideIdError:
        ids = self.ids()
        close = difflib.get_close_matches(sid, ids, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        known = f"{len(ids)} slide(s) are available" if ids else "the slide folder holds no slides"
        return SlideIdError(
            f"unknown slide id {sid!r}; {known}: call list_slides for their ids.{hint}"
        )

    def open(self, slide_id: Any) -> Any:
        """The open (cached) :class:`Slide` of an id; errors as ``ToolError`` without host paths."""
        path = self.resolve(slide_id)
        try:
            return open_slide(path)
        except SlidescoutError as exc:
            raise ToolError(
                f"slide {slide_id.strip()!r} cannot be opened: {self.scrub(str(exc))}"
            ) from None

    def scrub(self, message: str) -> str:
        """A message with the folder's absolute path replaced by ``<slides>``."""
        return message.replace(str(self.root) + os.sep, "").replace(str(self.root), "<slides>")

    # -- metadata ------------------------------------------------------------------------------
    def describe(self, slide_id: str) -> dict[str, Any]:
        """The allow-listed properties of one slide (``Slide.model_properties``) and its id."""
        slide = self.open(slide_id)
        props = {k: _finite(v) for k, v in slide.model_properties().items()}
        return {"slide_id": slide_id.strip(), **props}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_line(entry: dict[str, Any]) -> str:
    """``case1.svs: 40000 x 30000 px, 0.250 µm/px (metadata), 40x objective``."""
    if "error" in entry:
        return f"{entry['slide_id']}: cannot be opened ({entry['error']})"
    text = f"{entry['slide_id']}: {entry['width']} x {entry['height']} px"
    mpp = entry.get("mpp")
    text += (
        f", {mpp:.3f} µm/px ({entry.get('mpp_source') or 'unknown source'})"
        if mpp
        else ", µm/px unknown"
    )
    if entry.get("objective_power"):
        text += f", {entry['objective_power']:g}x objective"
    return text


@tool
def list_slides(
    ctx: ToolContext,
    contains: str | None = None,
    offset: Annotated[int, Field(ge=0)] = 0,
    limit: Annotated[int, Field(ge=1, le=500)] = 100,
) -> ToolResult:
    """List the slides this server can show, with their size and resolution. Every other slide tool
    takes one of these ids as its slide_id argument.

    Args:
        contains: Only ids containing this text (case-insensitive).
        offset: Skip this many slides (for paging through a long list).
        limit: At most this many slides.
    """
    library: SlideLibrary | None = ctx.extras.get(LIBRARY_KEY)
    if library is None:
        raise ToolError("no slide folder is configured for this server")
    ids = library.ids()
    if contains:
        ids = [i for i in ids if contains.lower() in i.lower()]
    page = ids[offset : offset + limit]
    entries: list[dict[str, Any]] = []
    for sid in page:
        try:
            entries.append(library.describe(sid))
        except ToolError as exc:
            entries.append({"slide_id": sid, "error": str(exc)})
    what = f" matching {contains!r}" if contains else ""
    if not ids:
        head = f"No slides{what} in the slide folder."
    else:
        head = f"{len(ids)} slide(s){what}; showing {offset + 1}-{offset + len(page)}."
        if offset + len(page) < len(ids):
            head += f" Call again with offset={offset + len(page)} for more."
    lines = [head, *(summary_line(e) for e in entries)]
    if entries:
        lines.append("Coordinates in every tool are level-0 pixels of the slide, origin top left.")
    return ToolResult(
        text="\n".join(lines), data={"total": len(ids), "offset": offset, "slides": entries}
    )


__all__ = ["LIBRARY_KEY", "SLIDE_EXTENSIONS", "SlideIdError", "SlideLibrary", "list_slides"]
