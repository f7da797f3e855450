"""Stain and colour summary of a region: haematoxylin and eosin optical densities, colour
statistics, background, pen ink and very dark areas, with short notes on what looks wrong.

Optical density is ``-log10(I / 255)`` per channel, unmixed into H, E and a residual with the
Ruifrok & Johnston stain vectors (least squares), so the numbers are in OD units: on a routine
H&E, tissue averages roughly H 0.2-0.6 and E 0.2-0.5; nuclei reach H ≈ 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from slidescout.slides.tissue import tissue_mask

_H = np.array([0.650, 0.704, 0.286])
_E = np.array([0.072, 0.990, 0.105])
_R = np.cross(_H, _E)
_UNMIX = np.linalg.inv(
    np.stack([_H / np.linalg.norm(_H), _E / np.linalg.norm(_E), _R / np.linalg.norm(_R)])
)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) OD per channel, ``-log10(I/255)``, with I floored at 1."""
    return -np.log10(np.maximum(rgb[..., :3].astype(np.float32), 1.0) / 255.0)


def unmix(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) stain densities: haematoxylin, eosin, residual (OD units, clipped at 0)."""
    return np.maximum(optical_density(rgb) @ _UNMIX.astype(np.float32), 0.0)


@dataclass
class StainStats:
    tissue_fraction: float
    background_fraction: float
    h_od_mean: float | None  # over tissue
    e_od_mean: float | None
    h_e_ratio: float | None
    h_od_p95: float | None
    tissue_rgb: list[float] | None
    background_rgb: list[float] | None
    background_brightness: float | None
    saturation_mean: float | None
    pen_fraction: dict[str, float] = field(default_factory=dict)
    dark_fraction: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)

        def rnd(v):
            if isinstance(v, float):
                return round(v, 4)
            if isinstance(v, list):
                return [rnd(x) for x in v]
            if isinstance(v, dict):
                return {k: rnd(x) for k, x in v.items()}
            return v

        return {k: rnd(v) for k, v in d.items()}

    def summary(self) -> str:
        parts = [f"tissue covers {self.tissue_fraction:.0%} of the region"]
        if self.h_od_mean is not None:
            parts.append(
                f"haematoxylin OD {self.h_od_mean:.2f} (95th percentile {self.h_od_p95:.2f}), "
                f"eosin OD {self.e_od_mean:.2f}, H:E ratio {self.h_e_ratio:.2f}"
            )
        if self.tissue_rgb is not None:
            r, g, b = self.tissue_rgb
            parts.append(
                f"mean tissue colour RGB ({r:.0f}, {g:.0f}, {b:.0f}), saturation {self.saturation_mean:.2f}"
            )
        if self.background_rgb is not None:
            parts.append(f"background brightness {self.background_brightness:.0f}/255")
        text = "; ".join(parts) + "."
        text += (
            " Notes: " + " ".join(self.notes)
            if self.notes
            else " No staining or artefact problems seen."
        )
        return text


def _pen_masks(img: np.ndarray) -> dict[str, np.ndarray]:
    r, g, b = (img[..., i].astype(np.int16) for i in range(3))
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn) / np.maximum(mx, 1)
    return {
        "green": (g > r + 25) & (g > b + 10) & (sat > 0.2),  # H&E is never green
        "blue": (b > r + 60) & (g >= r) & (sat > 0.3),  # ink blue, not haematoxylin purple (r > g)
        "black": mx < 50,
    }


def stain_stats(rgb: np.ndarray) -> StainStats:
    """Summary of an RGB region (any size; sample it down first for speed)."""
    img = np.ascontiguousarray(rgb[..., :3])
    pens = _pen_masks(img)
    pen_any = pens["green"] | pens["blue"] | pens["black"]
    tissue = tissue_mask(img) & ~pen_any
    n = img.shape[0] * img.shape[1]
    tf = float(tissue.sum() / n) if n else 0.0
    f = img.astype(np.float32)
    brightness = f.mean(axis=2)
    background = (~tissue) & (~pen_any) & (brightness > 170)
    bf = float(background.sum() / n) if n else 0.0
    stats = StainStats(
        tissue_fraction=tf,
        background_fraction=bf,
        h_od_mean=None,
        e_od_mean=None,
        h_e_ratio=None,
        h_od_p95=None,
        tissue_rgb=None,
        background_rgb=None,
        background_brightness=None,
        saturation_mean=None,
        pen_fraction={k: float(v.sum() / n) for k, v in pens.items()},
        dark_fraction=float((brightness < 60).sum() / n) if n else 0.0,
    )
    if tissue.sum() >= 20:
        dens = unmix(img[tissue])
        h, e = dens[:, 0], dens[:, 1]
        stats.h_od_mean, stats.e_od_mean = float(h.mean()), float(e.mean())
        stats.h_od_p95 = float(np.percentile(h, 95))
        stats.h_e_ratio = stats.h_od_mean / max(stats.e_od_mean, 1e-3)
        stats.tissue_rgb = [float(v) for v in f[tissue].mean(axis=0)]
        mx, mn = f[tissue].max(axis=1), f[tissue].min(axis=1)
        stats.saturation_mean = float(((mx - mn) / np.maximum(mx, 1)).mean())
    if background.sum() >= 20:
        stats.background_rgb = [float(v) for v in f[background].mean(axis=0)]
        stats.background_brightness = float(np.mean(stats.background_rgb))
    stats.notes = _notes(stats)
    return stats


def _notes(s: StainStats) -> list[str]:
    notes = []
    if s.tissue_fraction < 0.05:
        notes.append("The region is almost all background (glass); move to tissue.")
    if s.h_od_mean is not None:
        if s.h_od_p95 is not None and s.h_od_p95 < 0.25:
            notes.append(
                "Haematoxylin is faint (weak nuclear staining): nuclear detail may be unreliable."
            )
        elif s.h_od_mean > 0.8:
            notes.append("Haematoxylin is heavy (dark, overstained nuclei/background).")
        if s.e_od_mean is not None and s.e_od_mean < 0.08:
            notes.append("Eosin is faint (pale cytoplasm and stroma).")
        elif s.e_od_mean is not None and s.e_od_mean > 0.9:
            notes.append("Eosin is heavy.")
        if s.h_e_ratio is not None and s.h_e_ratio > 1.5:
            notes.append(
                "Haematoxylin dominates (basophilic: cellular or nucleus-rich tissue, or overstaining)."
            )
        if s.saturation_mean is not None and s.saturation_mean < 0.12:
            notes.append("Colours are washed out (low saturation): faded stain or a pale scan.")
    if s.background_brightness is not None and s.background_brightness < 215:
        notes.append(
            f"The background is grey ({s.background_brightness:.0f}/255): uneven illumination, "
            "a dirty slide or mounting medium."
        )
    pen = {k: v for k, v in s.pen_fraction.items() if v > 0.002 and k != "black"}
    if pen:
        notes.append(
            "Pen or marker ink: "
            + ", ".join(f"{k} {v:.1%}" for k, v in pen.items())
            + " of the region."
        )
    if s.pen_fraction.get("black", 0.0) > 0.005:
        notes.append(
            f"Very dark areas cover {s.pen_fraction['black']:.1%} (black ink, folds or debris)."
        )
    return notes


__all__ = ["StainStats", "optical_density", "stain_stats", "unmix"]
