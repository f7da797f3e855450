"""Images of the HTML report: each stored once, downscaled so the whole file stays within a size.

The report is first rendered with placeholders (``@@img:KEY@@``) where images go. :func:`embed`
then encodes every distinct image once, at a long side chosen so that all of them fit the byte
budget (thumbnails of the slide get twice the side of the timeline images), puts them in one JSON
block that the page's script reads, and points each ``<img>`` or SVG ``<image>`` at its key. Full-size
images stay in the run's ``blobs/`` folder (``slidescout view RUN`` shows them).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from slidescout.core.imaging import encode_image

__all__ = ["DEFAULT_MAX_BYTES", "EmbeddedImages", "Source", "embed", "fit_image", "placeholder"]

DEFAULT_MAX_BYTES = 50_000_000
START_SIDE = 512  # long side of timeline images when the budget allows (thumbnails: twice that, at most 1024)
MIN_SIDE = 96
_TOKEN = re.compile(r'(src|href)="@@img:([A-Za-z0-9_.-]+)@@"')


def placeholder(key: str) -> str:
    """The text that stands for an image until :func:`embed` runs."""
    return f"@@img:{key}@@"


@dataclass
class Source:
    """An image to embed: its bytes (loaded on demand), and whether it is a slide thumbnail."""

    load: Callable[[], tuple[bytes, str] | None]
    thumbnail: bool = False


@dataclass
class EmbeddedImages:
    """What :func:`embed` did: the side used, bytes of images, and how many were downscaled."""

    side: int
    image_bytes: int
    n_images: int
    n_downscaled: int


def fit_image(data: bytes, media: str, side: int) -> tuple[bytes, str, bool]:
    """``data`` when its long side is at most ``side``; else a downscaled JPEG (PNG when it has alpha)."""
    opened = Image.open(io.BytesIO(data))
    if max(opened.size) <= side:
        return data, media, False
    if opened.format == "JPEG":
        opened.draft("RGB", (side, side))  # DCT scaling: decode a smaller image directly
    img: Image.Image = opened
    alpha = img.mode in ("RGBA", "LA", "P") and ("transparency" in img.info or img.mode != "P")
    img = img.convert("RGBA" if alpha else "RGB")
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    if alpha:
        return encode_image(img, "PNG", optimize=True), "image/png", True
    return encode_image(img, "JPEG", quality=72, optimize=True), "image/jpeg", True


def _encode_all(
    sources: dict[str, tuple[bytes, str, bool]], side: int
) -> dict[str, tuple[bytes, str, bool]]:
    out = {}
    for key, (data, media, thumb) in sources.items():
        s = min(1024, 2 * side) if thumb else side
        out[key] = fit_image(data, media, s)
    return out


def embed(
    html_text: str, sources: dict[str, Source], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str, EmbeddedImages]:
    """Replace the placeholders in ``html_text`` by keys into one JSON block of data URIs."""
    used = list(dict.fromkeys(m.group(2) for m in _TOKEN.finditer(html_text)))
    raw: dict[str, tuple[bytes, str, bool]] = {}
    for key in used:
        src = sources.get(key)
        found = src.load() if src else None
        if found is not None:
            raw[key] = (found[0], found[1], src.thumbnail if src else False)
    budget = max(1_000_000, max_bytes - len(html_text.encode("utf-8")) - 50_000)
    side = START_SIDE
    encoded = _encode_all(raw, side)
    total = sum(len(d) for d, _, _ in encoded.values()) * 4 // 3
    while total > budget and side > MIN_SIDE:  # bytes go roughly with the area: one or two passes
        side = max(MIN_SIDE, int(side * math.sqrt(budget / total) * 0.95))
        encoded = _encode_all(raw, side)
        total = sum(len(d) for d, _, _ in encoded.values()) * 4 // 3
    uris = {
        k: f"data:{media};base64,{base64.b64encode(d).decode('ascii')}"
        for k, (d, media, _) in encoded.items()
    }

    def point(m: re.Match[str]) -> str:
        return f'data-img="{m.group(2)}"' if m.group(2) in uris else 'data-img-missing=""'

    body = _TOKEN.sub(point, html_text)
    block = f'<script type="application/json" id="report-images">{json.dumps(uris)}</script>'
    body = body.replace("<!--report-images-->", block, 1)
    info = EmbeddedImages(
        side=side,
        image_bytes=total,
        n_images=len(uris),
        n_downscaled=sum(1 for _, _, down in encoded.values() if down),
    )
    return body, info
