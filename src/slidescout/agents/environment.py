"""The world a sample's agent acts in: one slide, or a set of ordinary images (MedFrameQA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slidescout.agents.sample import AgentSample
from slidescout.errors import SlideError
from slidescout.slides.types import Box, View
from slidescout.traces.schema import SlideRef


def _box_tuple(box: Any) -> tuple[int, int, int, int] | None:
    if box is None:
        return None
    if isinstance(box, Box):
        return box.as_tuple()
    return tuple(int(v) for v in box)  # type: ignore[return-value]


def image_fields(img: Any, source: str | None) -> dict[str, Any]:
    """Arguments of ``store_image`` for a tool's image (a ``View`` or a ``ToolImage``)."""
    if isinstance(img, View):
        return {"rgb": img.image, "box": img.box.as_tuple(), "level": img.level, "mpp": img.mpp,
                "source": source, "label": img.meta.get("label") if img.meta else None}
    rgb = getattr(img, "image", None)
    if rgb is None:
        rgb = getattr(img, "array", None)
    data = getattr(img, "data", None)
    return {"rgb": rgb if isinstance(rgb, np.ndarray) else None, "data": data if isinstance(data, bytes | bytearray) else None,
            "media_type": getattr(img, "media_type", None) or "image/jpeg",
            "box": _box_tuple(getattr(img, "box", None)), "level": getattr(img, "level", None),
            "mpp": getattr(img, "mpp", None), "source": getattr(img, "source", None) or source,
            "label": getattr(img, "label", None)}


class SlideEnvironment:
    """A single whole-slide image."""

    kind = "slide"

    def __init__(self, path: str) -> None:
        from slidescout.slides import open_slide

        self.slide = open_slide(path)
        self.source_id = self.slide.slide_id

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.slide.dimensions)  # type: ignore[return-value]

    @property
    def mpp(self) -> float | None:
        return self.slide.mpp

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        p = self.slide.model_properties()
        return ref.model_copy(update={"slide_id": self.slide.slide_id, "width": p.get("width"),
                                      "height": p.get("height"), "mpp": p.get("mpp"),
                                      "mpp_source": str(p.get("mpp_source") or ""),
                                      "objective_power": p.get("objective_power")})

    def overview(self, max_side: int, guides: bool) -> View:
        return self.slide.thumbnail(max_side, guides=guides)

    def overview_caption(self, view: View) -> str:
        w, h = self.size
        return (f"Overview of the whole slide ({w} x {h} px at level 0), shown at {view.width} x {view.height} px. "
                f"{view.describe()}.")

    def tool_context(self, **options: Any) -> Any:
        from slidescout.tools.context import ToolContext

        return ToolContext(slide=self.slide, slide_id=self.slide.slide_id,
                           **{k: v for k, v in options.items() if v is not None})

    def image_fields(self, img: Any) -> dict[str, Any]:
        return image_fields(img, self.source_id)

    def close(self) -> None:  # handles stay in the shared cache
        return None


def open_environment(sample: AgentSample) -> Any:
    """The environment for a sample: an ImageSet when it has several images, else a slide."""
    if sample.image_paths:
        from slidescout.slides.imageset import ImageSetEnvironment

        return ImageSetEnvironment(sample.image_paths)
    if not sample.slide_path:
        raise SlideError(f"sample {sample.sample_id} names no slide or images")
    if not Path(sample.slide_path).exists():
        raise SlideError(f"{sample.slide_path}: no such file")
    return SlideEnvironment(sample.slide_path)
