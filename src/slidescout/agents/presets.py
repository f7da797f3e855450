"""Presets: a protocol (prompt, tools, step budget, images, model settings) under one name.

- ``scout`` (the default): our protocol. A forced final answer on the last step, retries, the
  resolution (µm/px and magnification) stated, the overview plus the last K images in context
  (K = 2 to 4: older images are dropped three at a time, so prompt caches keep hitting between
  drops; docs/benchmarks.md "Protocols" measures it).
- ``giant``: GIANT's protocol point for point (docs/fidelity.md lists each point and its test):
  tools on every step and a rerun of a trajectory that overruns T, reasoning effort high with a
  detailed summary (OpenAI) or a 1024-token thinking budget and 30000 max tokens (Claude), one
  tool call per turn for Claude, tool images inside the tool output, no resolution anywhere,
  ``best_level(0.85·ds)`` reads, JPEG quality 75, GIANT-style guides.
- ``vitar``: ``scout`` plus rethink and the expert tools.
- ``thumbnail`` and ``patch``: GIANT's baselines. ``medframeqa``: MedFrameQA's official protocol.

Protocol behaviour lives in fields here; the loop, the renderer and the adapters read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from slidescout.errors import ConfigError

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
    # the last step: True withdraws the tools and asks for the answer; False offers them on every
    # step, and a tool call at step T ends the attempt (status max_steps)
    forced_answer: bool = True
    reruns: int = 0  # attempts run again after an overrun at step T (GIANT: 3), then counted wrong
    one_call_providers: tuple[str, ...] = ()  # providers whose turns run only their first tool call
    answer_tag: str | None = None  # the answer is read from <tag>...</tag> when present
    parser: Literal["default", "medframeqa"] = "default"
    imageset_start: Literal["montage", "frames"] = (
        "frames"  # image sets: every frame as its own image
    )
    temperature: float | None = None
    # model settings by api ("openai-responses", "openai-chat", "anthropic-messages"); flags win
    model_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_patches: int = 30
    patch_size: int = 224

    def max_side_for(self, provider: str) -> int:
        return self.max_side_by_provider.get(provider, self.max_side_by_provider["default"])

    def with_overrides(self, **kw: object) -> Preset:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})  # type: ignore[arg-type]


# GIANT's request settings, by API (DESIGN.md "What GIANT does")
GIANT_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "openai-responses": {
        "reasoning_effort": "high",
        "reasoning_summary": "detailed",
        "tool_result_images": "inline",
    },
    "anthropic-messages": {"thinking_budget": 1024, "max_output_tokens": 30000},
}

SCOUT = Preset(
    name="scout",
    description="Our protocol: slide_zoom, forced final answer, µm/px and magnification stated, overview plus the last 2-4 images.",
    keep_images=2,
    prune_block=2,
    answer_tag="response",
    criteria_card=True,
)

GIANT = Preset(
    name="giant",
    description="GIANT's protocol, point for point: tools on every step, up to 3 reruns, high reasoning, no µm/px, full history.",
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
    model_defaults=GIANT_MODEL_DEFAULTS,
)

PRESETS: dict[str, Preset] = {
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
        model_defaults={"openai-responses": {"reasoning_effort": "high"}},
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
        model_defaults={"openai-responses": {"reasoning_effort": "high"}},
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
        temperature=0.0,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
