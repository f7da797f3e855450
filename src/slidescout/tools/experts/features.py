"""Tile features on disk: one HDF5 file per slide, in the layout CLAM and TRIDENT write, so their
MIL code reads ours and ours reads theirs.

    OUT/<slide stem>.h5
      features   float32 (N, D)   one row per tissue patch
      coords     int64 (N, 2)     level-0 top-left (x, y) of each patch
        attrs    patch_size (px at the target resolution), patch_size_level0, patch_level,
                 overlap, level0_magnification, target_magnification, level0_width,
                 level0_height, name (TRIDENT's keys; CLAM's downsample and level_dim too)
      file attrs slidescout's: model, card_key, mpp, slide_id, slide_path, min_tissue,
                 stain_norm, grid origin and step, created, complete

A slide is written to ``<stem>.h5.partial`` batch by batch (memory stays bounded) and renamed
when complete, so an interrupted run leaves no file that looks finished, and a rerun skips the
slides already done (resumable per slide).

Every folder ``experts embed`` writes to is remembered per model in
``$SLIDESCOUT_HOME/features.json``; :func:`find_cached` looks there (and in
``$SLIDESCOUT_HOME/features/<model>/``, where tools store what they compute) for a slide's
features made by the same card and weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.core.types import Box
from slidescout.errors import ConfigError
from slidescout.slides.factory import SLIDE_SUFFIXES
from slidescout.tools.experts import catalog
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.runtime import run_patches
from slidescout.tools.experts.tiling import PatchPlan, choose_read_level, plan_patches

SUFFIX = ".h5"
FORMAT = "slidescout-features-1"
_LOCK = threading.Lock()


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ConfigError("features on disk need h5py (pip install h5py)") from None
    return h5py


def card_fingerprint(card: Card) -> str:
    """Changes with the card's content or its weights (not with where the card file lies)."""
    w = card.weights
    stamp = f"{w.stat().st_size}:{w.stat().st_mtime_ns}" if w.is_file() else "folder"
    raw = f"{card.card.model_dump_json()}|{stamp}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class FeatureSet:
    """One slide's tile features as read from disk."""

    path: Path
    features: np.ndarray  # (N, D) float32
    coords: np.ndarray  # (N, 2) int64 level-0 top-left x, y
    grid: dict[str, Any]  # the coords dataset's attributes
    meta: dict[str, Any] = field(default_factory=dict)  # the file's attributes

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def patch_l0(self) -> float:
        return float(self.meta.get("patch_l0") or self.grid["patch_size_level0"])

    @property
    def stride_l0(self) -> float:
        return float(self.meta.get("stride_l0") or self.patch_l0)

    def plan(self, slide: Any, region: Box | None = None) -> tuple[PatchPlan, np.ndarray]:
        """The patch plan these features came from (its cells rebuilt from the coordinates) and
        the indices of the patches kept: all, or those whose centre lies in ``region``."""
        step, side = self.stride_l0, self.patch_l0
        if "origin_x" in self.meta:
            origin = (float(self.meta["origin_x"]), float(self.meta["origin_y"]))
        else:  # a file from another tool: the grid through the first patch
            c0 = self.coords.min(axis=0) if len(self) else np.zeros(2)
            origin = (float(c0[0] % step), float(c0[1] % step))
        cols = np.rint((self.coords[:, 0] - origin[0]) / step).astype(np.int64)
        rows = np.rint((self.coords[:, 1] - origin[1]) / step).astype(np.int64)
        keep = np.arange(len(self))
        sw, sh = (int(v) for v in slide.dimensions)
        if region is not None:
            cx, cy = self.coords[:, 0] + side / 2, self.coords[:, 1] + side / 2
            inside = (cx >= region.x) & (cx < region.x2) & (cy >= region.y) & (cy < region.y2)
            keep = keep[inside]
        mpp = float(self.meta.get("mpp") or slide.mpp * side / int(self.grid["patch_size"]))
        size = int(self.grid["patch_size"])
        level, scale = choose_read_level(tuple(slide.level_dimensions), side / size)
        plan = PatchPlan(
            region=region or Box(0, 0, sw, sh),
            mpp=mpp,
            patch_size=size,
            slide_mpp=float(slide.mpp),
            patch_l0=side,
            stride_l0=step,
            origin=origin,
            rows=int(rows.max()) + 1 if len(rows) else 1,
            cols=int(cols.max()) + 1 if len(cols) else 1,
            level=level,
            level_scale=scale,
            read_size=max(1, round(side / scale)),
            cells=np.stack([rows[keep], cols[keep]], axis=1).astype(np.int32),
            tissue=np.full(len(keep), np.nan, np.float32),
            min_tissue=float(self.meta.get("min_tissue", 0.0)),
        )
        return plan, keep


def read_features(path: Path | str) -> FeatureSet:
    """A features file (ours, CLAM's or TRIDENT's); ``ConfigError`` when it is not one."""
    h5py = _h5py()
    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            if "features" not in f or "coords" not in f:
                raise ConfigError(f"{p.name}: no 'features' and 'coords' datasets")
            feats = np.asarray(f["features"][()], np.float32)
            coords = np.asarray(f["coords"][()], np.int64)
            grid = {k: _plain(v) for k, v in f["coords"].attrs.items()}
            meta = {k: _plain(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise ConfigError(f"{p}: not a readable HDF5 features file ({exc})") from None
    if feats.ndim == 3 and feats.shape[0] == 1:  # CLAM's pt->h5 writes (1, N, D) sometimes
        feats = feats[0]
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(feats):
        raise ConfigError(
            f"{p.name}: coords of shape {coords.shape} do not match features {feats.shape}"
        )
    if "patch_size_level0" not in grid and "patch_size" in grid:  # CLAM: size at patch_level
        grid["patch_size_level0"] = float(grid["patch_size"]) * float(
            np.asarray(grid.get("downsample", [1.0])).ravel()[0]
        )
    return FeatureSet(p, feats, coords, grid, meta)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class FeatureWriter:
    """Writes one slide's features batch by batch into ``<out>.partial``; :meth:`close` renames it."""

    def __init__(self, out: Path, plan: PatchPlan, slide: Any, meta: dict[str, Any]) -> None:
        self.h5py = _h5py()
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        self.partial.unlink(missing_ok=True)
        self.plan, self.n = plan, len(plan)
        self.file = self.h5py.File(self.partial, "w")
        boxes = plan.boxes()
        coords = self.file.create_dataset("coords", data=boxes[:, :2].astype(np.int64))
        sw, sh = (int(v) for v in slide.dimensions)
        level0_mag = getattr(slide, "objective_power", None) or 10.0 / float(slide.mpp)
        ds = float(plan.level_scale)
        coords.attrs.update(
            {
                "patch_size": int(plan.patch_size),
                "patch_size_level0": int(round(plan.patch_l0)),
                "patch_level": int(plan.level),
                "downsample": [ds, ds],
                "level_dim": [round(sw / ds), round(sh / ds)],
                "overlap": max(0, int(round(plan.patch_l0 - plan.stride_l0))),
                "level0_magnification": float(level0_mag),
                "target_magnification": float(10.0 / plan.mpp),
                "level0_width": sw,
                "level0_height": sh,
                "name": str(meta.get("slide_id", "")),
            }
        )
        self.file.attrs.update({k: v for k, v in meta.items() if v is not None})
        self.file.attrs.update(
            {
                "format": FORMAT,
                "origin_x": float(plan.origin[0]),
                "origin_y": float(plan.origin[1]),
                "patch_l0": float(plan.patch_l0),
                "stride_l0": float(plan.stride_l0),
                "mpp": float(plan.mpp),
                "complete": False,
            }
        )
        self.features: Any = None
        self.written = 0

    def add(self, first: int, y: np.ndarray) -> None:
        y = np.asarray(y, np.float32).reshape(len(y), -1)
        if self.features is None:
            self.features = self.file.create_dataset(
                "features", shape=(self.n, y.shape[1]), dtype="float32"
            )
        self.features[first : first + len(y)] = y
        self.written += len(y)

    def close(self) -> Path:
        if self.features is None:  # no tissue: an empty (0, 0) table still marks the slide done
            self.file.create_dataset("features", shape=(0, 0), dtype="float32")
        self.file.attrs["complete"] = True
        self.file.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.file.close()
        os.replace(self.partial, self.out)
        return self.out

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.partial.unlink(missing_ok=True)


def slide_meta(slide: Any, card: Card, min_tissue: float, stain: str | None) -> dict[str, Any]:
    return {
        "model": card.name,
        "card_key": card_fingerprint(card),
        "slide_id": slide.slide_id,
        "slide_path": str(Path(slide.path).resolve()),
        "slide_size": [int(v) for v in slide.dimensions],
        "min_tissue": float(min_tissue),
        "stain_norm": stain or "none",
    }


def is_current(path: Path, slide: Any, card: Card) -> bool:
    """``path`` holds complete features of ``slide`` made by this card and these weights."""
    if not path.is_file():
        return False
    try:
        with _h5py().File(path, "r") as f:
            a = f.attrs
            return (
                bool(a.get("complete", False))
                and _plain(a.get("card_key")) == card_fingerprint(card)
                and [int(v) for v in a.get("slide_size", [])] == [int(v) for v in slide.dimensions]
            )
    except OSError:
        return False


@dataclass
class EmbedResult:
    slide: str
    path: Path
    status: str  # written | skipped | failed
    patches: int = 0
    seconds: float = 0.0
    reason: str = ""


def embed_slide(
    slide: Any,
    card: Card,
    out: Path,
    *,
    min_tissue: float = 0.25,
    max_patches: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **run_kw: Any,
) -> EmbedResult:
    """Embed every tissue patch of ``slide`` into ``out`` (a ``.h5`` file); skipped when ``out``
    already holds this card's complete features (unless ``overwrite``)."""
    t0 = time.perf_counter()
    if card.card.output != "embedding":
        raise ConfigError(
            f"model {card.name!r} has output {card.card.output!r}; `experts embed` needs a tile "
            "encoder (a card with output: embedding, e.g. uni or virchow from the catalog)"
        )
    if not overwrite and is_current(out, slide, card):
        with _h5py().File(out, "r") as f:
            n = int(f["coords"].shape[0])
        return EmbedResult(slide.slide_id, out, "skipped", n)
    c = card.card
    plan = plan_patches(
        slide,
        None,
        mpp=c.mpp,
        patch_size=c.patch_size,
        min_tissue=min_tissue,
        max_patches=max_patches,
    )
    stain = run_kw.get("stain")
    writer = FeatureWriter(out, plan, slide, slide_meta(slide, card, min_tissue, stain))
    try:
        run_patches(slide, card, None, plan=plan, sink=writer.add, progress=progress, **run_kw)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    remember_folder(card.name, out.parent)
    return EmbedResult(slide.slide_id, out, "written", len(plan), time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# where features are found again
# ---------------------------------------------------------------------------------------------
def _index_file() -> Path:
    return catalog.home() / "features.json"


def cache_folder(model: str) -> Path:
    """Where tools store features they compute themselves."""
    return catalog.home() / "features" / model


def remember_folder(model: str, folder: Path) -> None:
    """Record ``folder`` as holding ``model``'s features (atomic; a failure only loses the hint)."""
    path = _index_file()
    with _LOCK:
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            data = data if isinstance(data, dict) else {}
            folders = [str(f) for f in data.get(model, []) if isinstance(f, str)]
            entry = str(folder.resolve())
            data[model] = [entry] + [f for f in folders if f != entry][:31]
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".features-", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass


def folders(model: str) -> list[Path]:
    """Folders that may hold ``model``'s features: remembered ones first, then the tool cache."""
    try:
        data = json.loads(_index_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    listed = data.get(model, []) if isinstance(data, dict) else []
    return [Path(f) for f in listed if isinstance(f, str)] + [cache_folder(model)]


def find_cached(slide: Any, card: Card) -> FeatureSet | None:
    """The slide's features made by this card and weights, from any remembered folder."""
    for folder in folders(card.name):
        path = folder / f"{slide.slide_id}{SUFFIX}"
        if is_current(path, slide, card):
            try:
                return read_features(path)
            except ConfigError:
                continue
    return None


def slide_files(paths: list[Path]) -> list[Path]:
    """The slides named: files as given, folders searched (not recursively) for slide files."""
    out: list[Path] = []
    for p in paths:
        p = p.expanduser()
        if p.is_dir():
            out += sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SLIDE_SUFFIXES
            )
        elif p.exists():
            out.append(p)
        else:
            raise ConfigError(f"slide {p} does not exist")
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


__all__ = [
    "EmbedResult",
    "FeatureSet",
    "FeatureWriter",
    "cache_folder",
    "card_fingerprint",
    "embed_slide",
    "find_cached",
    "folders",
    "is_current",
    "read_features",
    "remember_folder",
    "slide_files",
]
