"""The run directory: manifest, append-only results, one trace per sample, images stored once.

Layout (DESIGN.md)::

    RUN/manifest.json          config, versions, prompt hashes, git revision
    RUN/results.jsonl          one line per finished sample, appended and flushed
    RUN/traces/<sample>.json   ordered events of one sample
    RUN/blobs/<sha256>.jpg     every image, stored once, referenced by hash
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slidescout.core.record import ResultRecord
from slidescout.core.trace import Trace, load_trace
from slidescout.errors import SlidescoutError
from slidescout.traces.safeio import atomic_write, repair_jsonl_tail

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


# errors that mean the disk (or the quota) is full: the run stops, the sample is not failed
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException | None) -> OSError | None:
    """The disk-full ``OSError`` behind ``exc`` (itself, its cause or context, or a Ray task
    error's ``cause``), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def read_manifest(path: Path) -> dict[str, Any]:
    """A run's ``manifest.json`` ({} when there is none); a damaged one is a one-line error."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SlidescoutError(
            f"{path} is damaged (not JSON: {exc}); restore it, or start a new run in another folder"
        ) from None
    if not isinstance(data, dict):
        raise SlidescoutError(
            f"{path} is damaged (not a JSON object); restore it, or start a new run in another "
            "folder"
        )
    return data


def safe_name(sample_id: str) -> str:
    """A file name for a sample id: stable, readable, never escaping the folder."""
    name = _SAFE.sub("_", sample_id.replace("/", "__")).strip("._") or "sample"
    if name != sample_id.replace("/", "__"):
        # keep distinct ids distinct after sanitising
        name = f"{name}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"
    return name[:180]


class BlobStore:
    """Content-addressed image store: ``put`` returns the sha256; identical bytes are written once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @staticmethod
    def ext_for(media_type: str) -> str:
        return {"image/png": "png", "image/jpeg": "jpg"}.get(media_type, "bin")

    def put(self, data: bytes, media_type: str = "image/jpeg") -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / f"{sha}.{self.ext_for(media_type)}"
        if not path.exists():
            atomic_write(path, data)
        return sha

    def path(self, sha: str) -> Path | None:
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            return None
        for ext in ("jpg", "png", "bin"):
            p = self.root / f"{sha}.{ext}"
            if p.exists():
                return p
        return None

    def get(self, sha: str) -> bytes:
        p = self.path(sha)
        if p is None:
            raise SlidescoutError(f"image {sha[:12]}… is not in {self.root}")
        return p.read_bytes()


def git_revision(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str | None]:
    """Versions of what shapes a run's results (lightweight: no torch import)."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
        "slidescout",
        "openslide-python",
        "openslide-bin",
        "pyvips",
        "openai",
        "anthropic",
        "torch",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def trace_file(sample_id: str, repeat: int = 0) -> str:
    """``traces/`` file name of a (sample, repeat): ``<id>.json``, ``<id>.r01.json`` for repeat 1..."""
    stem = safe_name(sample_id)
    return f"{stem}.json" if repeat == 0 else f"{stem}.r{repeat:02d}.json"


class RunDir:
    """Writer and reader of one run directory. Safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.traces_dir = self.path / "traces"
        self.blobs = BlobStore(self.path / "blobs")
        self.traces_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # -- creation ------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path | str,
        config: dict[str, Any],
        prompt_hashes: dict[str, str] | None = None,
        *,
        resume: bool = False,
    ) -> RunDir:
        """Make (or, with ``resume``, reopen) a run directory and write its manifest."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        if manifest_path.exists() and not resume and (path / "results.jsonl").exists():
            raise SlidescoutError(
                f"{path} already holds a run; pass --resume to continue it or choose another --out"
            )
        run = cls(path)
        repair_jsonl_tail(
            path / "results.jsonl"
        )  # a torn last line must not swallow the next record
        manifest = read_manifest(manifest_path)
        manifest.setdefault("run_id", path.name)
        manifest.setdefault("created_at", datetime.now(timezone.utc).isoformat())
        manifest["config"] = config
        manifest["versions"] = versions()
        manifest["prompt_hashes"] = prompt_hashes or {}
        manifest["git_revision"] = git_revision()
        if resume:
            manifest.setdefault("resumed_at", []).append(datetime.now(timezone.utc).isoformat())
        run._write_json_atomic(manifest_path, manifest)
        return run

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        path = Path(path)
        if not path.is_dir():
            raise SlidescoutError(f"{path} is not a run directory (no such folder)")
        if not (path / "manifest.json").exists() and not (path / "traces").is_dir():
            raise SlidescoutError(f"{path} is not a run directory (no manifest.json or traces/)")
        return cls(path)

    # -- writing -------------------------------------------------------------
    @staticmethod
    def _write_json_atomic(path: Path, obj: Any) -> None:
        atomic_write(path, json.dumps(obj, indent=1, default=str))

    def trace_path(self, sample_id: str, repeat: int = 0) -> Path:
        return self.traces_dir / trace_file(sample_id, repeat)

    def write_trace(self, trace: Trace, repeat: int = 0) -> Path:
        """Write (or overwrite) a sample's trace atomically."""
        return atomic_write(self.trace_path(trace.sample_id, repeat), trace.to_json())

    def recorder(self, repeat: int = 0, *, live_interval: float = 0.0) -> TraceRecorder:
        """The :class:`~slidescout.core.recorder.Recorder` of one (sample, repeat) of this run."""
        return TraceRecorder(self, repeat, live_interval=live_interval)

    def append_result(self, record: ResultRecord | Mapping[str, Any]) -> None:
        """Append one finished sample to results.jsonl, flushed and synced before returning."""
        data = record.to_json_dict() if isinstance(record, ResultRecord) else dict(record)
        line = json.dumps(data, default=str, ensure_ascii=False)
        with self._lock, open(self.path / "results.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- reading -------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.path / "manifest.json")

    def results(self) -> list[dict[str, Any]]:
        """Finished samples; a torn last line (a crash mid-write) is ignored. Last record per key wins."""
        p = self.path / "results.jsonl"
        if not p.exists():
            return []
        out: dict[tuple[str, int], dict[str, Any]] = {}
        with open(p, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                out[(str(rec.get("sample_id")), int(rec.get("repeat", 0) or 0))] = rec
        return list(out.values())

    def records(self) -> list[ResultRecord]:
        """:meth:`results` as ``ResultRecord`` objects (lines that are not records are skipped)."""
        out: list[ResultRecord] = []
        for rec in self.results():
            try:
                out.append(ResultRecord.model_validate(rec))
            except ValueError:
                continue
        return out

    def finished_keys(self) -> set[tuple[str, int]]:
        return {(str(r.get("sample_id")), int(r.get("repeat", 0) or 0)) for r in self.results()}

    def read_trace(self, sample_id_or_path: str | Path) -> Trace:
        p = Path(sample_id_or_path)
        if not p.exists():
            p = self.trace_path(str(sample_id_or_path))
        return load_trace(p)

    def iter_traces(self) -> Iterator[Path]:
        yield from sorted(self.traces_dir.glob("*.json"))


def find_run_dir(trace_path: Path) -> RunDir | None:
    """The run directory a trace file belongs to (``RUN/traces/x.json``), if any."""
    parent = Path(trace_path).resolve().parent
    if parent.name == "traces" and (parent.parent / "blobs").is_dir():
        return RunDir(parent.parent)
    return None


class TraceRecorder:
    """The run directory as one (sample, repeat) records into it: images go to ``blobs/``, the
    trace to :func:`trace_file`, so the repeats of a sample keep separate traces.

    A running trace is rewritten after every step so the viewer can follow it; with
    ``live_interval`` that is throttled to one write per interval (the final trace is always
    written).

    A write that fails because the disk is full is remembered in ``disk_error`` (the agent may
    have recorded it as a tool or sample error): the caller stops the run instead of keeping a
    failed record, so the sample stays unfinished and a resumed run does it again.
    """

    def __init__(self, run: RunDir, repeat: int = 0, *, live_interval: float = 0.0) -> None:
        self.run = run
        self.repeat = repeat
        self.live_interval = live_interval
        self._last_write = -math.inf
        self.disk_error: OSError | None = None

    def _full(self, exc: OSError) -> None:
        if exc.errno in DISK_FULL_ERRNOS and self.disk_error is None:
            self.disk_error = exc

    @property
    def location(self) -> Path:
        return self.run.path

    def put_image(self, data: bytes, media_type: str = "image/jpeg") -> str:
        try:
            return self.run.blobs.put(data, media_type)
        except OSError as exc:
            self._full(exc)
            raise

    def get_image(self, sha256: str) -> bytes:
        return self.run.blobs.get(sha256)

    def trace_path(self, sample_id: str) -> Path:
        return self.run.trace_path(sample_id, self.repeat)

    def write_trace(self, trace: Trace) -> None:
        now = time.monotonic()
        if trace.status == "running" and now - self._last_write < self.live_interval:
            return
        self._last_write = now
        try:
            self.run.write_trace(trace, self.repeat)
        except OSError as exc:
            self._full(exc)
            raise
