"""The world a sample's agent acts in: one slide, or a set of ordinary images (MedFrameQA).

Both environments implement :class:`Environment`; the loop and the baselines use nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from slidescout.core.sample import Sample
from slidescout.core.trace import SlideRef
from slidescout.core.types import Box, View
from slidescout.errors import SlideError
from slidescout.slides import Slide, open_slide
from slidescout.slides.imageset import ImageSet
from slidescout.tools.context import ToolContext

__all__ = [
    "IMAGESET_OFFERS",
    "SLIDE_OFFERS",
    "Environment",
    "ImageSetEnvironment",
    "SlideEnvironment",
    "open_environment",
]

# what an environment offers its tools: a tool is offered when its ``needs`` is among these
SLIDE_OFFERS: frozenset[str] = frozenset({"slide"})
IMAGESET_OFFERS: frozenset[str] = frozenset({"imageset"})


class Environment(Protocol):
    """What the agent sees and acts on."""

    kind: Literal["slide", "imageset"]
    offers: frozenset[str]
    source_id: str

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def mpp(self) -> float | None: ...

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        """``ref`` completed with the allow-listed properties of what the sample is about."""
        ...

    def overview(self, max_side: int, guides: bool) -> View:
        """The first image the model sees."""
        ...

    def overview_caption(self, view: View) -> str: ...

    def tool_context(self, **options: Any) -> ToolContext: ...

    def close(self) -> None: ...


class SlideEnvironment:
    """A single whole-slide image."""

    kind: Literal["slide", "imageset"] = "slide"
    offers: frozenset[str] = SLIDE_OFFERS

    def __init__(self, path: str) -> None:
        self.slide: Slide = open_slide(path)
        self.source_id = self.slide.slide_id

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.slide.dimensions
        return int(w), int(h)

    @property
    def mpp(self) -> float | None:
        return self.slide.mpp

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        p = self.slide.model_properties()
        return ref.model_copy(
            update={
                "slide_id": self.slide.slide_id,
                "width": p.get("width"),
                "height": p.get("height"),
                "mpp": p.get("mpp"),
                "mpp_source": str(p.get("mpp_source") or ""),
                "objective_power": p.get("objective_power"),
            }
        )

    def overview(
        self, max_side: int, guides: bool, level_rule: str = "fine", guide_style: str = "scout"
    ) -> View:
        return self.slide.thumbnail(
            max_side, guides=guides, level_rule=level_rule, guide_style=guide_style
        )

    def overview_caption(self, view: View, show_mpp: bool = True) -> str:
        w, h = self.size
        text = f"Overview of the whole slide ({w} x {h} px at level 0), shown at {view.width} x {view.height} px."
        if not show_mpp:  # GIANT: no resolution anywhere
            return text
        return f"{text} {view.describe()}."

    def tool_context(self, **options: Any) -> ToolContext:
        return ToolContext(
            slide=self.slide,
            slide_id=self.slide.slide_id,
            **{k: v for k, v in options.items() if v is not None},
        )

    def close(self) -> None:  # handles stay in the shared cache
        return None


class ImageSetEnvironment:
    """A multi-image question: every member is a one-level slide, addressed as "Image N"."""

    kind: Literal["slide", "imageset"] = "imageset"
    offers: frozenset[str] = IMAGESET_OFFERS

    def __init__(self, paths: list[str]) -> None:
        self.imageset = ImageSet(list(paths))
        self.source_id = "imageset"

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.imageset.get(1).dimensions
        return int(w), int(h)

    @property
    def mpp(self) -> float | None:
        return None

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        return ref.model_copy(
            update={
                "kind": "imageset",
                "images": [str(p) for p in self.imageset.paths],
                "slide_id": f"{len(self.imageset)} images",
            }
        )

    def overview(self, max_side: int, guides: bool = False) -> View:
        arr = self.imageset.montage(max_side)
        return View(
            image=arr,
            box=Box(0, 0, arr.shape[1], arr.shape[0]),
            level=0,
            downsample=1.0,
            mpp=None,
            meta={"label": "all images"},
        )

    def overview_caption(self, view: View) -> str:
        sizes = ", ".join(
            f"image {i + 1}: {s.dimensions[0]} x {s.dimensions[1]} px"
            for i, s in enumerate(self.imageset.images)
        )
        return f"All {len(self.imageset)} images side by side ({sizes})."

    def tool_context(self, **options: Any) -> ToolContext:
        return ToolContext(
            imageset=self.imageset,
            slide_id=self.source_id,
            **{k: v for k, v in options.items() if v is not None},
        )

    def close(self) -> None:
        return None


def open_environment(sample: Sample) -> SlideEnvironment | ImageSetEnvironment:
    """The environment for a sample: an image set when it has several images, else a slide."""
    if sample.is_image_set:
        return ImageSetEnvironment(sample.images)
    if not sample.image_path:
        raise SlideError(f"sample {sample.sample_id} names no slide or images")
    if not Path(sample.image_path).exists():
        raise SlideError(f"{sample.image_path}: no such file")
    return SlideEnvironment(sample.image_path)
