"""The readers of formats beyond OpenSlide and TIFF, each behind an extra, each asked in turn
"can you read this?" (by the file's first bytes or its suffix) before OpenSlide is.

OME-Zarr (a folder or a URL) and DICOM (OpenSlide first) are decided in ``factory`` itself; the
file formats here are claimed by their own reader module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slidescout.slides import (
    backend_czi,
    backend_dicom,
    backend_isyntax,
    backend_lif,
    backend_slideio,
)
from slidescout.slides.backends import Backend

HEAD_BYTES = 132


@dataclass(frozen=True)
class FormatReader:
    """One format: what it is, the claim, the opener, and where OpenSlide stands.

    ``openslide_vendor``: the name OpenSlide gives the format when it reads some of its files
    (DICOM, Zeiss CZI); OpenSlide is then asked first and this reader opens only the files it
    cannot open or decode. ``None``: OpenSlide does not read the format (``no_openslide`` says so).
    """

    what: str
    claims: Callable[[Path, bytes], bool]
    open: Callable[[Path], Backend]
    openslide_vendor: str | None = None
    no_openslide: str = ""


def _is_dicom(path: Path, head: bytes) -> bool:
    return head[128:132] == b"DICM"


READERS: tuple[FormatReader, ...] = (
    FormatReader(
        backend_dicom.WHAT, _is_dicom, backend_dicom.WsiDicomBackend, openslide_vendor="dicom"
    ),
    FormatReader(
        backend_czi.WHAT, backend_czi.claims, backend_czi.CziBackend, openslide_vendor="zeiss"
    ),
    FormatReader(
        backend_isyntax.WHAT,
        backend_isyntax.claims,
        backend_isyntax.ISyntaxBackend,
        no_openslide="OpenSlide 4.0 does not read iSyntax",
    ),
    FormatReader(
        backend_slideio.WHAT,
        backend_slideio.claims,
        backend_slideio.SlideioBackend,
        no_openslide="OpenSlide does not read VSI (it sees only the overview TIFF)",
    ),
    FormatReader(
        backend_lif.WHAT,
        backend_lif.claims,
        backend_lif.LifBackend,
        no_openslide="OpenSlide does not read LIF",
    ),
)


def claim(path: Path) -> FormatReader | None:
    """The reader that recognises ``path`` (a file), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    return next((r for r in READERS if r.claims(path, head)), None)
