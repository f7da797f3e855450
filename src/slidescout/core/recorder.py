"""Where a sample's images and trace go: the ``Recorder`` seam (inspect_ai's recorder, in small).

The agent never writes files. It hands every image it shows a model to ``put_image`` (which
returns the sha256 it is stored under) and its trace to ``write_trace`` as the sample runs and
once at the end. The run directory (``slidescout.traces.rundir``) and :class:`MemoryRecorder`
implement it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from slidescout.core.trace import Trace

__all__ = ["MemoryRecorder", "Recorder"]


@runtime_checkable
class Recorder(Protocol):
    """Receives the images and the trace of one (sample, repeat)."""

    @property
    def location(self) -> Path | None:
        """A folder tools may write artefacts under, or None (nothing on disk)."""
        ...

    def put_image(self, data: bytes, media_type: str = "image/jpeg") -> str:
        """Store encoded image bytes once; return their sha256."""
        ...

    def get_image(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``."""
        ...

    def write_trace(self, trace: Trace) -> None:
        """Record the trace as it is now (called while it runs, and once when it is finished)."""
        ...


class MemoryRecorder:
    """A recorder that keeps everything in memory: for notebooks, tests and ``replay``."""

    def __init__(self) -> None:
        self.images: dict[str, tuple[bytes, str]] = {}
        self.traces: list[Trace] = []

    @property
    def location(self) -> Path | None:
        return None

    def put_image(self, data: bytes, media_type: str = "image/jpeg") -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.images.setdefault(sha, (data, media_type))
        return sha

    def get_image(self, sha256: str) -> bytes:
        return self.images[sha256][0]

    def write_trace(self, trace: Trace) -> None:
        if self.traces and self.traces[-1] is trace:
            return
        self.traces.append(trace)

    @property
    def trace(self) -> Trace | None:
        """The last trace written."""
        return self.traces[-1] if self.traces else None
