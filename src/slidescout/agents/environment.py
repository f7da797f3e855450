"""The world a sample's agent acts in: one slide, or a set of ordinary images (MedFrameQA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slidescout.agents.sample import AgentSample
from slidescout.errors import SlideError
from slidescout.slides.types import View
from slidescout.traces.schema import SlideRef


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

    def overview(self, max_side: int, guides: bool, level_rule: str = "fine", guide_style: str = "scout") -> View:
        return self.slide.thumbnail(max_side, guides=guides, level_rule=level_rule, guide_style=guide_style)

    def overview_caption(self, view: View, show_mpp: bool = True) -> str:
        w, h = self.size
        text = f"Overview of the whole slide ({w} x {h} px at level 0), shown at {view.width} x {view.height} px."
        if not show_mpp:  # GIANT: no resolution anywhere
            return text
        return f"{text} {view.describe()}."

    def tool_context(self, **options: Any) -> Any:
        from slidescout.tools.context import ToolContext

        return ToolContext(slide=self.slide, slide_id=self.slide.slide_id,
                           **{k: v for k, v in options.items() if v is not None})

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
