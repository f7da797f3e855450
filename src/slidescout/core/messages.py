"""Provider-neutral messages: a discriminated union of small pydantic models.

Adapters translate these to and from each provider's wire format. Images are referenced by
sha256 (the run's blob store holds the bytes); ``ImagePart.data`` carries the bytes in memory
and is never serialized.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slidescout.core.model_settings import ModelSettings

SCHEMA_VERSION = "1.0"


class Usage(BaseModel):
    """Tokens and cost of one model call (or a sum of calls), as the provider reports and bills
    them. ``cost_usd`` None = unknown (so are its parts).

    ``input_tokens`` counts every input token, cache reads (``cached_input_tokens``) and cache
    writes (``cache_write_tokens``) included; ``output_tokens`` includes reasoning and thinking.
    ``estimated_input_tokens`` is slidescout's own count of the request by the provider's
    published rules (0: not estimated), kept beside the reported count so a difference shows.
    ``cache_read_usd`` and ``cache_write_usd`` are the parts of ``cost_usd`` spent on cache reads
    and writes; ``uncached_usd`` is what the same tokens would cost with no prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    estimated_input_tokens: int = 0
    cost_usd: float | None = 0.0
    cache_read_usd: float | None = 0.0
    cache_write_usd: float | None = 0.0
    uncached_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        def money(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            estimated_input_tokens=self.estimated_input_tokens + other.estimated_input_tokens,
            cost_usd=money(self.cost_usd, other.cost_usd),
            cache_read_usd=money(self.cache_read_usd, other.cache_read_usd),
            cache_write_usd=money(self.cache_write_usd, other.cache_write_usd),
            uncached_usd=money(self.uncached_usd, other.uncached_usd),
        )

    def __sub__(self, other: Usage) -> Usage:
        """What was spent between two running totals (``after - before``)."""

        def money(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        return Usage(
            input_tokens=self.input_tokens - other.input_tokens,
            output_tokens=self.output_tokens - other.output_tokens,
            reasoning_tokens=self.reasoning_tokens - other.reasoning_tokens,
            cached_input_tokens=self.cached_input_tokens - other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens - other.cache_write_tokens,
            estimated_input_tokens=self.estimated_input_tokens - other.estimated_input_tokens,
            cost_usd=money(self.cost_usd, other.cost_usd),
            cache_read_usd=money(self.cache_read_usd, other.cache_read_usd),
            cache_write_usd=money(self.cache_write_usd, other.cache_write_usd),
            uncached_usd=money(self.uncached_usd, other.uncached_usd),
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ImageRef(BaseModel):
    """An image as recorded: hash, size, and where on the slide it came from."""

    sha256: str
    media_type: str = "image/jpeg"
    width: int
    height: int
    box: tuple[int, int, int, int] | None = None  # level-0 (x, y, w, h)
    level: int | None = None
    mpp: float | None = None
    source: str | None = None  # slide id, or "image:N" for an ImageSet member
    label: str | None = None  # e.g. "overview", "heatmap", "nuclei overlay"


class TextPart(BaseModel):
    kind: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    kind: Literal["image"] = "image"
    image: ImageRef
    detail: Literal["auto", "low", "high"] | None = (
        "high"  # None: not sent (the provider's default)
    )
    data: bytes | None = Field(default=None, exclude=True, repr=False)


class ReasoningPart(BaseModel):
    """Reasoning the provider returned: Anthropic thinking blocks, OpenAI reasoning items.

    ``provider_data`` holds what must be passed back verbatim (signature, encrypted content, ids).
    """

    kind: Literal["reasoning"] = "reasoning"
    text: str = ""
    provider: str = ""
    provider_data: dict[str, Any] = Field(default_factory=dict)


class ToolCallPart(BaseModel):
    kind: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = None  # as the model sent it, when it was not valid JSON
    parse_error: str | None = None


class ToolResultPart(BaseModel):
    kind: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    name: str
    content: list[Annotated[TextPart | ImagePart, Field(discriminator="kind")]] = Field(
        default_factory=list
    )
    is_error: bool = False


UserPart = Annotated[TextPart | ImagePart, Field(discriminator="kind")]
AssistantPart = Annotated[TextPart | ReasoningPart | ToolCallPart, Field(discriminator="kind")]


class SystemMessage(BaseModel):
    role: Literal["system"] = "system"
    content: str


class UserMessage(BaseModel):
    role: Literal["user"] = "user"
    parts: list[UserPart]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    parts: list[AssistantPart] = Field(default_factory=list)
    provider_response_id: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart)).strip()

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]

    @property
    def reasoning(self) -> list[ReasoningPart]:
        return [p for p in self.parts if isinstance(p, ReasoningPart)]


class ToolMessage(BaseModel):
    """Results of the tool calls of the preceding assistant message, in call order."""

    role: Literal["tool"] = "tool"
    results: list[ToolResultPart]


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class ToolSpec(BaseModel):
    """A tool as offered to a model: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class RetryInfo(BaseModel):
    attempt: int
    reason: str  # e.g. "429 rate limit", "timeout", "500"
    wait_s: float


class ModelRequest(BaseModel):
    """One request: the context, the tools offered, and the settings it carries (merged once
    per agent from the model's defaults, the preset and the user's flags)."""

    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] = "auto"
    settings: ModelSettings = Field(default_factory=ModelSettings)


# the wire format of a model call; a plugin provider that speaks its own says "plugin"
ModelApi = Literal[
    "openai-responses",
    "openai-chat",
    "anthropic-messages",
    "expert",
    "replay",
    "function",
    "plugin",
]


class ModelResponse(BaseModel):
    message: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    model: str = ""  # provider:model as resolved
    api: ModelApi = "plugin"
    latency_s: float = 0.0
    request_bytes: int = 0
    retries: list[RetryInfo] = Field(default_factory=list)
    stop_reason: str | None = None
