"""Layer 3: the agent. ``Agent`` runs samples (``loop.py``) with the settings in force
(``run_settings.py``), a strategy (``strategies.py``: the loop, or GIANT's baselines), a model
(``models/``) and a preset (``presets.py``).

Names load on first use (``slidescout.agents.Agent``), so importing one agents module does not
import them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Agent": "loop",
    "build_agent": "loop",
    "make_agent": "loop",
    "AgentConfig": "config",
    "Budget": "budget",
    "Environment": "environment",
    "open_environment": "environment",
    "PRESETS": "presets",
    "Preset": "presets",
    "get_preset": "presets",
    "Hooks": "run_settings",
    "RunSettings": "run_settings",
    "Strategy": "strategies",
    "SampleState": "state",
}

if TYPE_CHECKING:
    from slidescout.agents.budget import Budget
    from slidescout.agents.config import AgentConfig
    from slidescout.agents.environment import Environment, open_environment
    from slidescout.agents.loop import Agent, build_agent, make_agent
    from slidescout.agents.presets import PRESETS, Preset, get_preset
    from slidescout.agents.run_settings import Hooks, RunSettings
    from slidescout.agents.state import SampleState
    from slidescout.agents.strategies import Strategy

__all__ = [
    "PRESETS",
    "Agent",
    "AgentConfig",
    "Budget",
    "Environment",
    "Hooks",
    "Preset",
    "RunSettings",
    "SampleState",
    "Strategy",
    "build_agent",
    "get_preset",
    "make_agent",
    "open_environment",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
