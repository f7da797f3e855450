"""The world a sample's agent acts in: one slide, or a set of ordinary images (MedFrameQA).

Both environments implement :class:`Environment`; the loop and the strategies use nothing else.
They differ by what they offer, never by their type: ``offers`` (the tools whose need they meet)
and the ``slide`` or ``imageset`` they hold (None when they hold none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from slidescout.core.sample import Sample
from slidescout.core.trace import SlideRef
from slidescout.core.types import Box, GuideStyle, LevelRule, View
from slidescout.errors import SlideError
from slidescout.slides import Slide, open_slide
from slidescout.slides.imageset import ImageSet
from slidescout.tools.context import ContextOptions, ToolContext

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

    @property
    def kind(self) -> Literal["slide", "imageset"]: ...

    @property
    def offers(self) -> frozenset[str]:
        """What its tools may need from it (``{"slide"}`` or ``{"imageset"}``)."""
        ...

    @property
    def source_id(self) -> str: ...

    @property
    def slide(self) -> Slide | None:
        """The slide, when it offers one."""
        ...

    @property
    def imageset(self) -> ImageSet | None:
        """The images, when it offers a set of them."""
        ...

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def mpp(self) -> float | None: ...

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        """``ref`` completed with the allow-listed properties of what the sample is about."""
        ...

    def overview(
        self,
        max_side: int,
        guides: bool,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        """The first image the model sees."""
        ...

    def overview_caption(self, view: View, show_mpp: bool = True) -> str: ...

    def tool_context(self, options: ContextOptions) -> ToolContext: ...

    def close(self) -> None: ...


class SlideEnvironment:
    """A single whole-slide image."""

    kind: Literal["slide", "imageset"] = "slide"
    offers: frozenset[str] = SLIDE_OFFERS
    imageset: ImageSet | None = None

    def __init__(self, path: str) -> None:
        self.slide: Slide | None = open_slide(path)
        self._slide: Slide = self.slide
        self.source_id = self._slide.slide_id

    @property
    def size(self) -> tuple[int, int]:
        w, h = self._slide.dimensions
        return int(w), int(h)

    @property
    def mpp(self) -> float | None:
        return self._slide.mpp

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        p = self._slide.model_properties()
        return ref.model_copy(
            update={
                "slide_id": self._slide.slide_id,
                "width": p.get("width"),
                "height": p.get("height"),
                "mpp": p.get("mpp"),
                "mpp_source": str(p.get("mpp_source") or ""),
                "objective_power": p.get("objective_power"),
            }
        )

    def overview(
        self,
        max_side: int,
        guides: bool,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        return self._slide.thumbnail(
            max_side, guides=guides, level_rule=level_rule, guide_style=guide_style
        )

    def overview_caption(self, view: View, show_mpp: bool = True) -> str:
        w, h = self.size
        text = f"Overview of the whole slide ({w} x {h} px at level 0), shown at {view.width} x {view.height} px."
        if not show_mpp:  # GIANT: no resolution anywhere
            return text
        return f"{text} {view.describe()}."

    def tool_context(self, options: ContextOptions) -> ToolContext:
        return ToolContext.of(options, slide=self._slide, slide_id=self._slide.slide_id)

    def close(self) -> None:  # handles stay in the shared cache
        return None


class ImageSetEnvironment:
    """A multi-image question: every member is a one-level slide, addressed as "Image N"."""

    kind: Literal["slide", "imageset"] = "imageset"
    offers: frozenset[str] = IMAGESET_OFFERS
    slide: Slide | None = None

    def __init__(self, paths: list[str]) -> None:
        self.imageset: ImageSet | None = ImageSet(list(paths))
        self._images: ImageSet = self.imageset
        self.source_id = "imageset"

    @property
    def size(self) -> tuple[int, int]:
        w, h = self._images.get(1).dimensions
        return int(w), int(h)

    @property
    def mpp(self) -> float | None:
        return None

    def slide_ref(self, ref: SlideRef) -> SlideRef:
        return ref.model_copy(
            update={
                "kind": "imageset",
                "images": [str(p) for p in self._images.paths],
                "slide_id": f"{len(self._images)} images",
            }
        )

    def overview(
        self,
        max_side: int,
        guides: bool = False,
        level_rule: LevelRule = "fine",
        guide_style: GuideStyle = "scout",
    ) -> View:
        """Every image side by side (no guides: the images have no common coordinates)."""
        arr = self._images.montage(max_side)
        return View(
            image=arr,
            box=Box(0, 0, arr.shape[1], arr.shape[0]),
            level=0,
            downsample=1.0,
            mpp=None,
            meta={"label": "all images"},
        )

    def overview_caption(self, view: View, show_mpp: bool = True) -> str:
        sizes = ", ".join(
            f"image {i + 1}: {s.dimensions[0]} x {s.dimensions[1]} px"
            for i, s in enumerate(self._images.images)
        )
        return f"All {len(self._images)} images side by side ({sizes})."

    def tool_context(self, options: ContextOptions) -> ToolContext:
        return ToolContext.of(options, imageset=self._images, slide_id=self.source_id)

    def close(self) -> None:
        return None


def open_environment(sample: Sample) -> Environment:
    """The environment for a sample: an image set when it has several images, else a slide."""
    if sample.is_image_set:
        return ImageSetEnvironment(sample.images)
    if not sample.image_path:
        raise SlideError(f"sample {sample.sample_id} names no slide or images")
    if not Path(sample.image_path).exists():
        raise SlideError(f"{sample.image_path}: no such file")
    return SlideEnvironment(sample.image_path)
