"""GeoJSON in level-0 pixel coordinates, as QuPath imports it (File > Import objects):

- nuclei and other instances: ``objectType: detection``, a ``Polygon`` outline, a
  ``classification`` (name and RGB colour) when the model types them, ``measurements``;
- mask classes: ``objectType: annotation``, one polygon per connected region;
- classifier grids: ``objectType: tile``, one square per patch, classified by the most probable
  class, with each class probability as a measurement.

Polygons are traced on the label image at the model's resolution (scikit-image's marching squares
at the 0.5 level, so a ring runs between pixel centres), simplified to within half a pixel, and
mapped to level 0: ``x0 + (col + 0.5) * f`` where ``f`` is level-0 px per model px. Files are
written feature by feature (a slide's million nuclei never sit in memory as one document) and
renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from slidescout.tools.experts import heatmap as hm


def rings(mask: np.ndarray, tolerance: float = 0.5) -> list[np.ndarray]:
    """Outer rings (k, 2: row, col) of the parts of a binary ``mask``, largest first."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    out = []
    for c in find_contours(padded, 0.5):
        c = approximate_polygon(c - 1.0, tolerance=tolerance)
        if len(c) >= 4:
            out.append(c)
    out.sort(key=lambda c: -abs(_area(c)))
    return out


def _area(c: np.ndarray) -> float:
    y, x = c[:, 0], c[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def to_level0(ring: np.ndarray, origin: tuple[float, float], f: float) -> list[list[float]]:
    """A (row, col) ring at the model's resolution as closed ``[[x, y], ...]`` level-0 px."""
    xy = [
        [round(origin[0] + (c + 0.5) * f, 2), round(origin[1] + (r + 0.5) * f, 2)] for r, c in ring
    ]
    if xy[0] != xy[-1]:
        xy.append(xy[0])
    return xy


def feature(
    ring: list[list[float]],
    object_type: str,
    name: str | None = None,
    colour: tuple[int, int, int] | None = None,
    measurements: dict[str, float] | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"objectType": object_type}
    if name is not None:
        props["classification"] = {"name": name, "color": list(colour or (0, 160, 0))}
    if measurements:
        props["measurements"] = {k: float(v) for k, v in measurements.items()}
    return {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
    }


def instance_features(
    labels: np.ndarray,
    table: dict[str, np.ndarray],
    origin: tuple[float, float],
    f: float,
    names: list[str],
    keep: np.ndarray | None = None,
) -> Iterator[dict[str, Any]]:
    """One detection per instance of ``labels`` (rows of ``table`` where ``keep``), measured."""
    from scipy import ndimage as ndi

    slices = ndi.find_objects(labels)
    typed = "type" in table and bool(names)
    for i, lab in enumerate(table["label"]):
        if keep is not None and not keep[i]:
            continue
        sl = slices[int(lab) - 1]
        if sl is None:
            continue
        sub = labels[sl] == lab
        found = rings(sub)
        if not found:
            continue
        r0, c0 = sl[0].start, sl[1].start
        ring = to_level0(found[0] + (r0, c0), origin, f)
        name, colour = None, None
        if typed:
            t = int(table["type"][i])
            colour, _ = hm.class_colour(t)
            name = names[t] if t < len(names) else str(t)
        m = {
            "area_um2": table["area_um2"][i],
            "perimeter_um": table["perimeter_um"][i],
            "eccentricity": table["eccentricity"][i],
            "solidity": table["solidity"][i],
        }
        yield feature(ring, "detection", name, colour, m)


def class_features(
    classes: np.ndarray,
    covered: np.ndarray,
    origin: tuple[float, float],
    f: float,
    names: list[str],
    background: str | None,
    core: tuple[slice, slice] | None = None,
) -> Iterator[dict[str, Any]]:
    """One annotation per connected region of each non-background class of a mask."""
    from scipy import ndimage as ndi
    from skimage.measure import label

    for k, name in enumerate(names):
        if name == background:
            continue
        mask = (classes == k) & covered
        if core is not None:
            inside = np.zeros_like(mask)
            inside[core] = True
            mask &= inside
        parts = np.asarray(label(mask, connectivity=1))
        for j, sl in enumerate(ndi.find_objects(parts), start=1):
            if sl is None:
                continue
            sub = parts[sl] == j
            found = rings(sub)
            if not found:
                continue
            ring = to_level0(found[0] + (sl[0].start, sl[1].start), origin, f)
            colour, _ = hm.class_colour(k)
            yield feature(ring, "annotation", name, colour, {"area_px": float(sub.sum())})


def tile_features(
    boxes: np.ndarray, probs: np.ndarray | None, values: np.ndarray | None, names: list[str]
) -> Iterator[dict[str, Any]]:
    """One tile per patch box (x, y, w, h): classified by its most probable class."""
    for i, (x, y, w, h) in enumerate(boxes.tolist()):
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
        if probs is not None:
            k = int(probs[i].argmax())
            colour, _ = hm.class_colour(k)
            m = {f"P({n})": float(p) for n, p in zip(names, probs[i], strict=False)}
            yield feature(ring, "tile", names[k] if k < len(names) else str(k), colour, m)
        else:
            v = {"score": float(values[i])} if values is not None else None
            yield feature(ring, "tile", None, None, v)


class GeoJSONWriter:
    """A FeatureCollection streamed to ``<path>.partial``, renamed to ``path`` on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.file: IO[str] = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115
        self.file.write('{"type": "FeatureCollection", "features": [\n')
        self.count = 0

    def add(self, feats: Any) -> int:
        n = 0
        for feat in feats:
            self.file.write((",\n" if self.count else "") + json.dumps(feat, separators=(",", ":")))
            self.count += 1
            n += 1
        return n

    def close(self) -> Path:
        self.file.write("\n]}\n")
        self.file.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


__all__ = [
    "GeoJSONWriter",
    "class_features",
    "feature",
    "instance_features",
    "rings",
    "tile_features",
    "to_level0",
]
