"""What a fetch folder remembers: remote sizes and checksums, and which files were verified.

Kept in ``<folder>/.slidescout/fetch-state.json`` (a hidden folder, which slide search skips),
written atomically, so ``data status`` can print sizes offline and a second ``data fetch``
skips a verified file without hashing it again (same size and modification time).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RemoteInfo:
    """What a source says about a slide: size in bytes, md5 (GDC only) and its own file name."""

    size: int | None = None
    md5: str | None = None
    file_name: str | None = None


@dataclass
class FetchState:
    root: Path
    remote: dict[str, RemoteInfo] = field(default_factory=dict)  # by SlideItem.key
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path relative to root

    @property
    def path(self) -> Path:
        return self.root / ".slidescout" / "fetch-state.json"

    @classmethod
    def load(cls, root: str | Path) -> FetchState:
        st = cls(Path(root))
        try:
            data = json.loads(st.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return st
        for key, info in (data.get("remote") or {}).items():
            if isinstance(info, dict):
                st.remote[key] = RemoteInfo(
                    size=info.get("size"), md5=info.get("md5"), file_name=info.get("file_name")
                )
        st.verified = {k: v for k, v in (data.get("verified") or {}).items() if isinstance(v, dict)}
        return st

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "remote": {k: vars(v) for k, v in sorted(self.remote.items())},
            "verified": dict(sorted(self.verified.items())),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path.resolve())

    def mark_verified(self, path: Path, md5: str | None) -> None:
        st = path.stat()
        self.verified[self._rel(path)] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "md5": md5,
        }

    def forget(self, path: Path) -> None:
        self.verified.pop(self._rel(path), None)

    def is_verified(self, path: Path) -> bool:
        """True when ``path`` was verified and has not changed since (size and mtime)."""
        rec = self.verified.get(self._rel(path))
        if rec is None:
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        return rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns
