"""``RunSettings``: the settings in force for one agent, decided once, and ``Hooks``: what a strategy
may call on the agent.

``RunSettings.decide`` lays the user's :class:`~slidescout.agents.config.AgentConfig` over the
preset and the model: step budget, image size, guides, JPEG quality, context pruning, tools, and
the model settings every request carries (merged once: model defaults < preset < flags). It is
immutable; the manifest records it, the prompts and the opening message read it.

A strategy (the agentic loop, GIANT's baselines) runs a sample through :class:`Hooks` only, so it
depends on this small protocol, not on the concrete ``Agent``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from slidescout import prompts
from slidescout.agents.config import AgentConfig
from slidescout.agents.environment import Environment
from slidescout.agents.models import Model, ResolvedSettings
from slidescout.agents.presets import Preset, get_preset
from slidescout.agents.state import SampleState
from slidescout.core.messages import ImagePart, ModelRequest, ModelResponse
from slidescout.core.trace import ImagePurpose, Status
from slidescout.core.types import View
from slidescout.tools import registry as tool_registry
from slidescout.tools.registry import ToolRegistry

__all__ = ["Hooks", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """What one agent does, decided once: the preset with the user's overrides applied."""

    preset: Preset
    provider: str  # the model's provider (``openai``...): image sizes and one-call rules by it
    api: str  # the model's wire format (``openai-chat``...)
    max_steps: int
    max_side: int
    keep_images: int | None  # None: every image stays in the context (the user's --keep-images)
    # views: T counts tool calls (T - 1 views, then the answer); turns: T counts model replies
    budget_unit: str
    views_per_turn: int  # regions invited per turn (run concurrently); 1 under giant
    context_window: int | None  # the model's, for fit_context (None: not known, nothing dropped)
    prompt_cache: str  # "on" (Claude's breakpoints), "off", or "automatic" (OpenAI's own)
    guides: bool
    jpeg_quality: int
    one_call: bool  # only the first tool call of a turn runs (GIANT's Claude agent)
    tool_names: tuple[str, ...]
    model: ResolvedSettings  # the settings every request carries, and the preset's dropped ones
    seed: int | None
    device: str | None
    max_errors: int
    sample_seconds: float | None

    @classmethod
    def decide(
        cls, config: AgentConfig, model: Model, registry: ToolRegistry | None = None
    ) -> RunSettings:
        """The settings of an agent with ``config`` and ``model`` (a bad prompt file, an unknown
        tool or a model setting the route cannot carry is one ``ConfigError``, now)."""
        preset = get_preset(config.preset)
        if config.system_prompt:  # read once: every sample sends the same text
            text = prompts.read_file(config.system_prompt)
            preset = replace(preset, prompt_file=config.system_prompt, prompt_text=text)
        provider = model.name.split(":", 1)[0] if ":" in model.name else model.name
        keep = preset.keep_images if config.keep_images is None else config.keep_images
        tools = list(preset.tools)
        if config.tools:
            tools = (registry or tool_registry.default_registry()).resolve_toolset(
                tools, config.tools
            )
        resolved = config.resolve_settings(model.profile, preset, model.settings)
        return cls(
            preset=preset,
            provider=provider,
            api=model.profile.api,
            max_steps=config.max_steps or preset.max_steps,
            max_side=config.max_side or preset.max_side_for(provider),
            keep_images=None if keep == "all" else keep,
            budget_unit=preset.budget_unit,
            views_per_turn=config.views_per_turn or preset.views_per_turn,
            context_window=model.profile.context_window,
            prompt_cache=_cache_mode(model, resolved),
            guides=preset.guides if config.guides is None else config.guides,
            jpeg_quality=config.jpeg_quality or preset.jpeg_quality,
            one_call=provider in preset.one_call_providers,
            tool_names=tuple(tools),
            model=resolved,
            seed=config.seed,
            device=config.device,
            max_errors=config.max_errors,
            sample_seconds=config.sample_seconds,
        )


def _cache_mode(model: Model, resolved: ResolvedSettings) -> str:
    """How the requests are cached: Claude's breakpoints on or off, or the provider's own."""
    if model.profile.cache_breakpoints:
        return "on" if resolved.settings.prompt_cache else "off"
    return "automatic" if model.profile.provider == "openai" else "off"


class Hooks(Protocol):
    """What a strategy may use of the agent that runs it."""

    @property
    def settings(self) -> RunSettings: ...

    def system_prompt(self, env: Environment) -> str:
        """The system prompt for ``env`` under the preset ("" : none)."""
        ...

    def show(
        self,
        state: SampleState,
        view: View,
        *,
        purpose: ImagePurpose,
        label: str | None = None,
        step: int = 0,
    ) -> ImagePart:
        """Encode and record a view the model is about to see."""
        ...

    def show_file(
        self,
        state: SampleState,
        data: bytes,
        media_type: str,
        size: tuple[int, int],
        *,
        source: str,
        label: str,
    ) -> ImagePart:
        """Record an image file's own bytes, ready to send."""
        ...

    async def call_model(
        self, state: SampleState, req: ModelRequest, *, step: int, forced: bool, n_images: int
    ) -> ModelResponse | None:
        """One model call, recorded; None (and a fatal error event) when it failed."""
        ...

    def record_answer(
        self,
        state: SampleState,
        step: int,
        text: str,
        *,
        forced: bool = False,
        rationale: str | None = None,
        supporting_steps: list[int] | None = None,
    ) -> None: ...

    def limit_reached(self, state: SampleState, step: int) -> Status | None:
        """The budget or time limit that ends the sample before ``step``, noted on the trace."""
        ...

    async def start(self, state: SampleState) -> None:
        """The agentic loop's first message: system prompt, question, overview; the tools."""
        ...

    async def step(self, state: SampleState, step: int) -> Status | None:
        """One step of the agentic loop; the status that ends the sample, or None to go on."""
        ...
