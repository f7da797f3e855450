"""slidescout: an agent that reads gigapixel pathology slides the way a pathologist does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Agent",
    "AgentConfig",
    "RunResult",
    "Sample",
    "Slide",
    "View",
    "Box",
    "run",
    "arun",
    "make_agent",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from slidescout.agents.config import AgentConfig
    from slidescout.agents.loop import Agent, make_agent
    from slidescout.core.sample import Sample
    from slidescout.core.types import Box, View
    from slidescout.eval.ask import RunResult, arun, run
    from slidescout.slides import Slide

_LAZY = {
    "Agent": "slidescout.agents.loop",
    "AgentConfig": "slidescout.agents.config",
    "RunResult": "slidescout.eval.ask",
    "run": "slidescout.eval.ask",
    "arun": "slidescout.eval.ask",
    "make_agent": "slidescout.agents.loop",
    "Sample": "slidescout.core.sample",
    "Slide": "slidescout.slides",
    "View": "slidescout.core.types",
    "Box": "slidescout.core.types",
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
