"""How a sample is run: a :class:`Strategy` over the agent's :class:`~slidescout.agents.run_settings.Hooks`.

- :class:`AgentStrategy`: think, act, rethink (the loop's ``start`` and ``step``), with GIANT's
  reruns of a trajectory that overruns its step budget when the preset asks for them;
- ``ThumbnailStrategy`` and ``PatchStrategy`` (``baselines.py``): GIANT's baselines, and
  MedFrameQA's official one-call protocol.

Strategies see the agent only through ``Hooks``: the settings in force and a few calls.
"""

from __future__ import annotations

from typing import Protocol

from slidescout.agents.baselines import PatchStrategy, ThumbnailStrategy
from slidescout.agents.presets import Preset
from slidescout.agents.protocol import run_with_reruns
from slidescout.agents.run_settings import Hooks
from slidescout.agents.state import SampleState
from slidescout.core.trace import Status

__all__ = ["AgentStrategy", "PatchStrategy", "Strategy", "ThumbnailStrategy", "strategy_for"]


class Strategy(Protocol):
    """How a sample is run: the agentic loop, or a baseline. Returns the final status."""

    async def run(self, hooks: Hooks, state: SampleState) -> Status: ...


class AgentStrategy:
    """Think, act, rethink: the overview, then one step at a time until an answer or a limit.

    A trajectory that overruns its step budget is run again when the preset says so (GIANT)."""

    async def run(self, hooks: Hooks, state: SampleState) -> Status:
        reruns = hooks.settings.preset.reruns
        return await run_with_reruns(reruns, state, lambda: self.attempt(hooks, state))

    @staticmethod
    async def attempt(hooks: Hooks, state: SampleState) -> Status:
        await hooks.start(state)
        for step in range(hooks.settings.max_steps):
            status = await hooks.step(state, step)
            if status is not None:
                return status
        return "max_steps"


def strategy_for(preset: Preset) -> Strategy:
    """The strategy of a preset's ``mode``."""
    if preset.mode == "thumbnail":
        return ThumbnailStrategy()
    if preset.mode == "patch":
        return PatchStrategy()
    return AgentStrategy()
