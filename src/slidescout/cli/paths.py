"""Checks of the paths a command reads and writes, done before any work, each failing in one line.

Every command that takes a folder or an output file goes through these, so "a file where a folder
is expected", "a folder that cannot be created" and "an output that is a folder" read the same
everywhere and never end in a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from slidescout.errors import ConfigError

__all__ = [
    "check_input_dir",
    "check_input_file",
    "check_output_file",
    "ensure_dir",
    "os_error_text",
]

_PLAIN = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file grew too large (file size limit or a full disk)",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
}


def os_error_text(exc: OSError) -> str:
    """One line for an OSError: what failed, where, and why in plain words."""
    why = _PLAIN.get(exc.errno or -1) or exc.strerror or type(exc).__name__
    where = exc.filename
    return f"cannot write {where}: {why}" if where else f"a file operation failed: {why}"


def _first_file_on_path(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (itself included) that is not a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def ensure_dir(path: Path | str, what: str = "folder") -> Path:
    """Create ``path`` (and its parents) as a folder, or say in one line why it cannot be."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {p} is a file, not a folder; give a folder path")
    blocker = _first_file_on_path(p)
    if blocker is not None:
        raise ConfigError(f"cannot create {what} {p}: {blocker} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {what} {p}: {_PLAIN.get(exc.errno or -1) or exc.strerror}"
        ) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {p} is not writable")
    return p


def check_output_file(
    path: Path | str, what: str = "output file", *, suffixes: tuple[str, ...] = ()
) -> Path:
    """An output file path: not a folder, its folder created, with one of ``suffixes`` if given."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(
            f"{what} {p} is a folder; give a file path (e.g. {p / ('out' + (suffixes[0] if suffixes else ''))})"
        )
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{what} {p}: give a path ending in {' or '.join(suffixes)}")
    blocker = _first_file_on_path(p.parent)
    if blocker is not None:
        raise ConfigError(f"cannot write {what} {p}: {blocker} is a file, not a folder")
    ensure_dir(p.parent, f"the folder of {what} {p}")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{what} {p} is not writable")
    return p


def check_input_file(path: Path | str, what: str = "input file") -> Path:
    """An existing, readable file (not a folder)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder; give a file")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{what} {p} is not readable")
    return p


def check_input_dir(path: Path | str, what: str = "folder") -> Path:
    """An existing folder (not a file)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise ConfigError(f"{what} {p} is a file, not a folder")
    return p
