"""Presets: a protocol (prompt, tools, step budget, image size, guides) under one name.

``giant`` reproduces GIANT's protocol; ``vitar`` adds rethink and the expert tools; ``thumbnail``
and ``patch`` are GIANT's baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from slidescout.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    mode: Literal["agent", "thumbnail", "patch"] = "agent"
    system_prompt: str = "giant_system"
    tools: tuple[str, ...] = ("slide_zoom",)
    max_steps: int = 20
    # long side of every image by provider (GIANT: 1000 for OpenAI, 500 for Claude)
    max_side_by_provider: dict[str, int] = field(default_factory=lambda: {"anthropic": 500, "default": 1000})
    overview_side: int | None = None  # None: same as max_side
    guides: bool = True
    rethink: bool = False
    keep_images: int | None = None  # None: every image stays in the context
    jpeg_quality: int = 90
    n_patches: int = 30
    patch_size: int = 224

    def max_side_for(self, provider: str) -> int:
        return self.max_side_by_provider.get(provider, self.max_side_by_provider["default"])

    def with_overrides(self, **kw: object) -> Preset:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})  # type: ignore[arg-type]


PRESETS: dict[str, Preset] = {
    "giant": Preset(
        name="giant",
        description="GIANT's protocol: slide_zoom only, guides on every image, T=20, full history.",
    ),
    "vitar": Preset(
        name="vitar",
        description="Think, act, rethink: navigation, expert models and lookup; a stated hypothesis after every observation.",
        system_prompt="vitar_system",
        tools=("slide_zoom", "view_region", "pan", "measure", "nuclei_morphometry", "tissue_map", "lookup"),
        rethink=True,
        keep_images=8,
    ),
    "thumbnail": Preset(
        name="thumbnail",
        description="Baseline: one 1024 px thumbnail, no tools, one call.",
        mode="thumbnail",
        system_prompt="thumbnail_system",
        tools=(),
        max_steps=1,
        overview_side=1024,
        guides=False,
    ),
    "patch": Preset(
        name="patch",
        description="Baseline: 30 random 224 px level-0 tissue patches, one call each, majority vote.",
        mode="patch",
        system_prompt="patch_system",
        tools=(),
        max_steps=30,
        guides=False,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
