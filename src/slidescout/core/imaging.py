"""The one image encoder: RGB arrays to JPEG or PNG bytes.

Every image a model, a trace or the viewer gets is encoded here, so quality and format are
decided in one place. Read-only arrays (views shared through the slide's view cache, such as
one overview for every sample of a run) are encoded once per quality.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

__all__ = ["encode_image", "encode_jpeg"]

_ENCODED: OrderedDict[int, tuple[np.ndarray, int, bytes]] = OrderedDict()
_ENCODED_LOCK = threading.Lock()
_FORMATS = {
    "JPG": "JPEG",
    "JPEG": "JPEG",
    "PNG": "PNG",
    "WEBP": "WEBP",
    "TIF": "TIFF",
    "TIFF": "TIFF",
}


def encode_image(
    rgb: np.ndarray | Image.Image, fmt: str = "JPEG", quality: int = 90, *, optimize: bool = False
) -> bytes:
    """Bytes of an image in ``fmt`` (JPEG, PNG, WEBP or TIFF); ``quality`` applies to JPEG/WEBP.

    An array is RGB; a PIL image keeps its alpha in PNG. ``optimize`` trades encoding time for
    smaller files (reports that are shared)."""
    name = _FORMATS.get(fmt.upper())
    if name is None:
        raise ValueError(f"unsupported image format {fmt!r}; use JPEG, PNG, WEBP or TIFF")
    if name == "JPEG" and isinstance(rgb, np.ndarray) and not optimize:
        return encode_jpeg(rgb, quality)
    img = (
        rgb
        if isinstance(rgb, Image.Image)
        else Image.fromarray(np.ascontiguousarray(rgb[..., :3]), "RGB")
    )
    buf = io.BytesIO()
    if name in ("JPEG", "WEBP"):
        img.convert("RGB").save(buf, name, quality=quality, optimize=optimize)
    else:
        img.save(buf, name, optimize=optimize) if name == "PNG" else img.save(buf, name)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB array (Pillow, libjpeg-turbo). Read-only arrays are cached by identity."""
    shared = not rgb.flags.writeable
    if shared:
        with _ENCODED_LOCK:
            hit = _ENCODED.get(id(rgb))
            if hit is not None and hit[0] is rgb and hit[1] == quality:
                return hit[2]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., :3]), "RGB").save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    if shared:
        with _ENCODED_LOCK:
            _ENCODED[id(rgb)] = (rgb, quality, data)  # holding rgb keeps its id from being reused
            while len(_ENCODED) > 16:
                _ENCODED.popitem(last=False)
    return data
