"""GIANT-style position guides drawn on a view.

Four vertical and four horizontal 1-px green lines (with alpha) at 1/5 .. 4/5 of the image, each
labelled with the LEVEL-0 coordinate of the pixel row or column it sits on; a red border; and the
box origin ``(x0, y0)`` in the top-left corner. Labels are white with a dark outline, in a
scalable TrueType font sized to the image (about 22 px at 1000 px, 12 px at 500 px).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from slidescout.core.types import Box

N_LINES = 4
LINE_RGBA = (0, 255, 0, 170)
BORDER_RGB = (255, 0, 0)
TEXT_RGB = (255, 255, 255)
OUTLINE_RGB = (0, 0, 0)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: scalable
    except TypeError:  # pragma: no cover - old Pillow
        return ImageFont.load_default()


def font_size(width: int, height: int) -> int:
    return int(min(40, max(12, round(max(width, height) * 0.022))))


def guide_positions(length: int, n: int = N_LINES) -> list[int]:
    """Output pixel positions of the n guide lines along a side of ``length`` px."""
    return [min(length - 1, round(i * length / (n + 1))) for i in range(1, n + 1)]


def guide_labels(box: Box, width: int, height: int, n: int = N_LINES) -> tuple[list[int], list[int]]:
    """Level-0 x of each vertical line and level-0 y of each horizontal line."""
    xs = [box.x + round(px * box.w / width) for px in guide_positions(width, n)]
    ys = [box.y + round(py * box.h / height) for py in guide_positions(height, n)]
    return xs, ys


def border_width(width: int, height: int) -> int:
    return max(2, round(max(width, height) / 500))


def draw_guides(image: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 uint8 showing level-0 ``box``) with guides drawn on it."""
    h, w = image.shape[:2]
    out = np.array(image[..., :3], dtype=np.uint8, copy=True)
    xs_px, ys_px = guide_positions(w), guide_positions(h)
    # 1-px lines alpha-blended in place (numpy: a full RGBA composite costs ~10x more)
    alpha = LINE_RGBA[3] / 255.0
    colour = np.array(LINE_RGBA[:3], dtype=np.float32) * alpha
    for px in xs_px:
        out[:, px] = (out[:, px] * (1 - alpha) + colour).astype(np.uint8)
    for py in ys_px:
        out[py, :] = (out[py, :] * (1 - alpha) + colour).astype(np.uint8)
    bw = border_width(w, h)
    out[:bw], out[-bw:], out[:, :bw], out[:, -bw:] = BORDER_RGB, BORDER_RGB, BORDER_RGB, BORDER_RGB
    img = Image.fromarray(out, "RGB")
    draw = ImageDraw.Draw(img)

    size = font_size(w, h)
    font = _font(size)
    stroke = max(1, size // 8)
    pad = bw + 3

    def text(xy: tuple[float, float], label: str) -> None:
        draw.text(xy, label, font=font, fill=TEXT_RGB, stroke_width=stroke, stroke_fill=OUTLINE_RGB)

    def text_size(label: str) -> tuple[int, int]:
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font, stroke_width=stroke)
        return int(right - left), int(bottom - top)

    corner = f"({box.x}, {box.y})"
    _, corner_h = text_size(corner)
    text((pad, pad), corner)

    xs_l0, ys_l0 = guide_labels(box, w, h)
    row = pad + corner_h + 4  # second row, clear of the corner label
    for px, value in zip(xs_px, xs_l0, strict=True):
        label = str(value)
        tw, _ = text_size(label)
        tx = px + 4 if px + 4 + tw < w - pad else px - 4 - tw
        text((tx, row), label)
    for py, value in zip(ys_px, ys_l0, strict=True):
        label = str(value)
        _, th = text_size(label)
        ty = py - th - 6 if py - th - 6 > row + corner_h else py + 4
        text((pad, ty), label)
    return np.asarray(img)
