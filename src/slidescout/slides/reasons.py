"""One-line reasons for failures of the libraries that read slides (pyvips, OpenSlide, tifffile),
and the hint that a file may be truncated."""

from __future__ import annotations

_TRUNCATION_WORDS = (
    "end of the file",
    "truncat",
    "premature",
    "end of file",
    "eof",
    "short read",
    "unexpected end",
    "out of data",
)


def truncation_hint(exc: BaseException) -> str:
    """'; the file is truncated or corrupt' when the failure says the data ends early, else ''."""
    text = f"{exc} {getattr(exc, 'detail', '')}".lower()
    return (
        "; the file may be truncated or corrupt"
        if any(w in text for w in _TRUNCATION_WORDS)
        else ""
    )


def _reason(exc: BaseException) -> str:
    """One short line saying why a library call failed (pyvips keeps the cause in ``detail``)."""
    lines = [ln.strip() for ln in str(getattr(exc, "detail", "") or "").splitlines() if ln.strip()]
    if not lines:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = "; ".join(dict.fromkeys(lines[:2])) if lines else type(exc).__name__
    return msg[:300]
