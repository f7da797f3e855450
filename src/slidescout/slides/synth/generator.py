"""``generate_slide``: one synthetic H&E slide with its ground truth.

Writes ``<id>.tiff`` (pyramidal JPEG tiled TIFF, 256-px tiles, resolution tags giving the mpp),
``<id>.geojson`` (lesion polygons in level-0 pixels) and ``<id>.json`` (:class:`SynthTruth`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyvips

from slidescout.errors import ConfigError
from slidescout.slides.synth.colour import base_means, match_colour
from slidescout.slides.synth.layout import (
    Layout,
    Region,
    add_holes,
    lesion_classes,
    place_lesions,
    tissue_layout,
)
from slidescout.slides.synth.render import compose, save_tiff
from slidescout.slides.synth.stain import Stain
from slidescout.slides.synth.textures import CLASSES, class_texture
from slidescout.slides.synth.truth import QUADRANTS, LesionTruth, SynthTruth, TissueTruth

DEFAULT_SIZE = (40000, 30000)
DEMO_SIZE = (16000, 12000)
MIN_SIDE = 1024
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class SynthSlide:
    """A generated slide: its files and ground truth."""

    slide_id: str
    path: Path  # the .tiff
    geojson: Path
    truth_path: Path
    truth: SynthTruth
    seconds: float


def check_params(
    slide_id: str,
    size: tuple[int, int],
    mpp: float,
    n_lesions: int | None,
    lesion_size: tuple[float, float] | None,
    stain_jitter: float,
    primary: str | None,
    n_pieces: int | None,
) -> tuple[int, int]:
    if not _ID.match(slide_id):
        raise ConfigError(f"bad slide id {slide_id!r}: use letters, digits, '.', '_' or '-'")
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"bad slide size {size!r}: expected (width, height) in pixels") from None
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ConfigError(
            f"slide size {w}x{h} is too small: each side must be at least {MIN_SIDE} px"
        )
    if w * h > 4e10:
        raise ConfigError(f"slide size {w}x{h} is too large (over 40 gigapixels)")
    if not 0.05 <= mpp <= 10:
        raise ConfigError(f"mpp {mpp} is out of range: use 0.05-10 microns per pixel (0.25 is 40x)")
    if n_lesions is not None and not 0 <= n_lesions <= 12:
        raise ConfigError(f"n_lesions {n_lesions} is out of range: use 0-12")
    if lesion_size is not None:
        lo, hi = lesion_size
        if not 0 < lo <= hi:
            raise ConfigError(
                f"bad lesion size {lesion_size!r}: expected (min, max) diameters in level-0 px"
            )
    if not 0 <= stain_jitter <= 1:
        raise ConfigError(
            f"stain_jitter {stain_jitter} is out of range: use 0 (none) to 1 (wild); 0.1 is mild"
        )
    if primary is not None and primary not in CLASSES:
        raise ConfigError(f"unknown primary class {primary!r}: use one of {', '.join(CLASSES)}")
    if n_pieces is not None and not 1 <= n_pieces <= 4:
        raise ConfigError(f"n_pieces {n_pieces} is out of range: use 1-4")
    return w, h


def default_lesion_size(width: int, height: int, mpp: float) -> tuple[float, float]:
    """Lesion diameters (level-0 px): 6-11% of the short side and at least 120-200 microns, but
    never more than 12-20% of the short side (small slides)."""
    short = min(width, height)
    lo = min(max(0.06 * short, 120 / mpp), 0.12 * short)
    hi = min(max(0.11 * short, 200 / mpp), 0.20 * short)
    return lo, hi


def _quadrant(box: tuple[int, int, int, int], width: int, height: int) -> str | None:
    x, y, w, h = box
    col = 0 if x + w <= width / 2 else 1 if x >= width / 2 else None
    row = 0 if y + h <= height / 2 else 1 if y >= height / 2 else None
    if col is None or row is None:
        return None
    return QUADRANTS[row * 2 + col]


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2.0)


def _piece_of(les: Region, layout: Layout) -> str | None:
    cx, cy = les.polygon.mean(axis=0)
    best, dist = None, float("inf")
    for piece in layout.pieces:
        px, py = piece.polygon.mean(axis=0)
        d = float(np.hypot(cx - px, cy - py))
        if d < dist:
            best, dist = piece.id, d
    return best


def _clip_box(poly: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    x0 = int(np.floor(max(0.0, poly[:, 0].min())))
    y0 = int(np.floor(max(0.0, poly[:, 1].min())))
    x1 = int(np.ceil(min(float(width), poly[:, 0].max())))
    y1 = int(np.ceil(min(float(height), poly[:, 1].max())))
    return x0, y0, x1 - x0, y1 - y0


def _geojson(layout: Layout, lesions: list[LesionTruth]) -> dict:
    features = []
    for region, truth in zip(layout.lesions, lesions, strict=True):
        ring = np.round(region.polygon).astype(int)
        ring[:, 0] = ring[:, 0].clip(0, layout.width)
        ring[:, 1] = ring[:, 1].clip(0, layout.height)
        coords = ring.tolist() + [ring[0].tolist()]
        features.append(
            {
                "type": "Feature",
                "id": truth.id,
                "geometry": {"type": "Polygon", "coordinates": [coords]},
                "properties": {
                    "id": truth.id,
                    "class": truth.cls,
                    "box": list(truth.box),
                    "objectType": "annotation",
                    "classification": {"name": truth.cls},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _levels(path: Path) -> list[tuple[int, int]]:
    first = pyvips.Image.new_from_file(str(path), access="sequential")
    pages = first.get("n-pages") if first.get_typeof("n-pages") else 1
    n = pages if isinstance(pages, int) else 1
    out = []
    for page in range(n):
        im = pyvips.Image.new_from_file(str(path), page=page, access="sequential")
        out.append((im.width, im.height))
    return out


def _image(
    layout: Layout,
    primary: str,
    stain: Stain,
    r_tex: np.random.Generator,
    r_render: np.random.Generator,
    mpp: float,
) -> tuple[pyvips.Image, float, float]:
    """The lazy slide image, the colour-matching residual and the lesions' nuclear scale. The
    float texture arrays die here; the pipeline keeps only the 8-bit tiles."""
    ppu = 1.0 / mpp
    # tiles of ~0.35 mm; a small slide (in microns) gets smaller tiles, faster to make
    tile = float(np.clip(max(layout.width, layout.height) * mpp / 3000.0, 0.5, 1.0))
    textures = {"normal": class_texture("normal", r_tex, ppu, tile)}
    residual, kn = 0.0, 1.0
    if primary != "normal":
        tex = class_texture(primary, r_tex, ppu, tile)
        targets = base_means(textures["normal"], stain, r_tex)
        residual = match_colour(tex, stain, targets, r_tex)
        textures[primary] = tex
        kn = tex.nuclear_scale
    return compose(layout, textures, stain, r_render, mpp), residual, kn


def generate_slide(
    out_dir: str | Path,
    slide_id: str,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    n_lesions: int | None = None,
    lesion_size: tuple[float, float] | None = None,
    stain_jitter: float = 0.1,
    mpp: float = 0.25,
    primary: str | None = None,
    n_pieces: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> SynthSlide:
    """Generate one synthetic H&E slide and its ground truth in ``out_dir``.

    Args:
        out_dir: folder for ``<slide_id>.tiff``, ``.geojson`` and ``.json`` (created if missing).
        slide_id: file stem; letters, digits, ``.``, ``_``, ``-``.
        size: level-0 ``(width, height)`` in pixels.
        seed: everything (layout, textures, stain, noise) follows from it.
        n_lesions: number of lesions (primary class plus normal regions); default 2-4 at random.
        lesion_size: ``(min, max)`` lesion diameter in level-0 px; default from the slide size.
        stain_jitter: stain variation between slides (0 none, 0.1 mild).
        mpp: microns per pixel at level 0 (0.25 is a 40x scan).
        primary: class of the most significant finding (``tumor``, ``lymphocytes``, ``necrosis``,
            or ``normal`` for none); default one at random.
        n_pieces: number of tissue pieces (1-4); default at random.
        progress: called with the fraction written (0-1) while the TIFF is saved.
    """
    t0 = time.perf_counter()
    if int(seed) < 0:
        raise ConfigError(f"seed {seed} is negative: use 0 or more")
    width, height = check_params(
        slide_id, size, mpp, n_lesions, lesion_size, stain_jitter, primary, n_pieces
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    streams = np.random.SeedSequence(int(seed)).spawn(4)
    r_layout, r_stain, r_tex, r_render = (np.random.default_rng(s) for s in streams)
    layout, diameters = _plan_layout(
        r_layout, width, height, mpp, primary, n_lesions, lesion_size, n_pieces
    )
    stain = Stain.jittered(r_stain, stain_jitter)
    image, residual, kn = _image(layout, layout.primary, stain, r_tex, r_render, mpp)
    tiff = _save_slide(image, out, slide_id, seed, mpp, progress)
    lesions = _lesion_truths(layout, width, height)
    seconds = time.perf_counter() - t0
    truth = SynthTruth(
        slide_id=slide_id,
        image=tiff.name,
        annotations=f"{slide_id}.geojson",
        width=width,
        height=height,
        mpp=mpp,
        objective_power=_power(mpp),
        levels=_levels(tiff),
        seed=int(seed),
        params=_params_record(
            (width, height), n_lesions, lesion_size, stain_jitter, mpp, n_pieces, primary
        )
        | {"lesion_diameters": [float(diameters[0]), float(diameters[1])]},
        primary=layout.primary,
        lesions=lesions,
        tissue=_tissue_truths(layout, width, height),
        stain=_stain_record(stain, kn),
        colour_residual=round(residual, 2),
    )
    geojson = out / truth.annotations
    geojson.write_text(json.dumps(_geojson(layout, lesions)), encoding="utf-8")
    truth_file = out / f"{slide_id}.json"
    truth_file.write_text(truth.dump(), encoding="utf-8")
    return SynthSlide(
        slide_id=slide_id,
        path=tiff,
        geojson=geojson,
        truth_path=truth_file,
        truth=truth,
        seconds=seconds,
    )


def _plan_layout(
    r_layout: np.random.Generator,
    width: int,
    height: int,
    mpp: float,
    primary: str | None,
    n_lesions: int | None,
    lesion_size: tuple[float, float] | None,
    n_pieces: int | None,
) -> tuple[Layout, tuple[float, float]]:
    """Draw what was left to chance (primary class, pieces, lesion count), lay out the tissue,
    lesions and holes; returns the layout (its ``primary`` set) and the lesion diameter range."""
    if primary is None:
        primary = str(r_layout.choice(CLASSES))
    if n_pieces is None:
        n_pieces = int(r_layout.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.2, 0.2]))
    if n_lesions is None:
        n_lesions = int(r_layout.integers(2, 5))
    diameters = lesion_size or default_lesion_size(width, height, mpp)
    layout = tissue_layout(r_layout, width, height, n_pieces, mpp)
    classes = lesion_classes(r_layout, primary, n_lesions)
    single = primary != "normal" and classes.count(primary) == 1
    place_lesions(
        r_layout, layout, classes, (float(diameters[0]), float(diameters[1])), want_quadrant=single
    )
    add_holes(r_layout, layout, mpp)
    placed = {les.cls for les in layout.lesions}
    if primary != "normal" and primary not in placed:
        primary = "normal"  # the abnormal lesion did not fit: the slide is normal
    layout.primary = primary
    return layout, (float(diameters[0]), float(diameters[1]))


def _power(mpp: float) -> float:
    return round(10.0 / mpp, 2)


def _save_slide(
    image: pyvips.Image,
    out: Path,
    slide_id: str,
    seed: int,
    mpp: float,
    progress: Callable[[float], None] | None,
) -> Path:
    """Write the pyramidal TIFF atomically (a ``.part`` file renamed into place)."""
    tiff = out / f"{slide_id}.tiff"
    tmp = out / f".{slide_id}.tiff.part"
    power = _power(mpp)
    # Aperio-style keys (AppMag, MPP) as scanners write them: slidescout, QuPath and other
    # readers take the objective power from AppMag; the resolution tags carry the mpp
    description = (
        f"SynthPath synthetic H&E slide {slide_id}; seed={seed}; mpp={mpp}; "
        f"objective_power={power:g}|AppMag = {power:g}|MPP = {mpp:g}"
    )
    save_tiff(image, str(tmp), mpp, description, progress)
    os.replace(tmp, tiff)
    return tiff


def _lesion_truths(layout: Layout, width: int, height: int) -> list[LesionTruth]:
    out = []
    for region in layout.lesions:
        box = _clip_box(region.polygon, width, height)
        out.append(
            LesionTruth(
                id=region.id,
                cls=region.cls,
                box=box,
                area=round(_area(region.polygon), 1),
                piece=_piece_of(region, layout),
                quadrant=_quadrant(box, width, height),
            )
        )
    return out


def _tissue_truths(layout: Layout, width: int, height: int) -> list[TissueTruth]:
    return [
        TissueTruth(
            id=p.id, box=_clip_box(p.polygon, width, height), area=round(_area(p.polygon), 1)
        )
        for p in layout.pieces
    ]


def _params_record(
    size: tuple[int, int],
    n_lesions: int | None,
    lesion_size: tuple[float, float] | None,
    stain_jitter: float,
    mpp: float,
    n_pieces: int | None,
    primary: str | None,
) -> dict[str, Any]:
    """The parameters as the caller gave them (``None`` where left to the seed)."""
    return {
        "size": list(size),
        "n_lesions": n_lesions,
        "lesion_size": None if lesion_size is None else [float(v) for v in lesion_size],
        "stain_jitter": stain_jitter,
        "mpp": mpp,
        "n_pieces": n_pieces,
        "primary": primary,
    }


def _stain_record(stain: Stain, kn: float) -> dict[str, Any]:
    return {
        "h_vector": list(stain.h_vector),
        "e_vector": list(stain.e_vector),
        "h_max": stain.h_max,
        "e_max": stain.e_max,
        "glass": list(stain.glass),
        "lesion_nuclear_scale": kn,
    }
