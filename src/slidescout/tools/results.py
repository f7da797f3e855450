"""What a tool call produces: text, images (``ToolImage``) and structured data (``ToolResult``)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel

from slidescout.core.imaging import encode_jpeg
from slidescout.core.messages import ImagePart, ImageRef, TextPart
from slidescout.core.types import Box, View


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class ToolImage:
    """An image a tool returns: pixels (``image``) or encoded bytes (``data``), plus provenance.

    ``box`` is the level-0 region shown, ``level`` the pyramid level read and ``mpp`` the output
    microns per pixel; all None for images that are not slide regions (plots, overlays of an
    ImageSet member...). ``label`` names what it is ("zoom", "heatmap", "nuclei overlay").
    """

    image: np.ndarray | None = None
    data: bytes | None = None
    media_type: str = "image/jpeg"
    box: Box | None = None
    level: int | None = None
    mpp: float | None = None
    label: str = ""
    source: str | None = None
    detail: Literal["auto", "low", "high"] = "high"

    def __post_init__(self) -> None:
        if self.image is None and self.data is None:
            raise ValueError("a ToolImage needs pixels (image=) or encoded bytes (data=)")
        if self.image is not None:
            arr = np.asarray(self.image)
            if arr.ndim == 2:
                arr = np.stack([arr] * 3, axis=-1)
            if arr.ndim != 3 or arr.shape[2] not in (3, 4):
                raise ValueError(f"a ToolImage array must be (H, W, 3) RGB, got shape {arr.shape}")
            if arr.shape[2] == 4:
                arr = arr[:, :, :3]
            if arr.dtype != np.uint8:
                arr = np.clip(arr, 0, 255).astype(np.uint8)
            self.image = np.ascontiguousarray(arr)
        if self.box is not None and not isinstance(self.box, Box):
            self.box = Box.of(self.box)

    @classmethod
    def from_view(cls, view: View, label: str = "", source: str | None = None) -> ToolImage:
        return cls(
            image=view.image,
            box=view.box,
            level=view.level,
            mpp=view.mpp,
            label=label,
            source=source,
        )

    @classmethod
    def from_pil(cls, img: Image.Image, **kw: Any) -> ToolImage:
        return cls(image=np.asarray(img.convert("RGB")), **kw)

    def _size(self) -> tuple[int, int]:
        if self.image is not None:
            return int(self.image.shape[1]), int(self.image.shape[0])
        with Image.open(io.BytesIO(self.data or b"")) as im:
            return im.size

    @property
    def width(self) -> int:
        return self._size()[0]

    @property
    def height(self) -> int:
        return self._size()[1]

    def to_array(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        with Image.open(io.BytesIO(self.data or b"")) as im:
            return np.asarray(im.convert("RGB"))

    def encode(self, quality: int = 90) -> tuple[bytes, str]:
        """``(bytes, media_type)``: the given bytes as they are, or the pixels as JPEG."""
        if self.data is not None:
            return self.data, self.media_type
        return encode_jpeg(self.to_array(), quality), "image/jpeg"

    def to_ref(self, quality: int = 90, source: str | None = None) -> tuple[ImageRef, bytes]:
        """The :class:`ImageRef` recorded in traces (sha256 of the encoded bytes) and the bytes."""
        data, media_type = self.encode(quality)
        w, h = self._size()
        ref = ImageRef(
            sha256=hashlib.sha256(data).hexdigest(),
            media_type=media_type,
            width=w,
            height=h,
            box=self.box.as_tuple() if self.box else None,
            level=self.level,
            mpp=self.mpp,
            source=self.source or source,
            label=self.label or None,
        )
        return ref, data


@dataclass
class ToolResult:
    """What a tool call produced: text, zero or more images, and structured ``data`` (JSON-able)."""

    text: str = ""
    images: list[ToolImage] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_view(
        cls,
        view: View,
        text: str | None = None,
        *,
        label: str = "",
        data: dict[str, Any] | None = None,
    ) -> ToolResult:
        return cls(
            text=view.describe() if text is None else text,
            images=[ToolImage.from_view(view, label=label)],
            data=dict(data or {}),
        )

    @classmethod
    def coerce(cls, value: Any) -> ToolResult:
        """Normalise whatever a tool returned.

        Accepts ``ToolResult``, ``str``, ``View``, ``ToolImage``, a PIL image or an RGB array,
        a ``dict`` or pydantic model (becomes ``data``, shown as JSON), a list of images, and the
        tuples ``(text, image_or_images)`` and ``(text, image_or_images, data)``. None gives an
        empty result. Anything else is a programming error (``TypeError``).
        """
        if isinstance(value, ToolResult):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, (bool, int, float)):
            return cls(text=str(value))
        if isinstance(value, View):
            return cls.from_view(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if isinstance(value, dict):
            return cls(text=json.dumps(value, default=str), data=dict(value))
        if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[0], str):
            images = _coerce_images(value[1])
            data = dict(value[2]) if len(value) == 3 and value[2] else {}
            return cls(text=value[0], images=images, data=data)
        try:
            images = _coerce_images(value)
        except TypeError:
            raise TypeError(
                f"a tool returned {type(value).__name__}, which is not a tool result; "
                "return str, View, ToolResult, or (text, [views])"
            ) from None
        text = "\n".join(
            v.describe()
            for v in (value if isinstance(value, list) else [value])
            if isinstance(v, View)
        )
        return cls(text=text, images=images)

    def to_parts(
        self,
        quality: int = 90,
        source: str | None = None,
        detail: Literal["auto", "low", "high"] | None = None,
    ) -> list[TextPart | ImagePart]:
        """Message parts for a ``ToolResultPart``: the text, then each image with its bytes in
        ``ImagePart.data`` (the run's blob store keeps them; ``ImagePart.image`` is the ref)."""
        parts: list[TextPart | ImagePart] = []
        if self.text:
            parts.append(TextPart(text=self.text))
        for img in self.images:
            ref, data = img.to_ref(quality, source)
            parts.append(ImagePart(image=ref, data=data, detail=detail or img.detail))
        return parts


def _coerce_images(value: Any) -> list[ToolImage]:
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out: list[ToolImage] = []
    for v in items:
        if isinstance(v, ToolImage):
            out.append(v)
        elif isinstance(v, View):
            out.append(ToolImage.from_view(v))
        elif isinstance(v, Image.Image):
            out.append(ToolImage.from_pil(v))
        elif isinstance(v, np.ndarray):
            out.append(ToolImage(image=v))
        else:
            raise TypeError(f"not an image: {type(v).__name__}")
    return out
