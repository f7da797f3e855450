"""Presets: a protocol (prompt, tools, step budget, images, model settings) under one name.

- ``scout`` (the default): our protocol. Up to 4 regions asked for in one turn (parallel tool
  calls, rendered concurrently, returned in one tool-result turn) with the step budget counting
  views, not turns; a forced final answer; retries; the resolution (µm/px and magnification)
  stated; an append-only history (every image stays; prompt caches read it at a tenth of the
  price), Claude's cache breakpoints on, and old images dropped in one block only when a request
  would not fit the model's context window (docs/benchmarks.md "Protocols" measures it).
- ``giant``: GIANT's protocol (docs/fidelity.md lists each point, its test, and what differs):
  tools on every step and a rerun of a trajectory that overruns T, reasoning effort high with a
  detailed summary (OpenAI) or a 1024-token thinking budget and 30000 max tokens (Claude), one
  tool call per turn for Claude, tool images inside the tool output, no resolution anywhere,
  ``best_level(0.85·ds)`` reads, JPEG quality 75, GIANT-style guides.
- ``vitar``: ``scout`` plus rethink and the expert tools.
- ``thumbnail`` and ``patch``: GIANT's baselines. ``medframeqa``: MedFrameQA's official protocol.

Protocol behaviour lives in fields here; the loop and the renderer read them. A preset's model
settings are per route (``model_settings``, keyed by provider or API name); the agent merges them
once, between the model's defaults and the user's flags (``agents.models.profile``).

Presets are a registry (:data:`PRESETS`, entry points ``slidescout.presets``): a plugin adds a
preset by pointing an entry point at a :class:`Preset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from slidescout.agents.models.profile import ModelProfile
from slidescout.core.model_settings import ModelSettings
from slidescout.core.registry import Registry
from slidescout.core.types import BoxClamp, MessageStyle

__all__ = ["DEFAULT_PRESET", "GIANT_MODEL_SETTINGS", "PRESETS", "Preset", "get_preset"]

DEFAULT_PRESET = "scout"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    mode: Literal["agent", "thumbnail", "patch"] = "agent"
    system_prompt: str = (
        "scout_system"  # a prompt name in slidescout/prompts ("" : no system message)
    )
    prompt_file: str | None = None  # a user's prompt file, used instead of ``system_prompt``
    prompt_text: str | None = None  # that file's text, read once when the agent is built
    tools: tuple[str, ...] = ("slide_zoom",)
    # offered instead of the slide tools when the sample is a set of images (each tool says what
    # it needs: a slide, an image set, or nothing, and a sample offers the tools whose need it meets)
    imageset_tools: tuple[str, ...] = ("view_image", "crop_image", "compare_images")
    max_steps: int = 20
    # long side of every image by provider (GIANT: 1000 for OpenAI, 500 for Claude)
    max_side_by_provider: dict[str, int] = field(
        default_factory=lambda: {"anthropic": 500, "default": 1000}
    )
    overview_side: int | None = None  # None: same as max_side
    guides: bool = True
    guide_style: Literal["scout", "giant"] = "scout"
    level_rule: Literal["fine", "giant"] = "fine"  # how the pyramid level of a read is chosen
    jpeg_quality: int = 90
    overview_detail: Literal["auto", "low", "high"] | None = "high"  # None: the field is not sent
    show_mpp: bool = True  # µm/px and magnification in the prompt, the captions and tool results
    rethink: bool = False
    # append the task's criteria card (tools/knowledge/corpus/cards, e.g. PANDA's biopsy grading
    # rules and grade group table) to the system prompt; never to a user's prompt file
    criteria_card: bool = False
    keep_images: int | None = None  # None: every image stays in the context
    prune_block: int = (
        0  # older images are dropped in blocks of this + 1 (keeps prompt caches warm)
    )
    # True: the history is append-only, and old images are dropped (in one block, with a note)
    # only when a request would not fit the model's context window; the prefix breaks once
    fit_context: bool = False
    # what the step budget T counts: model turns (GIANT: one call per step) or views (tool calls:
    # T - 1 views and the answer, however many turns they take)
    budget_unit: Literal["turns", "views"] = "turns"
    views_per_turn: int = (
        1  # regions the prompt invites per turn (parallel calls, run concurrently)
    )
    # the last step: True withdraws the tools and asks for the answer; False offers them on every
    # step, and a tool call at step T ends the attempt (status max_steps)
    forced_answer: bool = True
    reruns: int = 0  # attempts run again after an overrun at step T (GIANT: 3), then counted wrong
    one_call_providers: tuple[str, ...] = ()  # providers whose turns run only their first tool call
    # providers whose one-call question puts the images before the text (MedFrameQA's Claude)
    images_first_providers: tuple[str, ...] = ()
    answer_tag: str | None = None  # the answer is read from <tag>...</tag> when present
    # what the messages say around the images: "giant" as GIANT's (the opening message is the
    # question and the overview only; a tool result is the region, the slide size and the calls
    # remaining; a failed call gets "Error: ..." alone)
    message_style: MessageStyle = "scout"
    # "strict": a box wholly outside the slide or of no size is an error; "giant": clamped down to
    # a 1 px region and shown
    box_clamp: BoxClamp = "strict"
    # a failing tool call: "bounded" ends the sample after max_errors failing steps in a row;
    # "continue" sends the error back and goes on, as GIANT does
    tool_errors: Literal["bounded", "continue"] = "bounded"
    parser: Literal["default", "medframeqa"] = "default"
    imageset_start: Literal["montage", "frames"] = (
        "frames"  # image sets: every frame as its own image
    )
    # model settings by route: a provider ("openai", "anthropic") or an API ("openai-responses");
    # the API's entry is laid over the provider's. Settings a route cannot carry are dropped
    # (recorded in the manifest), except those in ``requires``: the protocol is refused instead
    model_settings: Mapping[str, ModelSettings] = field(default_factory=dict)
    requires: frozenset[str] = frozenset()
    api: Literal["auto", "responses", "chat"] = "auto"  # the OpenAI API under --api auto
    n_patches: int = 30
    patch_size: int = 224

    def max_side_for(self, provider: str) -> int:
        return self.max_side_by_provider.get(provider, self.max_side_by_provider["default"])

    def settings_for(self, profile: ModelProfile) -> ModelSettings:
        """The preset's model settings for a model's route (provider's, then the API's)."""
        none = ModelSettings()
        return self.model_settings.get(profile.provider, none).merged(
            self.model_settings.get(profile.api, none)
        )


# GIANT's request settings, by route (docs/fidelity.md): reasoning for OpenAI's reasoning models
# (dropped for the others, as GIANT does), thinking for Claude, no prompt cache (its Claude
# requests carry no cache_control)
GIANT_MODEL_SETTINGS: Mapping[str, ModelSettings] = {
    "openai": ModelSettings(
        reasoning_effort="high",
        reasoning_summary="detailed",
        tool_result_images="inline",
        request_layout="giant",
    ),
    "anthropic": ModelSettings(
        thinking_budget=1024, max_output_tokens=30000, prompt_cache=False, request_layout="giant"
    ),
}
# GIANT's baselines (its run_benchmark.py): on the Responses API reasoning effort high with a
# detailed summary (call_llm_with_image); on Chat Completions max_tokens 4096 and nothing else
# (call_openai_with_image); Claude thinking 1024 and max_tokens 30000 (call_claude_with_image)
GIANT_BASELINE_SETTINGS: Mapping[str, ModelSettings] = {
    "openai-responses": ModelSettings(reasoning_effort="high", reasoning_summary="detailed"),
    "openai-chat": ModelSettings(max_output_tokens=4096),
    "anthropic": ModelSettings(thinking_budget=1024, max_output_tokens=30000, prompt_cache=False),
}

SCOUT = Preset(
    name="scout",
    description="Our protocol: up to 4 regions per turn, a budget of views, forced final answer, µm/px and magnification stated, an append-only cached history.",
    fit_context=True,
    budget_unit="views",
    views_per_turn=4,
    answer_tag="response",
    criteria_card=True,
    # parallel tool calls invited; Claude's cache breakpoints on (the bill, not what is seen)
    model_settings={
        "openai": ModelSettings(parallel_tool_calls=True),
        "anthropic": ModelSettings(parallel_tool_calls=True, prompt_cache=True),
    },
)

GIANT = Preset(
    name="giant",
    description="GIANT's protocol: tools on every step, up to 3 reruns, high reasoning, no µm/px, full history, its images and guides.",
    system_prompt="giant_system",
    guide_style="giant",
    level_rule="giant",
    jpeg_quality=75,
    overview_detail=None,
    show_mpp=False,
    forced_answer=False,
    reruns=3,
    one_call_providers=("anthropic",),
    answer_tag="response",
    message_style="giant",
    box_clamp="giant",
    tool_errors="continue",
    model_settings=GIANT_MODEL_SETTINGS,
    # GIANT always uses the Responses API; a route that cannot put images inside the tool output
    # (the chat route) is refused, naming --api responses
    api="responses",
    requires=frozenset({"tool_result_images"}),
)

BUILTIN_PRESETS: dict[str, Preset] = {
    "scout": SCOUT,
    "giant": GIANT,
    "vitar": replace(
        SCOUT,
        name="vitar",
        description="scout plus think, act, rethink: navigation, expert models and lookup; a stated hypothesis after every observation.",
        system_prompt="vitar_system",
        tools=(
            "slide_zoom",
            "view_region",
            "pan",
            "measure",
            "nuclei_morphometry",
            "tissue_map",
            "lookup",
        ),
        rethink=True,
        answer_tag=None,
    ),
    "thumbnail": Preset(
        name="thumbnail",
        description="GIANT's thumbnail baseline: one 1024 px thumbnail and the question, no system prompt, one call.",
        mode="thumbnail",
        system_prompt="",
        tools=(),
        max_steps=1,
        overview_side=1024,
        guides=False,
        jpeg_quality=75,
        overview_detail=None,
        show_mpp=False,
        model_settings=GIANT_BASELINE_SETTINGS,
    ),
    "patch": Preset(
        name="patch",
        description="GIANT's patch baseline: 30 random 224 px level-0 patches of the CLAM tissue grid, one call each, majority vote.",
        mode="patch",
        system_prompt="",
        tools=(),
        max_steps=30,
        guides=False,
        jpeg_quality=75,
        overview_detail=None,
        show_mpp=False,
        model_settings=GIANT_BASELINE_SETTINGS,
    ),
    "medframeqa": Preset(
        name="medframeqa",
        description="MedFrameQA's official protocol: the 'Answer: $LETTER' instruction, every frame as its original file in one message, temperature 0.",
        mode="thumbnail",
        system_prompt="medframeqa_system",
        tools=(),
        max_steps=1,
        guides=False,
        show_mpp=False,
        overview_detail=None,
        parser="medframeqa",
        images_first_providers=("anthropic",),
        # the official evaluation: GPT at temperature 0 with max_tokens 10000; Claude with
        # max_tokens 3000 and no temperature
        model_settings={
            "openai": ModelSettings(temperature=0.0, max_output_tokens=10000),
            "anthropic": ModelSettings(max_output_tokens=3000, prompt_cache=False),
        },
    ),
}


def _as_preset(obj: object, name: str) -> Preset:
    if callable(obj) and not isinstance(obj, Preset):
        obj = obj()
    if not isinstance(obj, Preset):
        raise TypeError(f"{obj!r} is not a Preset")
    if obj.name != name:
        obj = replace(obj, name=name)  # the registry's name is the preset's name
    return obj


PRESETS: Registry[Preset] = Registry("slidescout.presets", "preset", BUILTIN_PRESETS, _as_preset)


def get_preset(name: str) -> Preset:
    """The preset ``name`` (built-in or a plugin's); a one-line ``ConfigError`` when unknown."""
    return PRESETS.get(name)
