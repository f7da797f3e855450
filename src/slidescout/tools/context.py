"""What a tool sees besides its arguments: the sample's slide, render options, state and limits.

The agent loop builds one :class:`ToolContext` per sample and passes it to every call. A tool asks
for it by annotating one parameter with ``ToolContext`` (any name); that parameter stays out of the
JSON schema the model is offered.

The context is generic over the slide it holds (pydantic-ai's ``RunContext[Deps]``):
``ToolContext`` is ``ToolContext[Slide]``; a test or a plugin with its own slide type writes
``ToolContext[MySlide]``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic

from anyio import CapacityLimiter
from typing_extensions import TypeVar

from slidescout.core.types import BoxClamp, GuideStyle, LevelRule, MessageStyle
from slidescout.errors import SlidescoutError, ToolError
from slidescout.slides.imageset import ImageSet
from slidescout.slides.slide import Slide

if TYPE_CHECKING:  # pragma: no cover
    from slidescout.core.types import View

SlideT = TypeVar("SlideT", default=Slide)


class ToolCancelled(SlidescoutError):
    """The run was cancelled (budget, timeout, Ctrl-C) while a tool was working."""


@dataclass(frozen=True)
class ContextOptions:
    """How a run renders and runs tools: the part of a tool context that comes from the preset
    and the run (the environment adds what it offers: its slide or its image set)."""

    max_side: int = 1000
    guides: bool = True
    jpeg_quality: int = 90
    show_mpp: bool = True
    level_rule: LevelRule = "fine"
    guide_style: GuideStyle = "scout"
    message_style: MessageStyle = "scout"
    box_clamp: BoxClamp = "strict"
    run_dir: Path | None = None
    sample_id: str = ""
    device: str = "auto"


@dataclass
class ToolContext(Generic[SlideT]):
    """Per-sample context handed to tools.

    Attributes:
        slide: the sample's slide (None for an image-set question).
        slide_id: a stable id of the slide (file stem, TCGA id...).
        imageset: the sample's ``ImageSet`` for multi-image questions, else None.
        state: mutable per-sample scratch space; navigation keeps ``last_view`` and ``views`` here.
        max_side: long side in pixels of every image shown to the model (GIANT: 1000 / 500).
        guides: draw GIANT's coordinate guides on images.
        jpeg_quality: JPEG quality used when images are encoded for the model.
        show_mpp: state µm/px and magnification in results (False under the ``giant`` preset).
        level_rule: "fine" (ours) or "giant" (GIANT's ``best_level(0.85·ds)``), see slides.render.
        guide_style: "scout" or "giant" (see slides.guides).
        message_style: "scout" or "giant": what a view's result text says (``giant``: the region
            and the slide size only, as GIANT's results).
        box_clamp: "strict" (a box wholly outside the slide or of no size is an error) or
            "giant" (clamped down to a 1 px region and shown, as GIANT does).
        run_dir: the run directory, if any (tools may write artefacts under it).
        sample_id: the sample's id.
        device: torch device for model-backed tools ("auto", "cpu", "cuda:0").
        limiter: an ``anyio.CapacityLimiter`` bounding worker threads for blocking tools (None:
            anyio's default).
        limiters: named limiters (e.g. ``"gpu"``); a tool whose ``limiter`` attribute names one
            runs under it.
        cancel_event: set by the loop to ask long-running tools to stop (see ``check_cancelled``).
        extras: free-form values for plugins (configuration, shared caches).
    """

    slide: SlideT | None = None
    slide_id: str = ""
    imageset: ImageSet | None = None
    state: dict[str, Any] = field(default_factory=dict)
    max_side: int = 1000
    guides: bool = True
    jpeg_quality: int = 90
    show_mpp: bool = True
    level_rule: LevelRule = "fine"
    guide_style: GuideStyle = "scout"
    message_style: MessageStyle = "scout"
    box_clamp: BoxClamp = "strict"
    run_dir: Path | None = None
    sample_id: str = ""
    device: str = "auto"  # the expert runtime resolves it: CUDA when present, else CPU
    limiter: CapacityLimiter | None = None
    limiters: dict[str, CapacityLimiter] = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        options: ContextOptions,
        *,
        slide: SlideT | None = None,
        imageset: ImageSet | None = None,
        slide_id: str = "",
    ) -> ToolContext[SlideT]:
        """A context for one sample: the run's options and what its environment offers."""
        return cls(
            slide=slide,
            imageset=imageset,
            slide_id=slide_id,
            max_side=options.max_side,
            guides=options.guides,
            jpeg_quality=options.jpeg_quality,
            show_mpp=options.show_mpp,
            level_rule=options.level_rule,
            guide_style=options.guide_style,
            message_style=options.message_style,
            box_clamp=options.box_clamp,
            run_dir=options.run_dir,
            sample_id=options.sample_id,
            device=options.device,
        )

    # -- helpers for tools ---------------------------------------------------
    def require_slide(self) -> SlideT:
        """The current slide, or a ToolError the model can act on when there is none."""
        if self.slide is None:
            if self.imageset is not None:
                raise ToolError(
                    "this question is about a set of images, not a slide; "
                    "slide tools cannot be used here"
                )
            raise ToolError("no slide is open for this question")
        return self.slide

    def limiter_for(self, name: str | None) -> CapacityLimiter | None:
        """The named limiter (``"gpu"``, ``"cpu"``), else the context's default one."""
        return self.limiters.get(name, self.limiter) if name else self.limiter

    def check_cancelled(self) -> None:
        """Raise ``ToolCancelled`` if the run was cancelled; call it between long work units."""
        if self.cancel_event.is_set():
            raise ToolCancelled("the run was cancelled while a tool was running")

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def last_view(self) -> dict[str, Any] | None:
        """The last region shown by a navigation tool: ``{"tool", "box", "mpp", "level", ...}``."""
        return self.state.get("last_view")

    @property
    def views(self) -> list[dict[str, Any]]:
        return self.state.setdefault("views", [])

    def record_view(
        self, view: View, *, tool: str, requested_mpp: float | None = None
    ) -> dict[str, Any]:
        """Remember a region the model was shown (``state['last_view']`` and ``state['views']``).

        ``requested_mpp`` is the resolution the tool was asked for (``view_region``); ``pan`` keeps it.
        """
        record = {
            "tool": tool,
            "box": view.box,
            "mpp": view.mpp,
            "level": view.level,
            "requested_mpp": requested_mpp,
            "clamped": bool(view.clamped),
        }
        self.state["last_view"] = record
        self.views.append(record)
        return record


__all__ = ["ContextOptions", "ToolCancelled", "ToolContext"]
