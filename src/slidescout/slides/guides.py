"""GIANT-style position guides drawn on a view.

Four vertical and four horizontal 1-px green lines (with alpha) at 1/5 .. 4/5 of the image, each
labelled with the LEVEL-0 coordinate of the pixel row or column it sits on; a red border; and the
box origin ``(x0, y0)`` in the top-left corner.

- ``style="scout"``: white labels with a dark outline in Pillow's scalable font at 2.2% of the
  long side; an opaque red border of at least 2 px.
- ``style="giant"``: as GIANT's ``util.crop_to_image_with_guides`` draws them (see
  :func:`draw_giant_guides`): DejaVu Sans at ``int(2%)`` of the short side on opaque black boxes,
  x labels along the top, y labels above their line, the origin at (2, 2); 1 px green lines and a
  1 px red border, opaque in the output (GIANT's alpha values are lost on its RGB output).
  ``tests/test_giant_guides.py`` compares the images with a reference drawn from GIANT's rules.
  One deliberate difference: at a box clamped to the slide edge GIANT labels the lines from the
  unclamped box, so its labels are wrong there; ours come from the box actually shown
  (docs/fidelity.md).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from slidescout.core.types import Box, GuideStyle

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


GIANT_LINE_ALPHA = 180
GIANT_BORDER_ALPHA = 180
GIANT_LABEL_BG_ALPHA = 150
_DEJAVU_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)


def dejavu_path() -> str | None:
    """DejaVu Sans (freely licensed): the system's copy, else matplotlib's bundled copy."""
    for p in _DEJAVU_PATHS:
        if os.path.exists(p):
            return p
    try:
        import matplotlib

        p = os.path.join(
            os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf"
        )
        return p if os.path.exists(p) else None
    except Exception:  # matplotlib missing or broken: fall back to Pillow's font
        return None


@lru_cache(maxsize=32)
def _dejavu(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = dejavu_path()
    if path is None:
        return _font(size)
    return ImageFont.truetype(path, size)


def giant_font_size(width: int, height: int) -> int:
    """2% of the image's short side, rounded down, at least 8 px (GIANT's ``int(0.02 * short)``)."""
    return max(8, int(0.02 * min(width, height)))


def font_size(width: int, height: int) -> int:
    return int(min(40, max(12, round(max(width, height) * 0.022))))


def guide_positions(length: int, n: int = N_LINES) -> list[int]:
    """Output pixel positions of the n guide lines along a side of ``length`` px."""
    return [min(length - 1, round(i * length / (n + 1))) for i in range(1, n + 1)]


def guide_labels(
    box: Box, width: int, height: int, n: int = N_LINES
) -> tuple[list[int], list[int]]:
    """Level-0 x of each vertical line and level-0 y of each horizontal line."""
    xs = [box.x + round(px * box.w / width) for px in guide_positions(width, n)]
    ys = [box.y + round(py * box.h / height) for py in guide_positions(height, n)]
    return xs, ys


def border_width(width: int, height: int) -> int:
    return max(2, round(max(width, height) / 500))


def giant_label_values(
    box: Box, width: int, height: int, n: int = N_LINES
) -> tuple[list[int], list[int]]:
    """GIANT's label of the line at ``frac`` (i/5): ``x0 + int(frac * width * down)`` with ``down``
    the long side of the box over the long side of the image; likewise for y. From the box shown
    (GIANT's own labels use the box asked for, which differs at a clamped edge)."""
    down = max(box.w, box.h) / max(width, height)
    fracs = [i / (n + 1) for i in range(1, n + 1)]
    return (
        [box.x + int(f * width * down) for f in fracs],
        [box.y + int(f * height * down) for f in fracs],
    )


def draw_giant_guides(image: np.ndarray, box: Box) -> np.ndarray:
    """GIANT's guides (``util.add_position_guides`` as ``crop_to_image_with_guides`` calls it).

    Drawn in this order, each opaque (GIANT draws RGBA colours onto an RGBA copy without
    blending, so their alpha only reaches its output's discarded alpha channel):
    1. for each x line at i/5 of the width: a 1 px green line at ``x = i*w/5``, then its label at
       ``(x + 3, 3)`` in white on a black box 3 px larger than the text on each side;
    2. the same for each y line at i/5 of the height, its label above the line, at
       ``(3, y - text height - 6)``;
    3. a 1 px red border; 4. the origin ``(x0, y0)`` at (2, 2) on a black box 4 px larger.
    Text: DejaVu Sans at :func:`giant_font_size`; values from :func:`giant_label_values`.
    """
    h, w = image.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8), "RGB").convert(
        "RGBA"
    )
    draw = ImageDraw.Draw(img, "RGBA")  # an RGBA image drawn in RGBA mode: pixels replaced
    font = _dejavu(giant_font_size(w, h))
    white, black = (255, 255, 255, 255), (0, 0, 0, GIANT_LABEL_BG_ALPHA)
    green = (0, 255, 0, GIANT_LINE_ALPHA)

    def label(xy: tuple[float, float], text: str, pad: int) -> None:
        left, top, right, bottom = draw.textbbox(xy, text, font=font)
        draw.rectangle([left - pad, top - pad, right + pad, bottom + pad], fill=black)
        draw.text(xy, text, font=font, fill=white)

    xs, ys = giant_label_values(box, w, h)
    for i, value in enumerate(xs, 1):
        x = i / (N_LINES + 1) * w
        draw.line([(x, 0), (x, h)], fill=green, width=1)
        label((x + 3, 3), str(value), 3)
    for j, value in enumerate(ys, 1):
        y = j / (N_LINES + 1) * h
        draw.line([(0, y), (w, y)], fill=green, width=1)
        _, top, _, bottom = draw.textbbox((0, 0), str(value), font=font)
        label((3, y - (bottom - top) - 6), str(value), 3)
    draw.rectangle([(0, 0), (w - 1, h - 1)], outline=(255, 0, 0, GIANT_BORDER_ALPHA), width=1)
    label((2, 2), f"({box.x}, {box.y})", 4)
    return np.asarray(img.convert("RGB"))


def draw_guides(image: np.ndarray, box: Box, style: GuideStyle = "scout") -> np.ndarray:
    """A copy of ``image`` (H, W, 3 uint8 showing level-0 ``box``) with guides drawn on it."""
    if style == "giant":
        return draw_giant_guides(image, box)
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
