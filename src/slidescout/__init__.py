"""slidescout: an agent that reads gigapixel pathology slides the way a pathologist does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "RunResult", "Slide", "View", "Box", "run", "arun", "make_agent", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from slidescout.agents.api import RunResult, arun, make_agent, run
    from slidescout.agents.loop import Agent
    from slidescout.slides import Slide
    from slidescout.slides.types import Box, View

_LAZY = {
    "Agent": "slidescout.agents.loop", "RunResult": "slidescout.agents.api", "run": "slidescout.agents.api",
    "arun": "slidescout.agents.api", "make_agent": "slidescout.agents.api", "Slide": "slidescout.slides",
    "View": "slidescout.slides.types", "Box": "slidescout.slides.types",
}


def __dir__() -> list[str]:
    """The public names, including the lazily imported ones (for ``dir()`` and tab completion)."""
    return sorted({*__all__, *(n for n in globals() if n.startswith("__") and n.endswith("__"))})


def __getattr__(name: str) -> Any:
    """Import public names on first use, so ``import slidescout`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slidescout' has no attribute {name!r}")
