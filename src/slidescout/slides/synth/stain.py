"""H&E stain model: stain densities (hematoxylin, eosin) to RGB by Beer-Lambert mixing.

Textures are stored as two densities in [0, 1]: ``h`` (hematoxylin) and ``e`` (eosin). A pixel's
optical density is ``h * h_max * H + e * e_max * E`` (``H``, ``E`` unit stain vectors) and its
colour is ``glass * exp(-OD)``. The renderer quantises both densities to 8 bits and looks the
colour up in a 65,536-entry table, so the whole stain model costs one ``maplut`` per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Optical-density directions (R, G, B), tuned to look like routine H&E on a scanner.
_H_VECTOR = (0.65, 0.72, 0.26)
_E_VECTOR = (0.12, 0.90, 0.42)
_GLASS = (242.0, 241.0, 244.0)


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Stain:
    """One slide's staining: stain vectors, full-scale optical densities and the glass colour."""

    h_vector: tuple[float, float, float] = _H_VECTOR
    e_vector: tuple[float, float, float] = _E_VECTOR
    h_max: float = 2.5  # optical density at h = 1
    e_max: float = 1.25  # optical density at e = 1
    glass: tuple[float, float, float] = _GLASS

    @classmethod
    def jittered(cls, rng: np.random.Generator, amount: float) -> Stain:
        """A stain varied as between labs and batches: ``amount`` 0 is the reference, 0.1 mild."""
        a = max(0.0, float(amount))
        h = _unit(np.array(_H_VECTOR) + rng.normal(0.0, 0.25 * a, 3)).clip(0.05)
        e = _unit(np.array(_E_VECTOR) + rng.normal(0.0, 0.25 * a, 3)).clip(0.05)
        glass = np.clip(
            np.array(_GLASS) + rng.normal(0.0, 1.0, 1) * 40 * a + rng.normal(0.0, 4 * a, 3),
            225,
            250,
        )
        return cls(
            h_vector=_triple(_unit(h)),
            e_vector=_triple(_unit(e)),
            h_max=2.5 * float(np.exp(rng.normal(0.0, a))),
            e_max=1.25 * float(np.exp(rng.normal(0.0, a))),
            glass=_triple(glass),
        )

    def rgb(self, h: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Float RGB (..., 3) in 0-255 of densities ``h``, ``e`` in [0, 1] (any equal shapes)."""
        h = np.clip(np.asarray(h, np.float32), 0.0, 1.0)[..., None]
        e = np.clip(np.asarray(e, np.float32), 0.0, 1.0)[..., None]
        od = h * self.h_max * np.asarray(self.h_vector, np.float32) + e * self.e_max * np.asarray(
            self.e_vector, np.float32
        )
        return np.asarray(self.glass, np.float32) * np.exp(-od)

    def lut(self) -> np.ndarray:
        """(256, 256, 3) uint8 colours indexed ``[h_byte, e_byte]``; ravelled, index ``h*256 + e``."""
        levels = np.arange(256, dtype=np.float32) / 255.0
        hh, ee = np.meshgrid(levels, levels, indexing="ij")
        return np.clip(np.rint(self.rgb(hh, ee)), 0, 255).astype(np.uint8)
