"""Shared helpers for the expert tests: painted slides, tiny models saved to disk with a card.

(Imported by the ``test_experts_*`` modules; it holds no tests itself.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from slidefactory import make_tiff

RED = (225, 60, 90)
BLUE = (70, 80, 215)
CELL = 448  # level-0 px of one 224 px patch at 0.5 µm/px on a 0.25 µm/px slide


def checker_pattern(cell: int = CELL):
    """Red and blue squares of ``cell`` level-0 px, red where (row + col) is even."""

    def pattern(x0: int, y0: int, w: int, h: int, width: int, height: int) -> np.ndarray:
        ys = (np.arange(y0, y0 + h) // cell)[:, None]
        xs = (np.arange(x0, x0 + w) // cell)[None, :]
        red = (ys + xs) % 2 == 0
        out = np.empty((h, w, 3), np.uint8)
        out[red] = RED
        out[~red] = BLUE
        return out

    return pattern


def red_fraction(box, cell: int = CELL) -> float:
    """Share of a level-0 box painted red by :func:`checker_pattern`."""
    x, y, w, h = (int(v) for v in box)
    ys = (np.arange(y, y + h) // cell)[:, None]
    xs = (np.arange(x, x + w) // cell)[None, :]
    return float(((ys + xs) % 2 == 0).mean())


def redness_to_fraction(value: float) -> float:
    """Mean red channel (0-1) of a patch -> its red share, given the two colours."""
    lo, hi = BLUE[0] / 255, RED[0] / 255
    return (value - lo) / (hi - lo)


def blobs_pattern(blobs, nuclei_every: int = 0, radius: int = 12):
    """White glass with pink ellipses ``(cx, cy, rx, ry)``; optional purple discs on a grid."""

    def pattern(x0: int, y0: int, w: int, h: int, width: int, height: int) -> np.ndarray:
        yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w]
        out = np.full((h, w, 3), 245, np.uint8)
        inside = np.zeros((h, w), bool)
        for cx, cy, rx, ry in blobs:
            inside |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        out[inside] = (235, 160, 200)
        if nuclei_every:
            gx = (xx % nuclei_every) - nuclei_every // 2
            gy = (yy % nuclei_every) - nuclei_every // 2
            out[inside & (gx * gx + gy * gy <= radius * radius)] = (95, 50, 140)
        return out

    return pattern


def checker_slide(path: Path, cols: int = 6, rows: int = 4, cell: int = CELL) -> Path:
    return make_tiff(
        path, cols * cell, rows * cell, mpp=0.25, pattern=checker_pattern(cell), quality=95
    )


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def redness_module():
    import torch
    from torch import nn

    class Redness(nn.Module):
        """Mean of the first input channel: with mean 0 / std 1 in the card, the red level 0-1."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0].mean(dim=(1, 2)).unsqueeze(1)

    return Redness().eval()


def red_classifier_module():
    import torch
    from torch import nn

    class RedClassifier(nn.Module):
        """Logits for (blue, red) from the mean red level (threshold halfway between the colours)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = x[:, 0].mean(dim=(1, 2))
            mid = (225.0 + 70.0) / 2 / 255
            return torch.stack([(mid - r) * 40, (r - mid) * 40], dim=1)

    return RedClassifier().eval()


def save_torchscript(module, path: Path, size: int = 32) -> Path:
    import torch

    scripted = torch.jit.trace(module, torch.zeros(2, 3, size, size))
    torch.jit.save(scripted, str(path))
    return path


def write_card(folder: Path, name: str, weights: str, *, suffix: str = ".yaml", **fields) -> Path:
    card = {
        "name": name,
        "path": weights,
        "mpp": 0.5,
        "patch_size": 224,
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
        **fields,
    }
    path = folder / f"{name}{suffix}"
    if suffix == ".toml":
        lines = []
        for k, v in card.items():
            if isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            elif isinstance(v, list):
                lines.append(
                    f"{k} = [{', '.join(repr(x) if not isinstance(x, str) else chr(34) + x + chr(34) for x in v)}]"
                )
            else:
                lines.append(f"{k} = {v}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    return path


def redness_card(folder: Path, name: str = "redness", **fields) -> Path:
    weights = save_torchscript(redness_module(), folder / f"{name}.pt")
    defaults = {
        "format": "torchscript",
        "labels": ["red"],
        "output": "score",
        "score_range": [0.0, 1.0],
    }
    return write_card(folder, name, weights.name, **{**defaults, **fields})


def classifier_card(folder: Path, name: str = "redclass", **fields) -> Path:
    weights = save_torchscript(red_classifier_module(), folder / f"{name}.pt")
    defaults = {
        "format": "torchscript",
        "labels": ["blue", "red"],
        "output": "logits",
        "heatmap_label": "red",
    }
    return write_card(folder, name, weights.name, **{**defaults, **fields})
