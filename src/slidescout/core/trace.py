"""The trace of one sample: versioned pydantic models, ordered events, images by hash.

A trace file is ``traces/<sample_id>.json`` in a run directory; images live in ``blobs/``.
Events carry an id, a parent id, a UTC timestamp and a duration (inspect_ai's shape).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from slidescout.core.errors import TraceError
from slidescout.core.messages import (
    AssistantMessage,
    ImageRef,
    Message,
    RetryInfo,
    ToolCallPart,
    Usage,
)

TRACE_SCHEMA_VERSION = "1.1"  # 1.1: ``error`` and ``repeat``; 1.0 traces read as they are

Status = Literal[
    "answered",  # the model gave a final answer
    "error",  # too many errors, or an unrecoverable one
    "max_steps",  # step budget spent and no answer could be forced
    "budget_usd",
    "budget_tokens",
    "budget_time",
    "cancelled",
    "stopped",  # the user stopped it (studio, chat); its trace is kept
    "running",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EventBase(BaseModel):
    id: str
    parent: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    duration_s: float = 0.0
    step: int | None = None  # 0-based step index this event belongs to


class Rethink(BaseModel):
    """What the model believes after an observation (the vitar preset asks for it)."""

    hypothesis: str = ""
    differential: list[str] = Field(default_factory=list)
    confidence: float | None = None  # 0..1
    needed_evidence: str = ""


class ModelCallEvent(EventBase):
    kind: Literal["model_call"] = "model_call"
    model: str
    api: str = ""
    output: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    request_bytes: int = 0
    images_in_context: int = 0
    retries: list[RetryInfo] = Field(default_factory=list)
    tools_offered: list[str] = Field(default_factory=list)
    forced_final: bool = False
    stop_reason: str | None = None
    rethink: Rethink | None = None


class ToolEvent(EventBase):
    kind: Literal["tool"] = "tool"
    call: ToolCallPart
    text: str = ""
    images: list[ImageRef] = Field(default_factory=list)
    error: str | None = None  # ToolError / malformed call, shown to the model
    internal_error: str | None = None  # unexpected exception (type and message), recorded
    data: dict[str, Any] = Field(default_factory=dict)  # structured tool output (measurements...)


# why the loop itself showed an image: the first view, a baseline's thumbnail, one of its patches
ImagePurpose = Literal["overview", "thumbnail", "patch"]


class ImageEvent(EventBase):
    """An image the loop itself showed the model (overview, thumbnail baseline, patches)."""

    kind: Literal["image"] = "image"
    image: ImageRef
    purpose: ImagePurpose = "overview"


class ErrorEvent(EventBase):
    kind: Literal["error"] = "error"
    message: str
    error_type: str = ""
    fatal: bool = False


class AnswerEvent(EventBase):
    kind: Literal["answer"] = "answer"
    text: str
    rationale: str = ""
    supporting_steps: list[int] = Field(default_factory=list)
    forced: bool = False


class NoteEvent(EventBase):
    """Anything else worth showing on the timeline (budget warnings, context pruning...)."""

    kind: Literal["note"] = "note"
    message: str


Event = Annotated[
    ModelCallEvent | ToolEvent | ImageEvent | ErrorEvent | AnswerEvent | NoteEvent,
    Field(discriminator="kind"),
]


class SlideRef(BaseModel):
    """The slide (or image set) a sample is about. Only allow-listed properties."""

    path: str
    slide_id: str = ""
    kind: Literal["slide", "imageset"] = "slide"
    width: int | None = None
    height: int | None = None
    mpp: float | None = None
    mpp_source: str | None = None
    objective_power: float | None = None
    images: list[str] = Field(default_factory=list)  # ImageSet member paths


class GroundTruth(BaseModel):
    answer: str | None = None
    regions: list[dict[str, Any]] = Field(default_factory=list)  # {"label": str, "box": [x,y,w,h]}


class Trace(BaseModel):
    schema_version: str = TRACE_SCHEMA_VERSION
    sample_id: str
    run_id: str = ""
    task: str = ""
    question: str
    options: list[str] = Field(default_factory=list)
    slide: SlideRef
    truth: GroundTruth | None = None
    model: str
    preset: str
    config: dict[str, Any] = Field(default_factory=dict)
    prompt_hashes: dict[str, str] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: Status = "running"
    error: str | None = None  # why a sample that did not answer ended (the failure reason)
    repeat: int = 0
    answer: str | None = None
    rationale: str = ""
    usage: Usage = Field(default_factory=Usage)
    messages: list[Message] = Field(default_factory=list)  # final context as sent (images by hash)
    events: list[Event] = Field(default_factory=list)

    # -- convenience views -------------------------------------------------
    @property
    def model_calls(self) -> list[ModelCallEvent]:
        return [e for e in self.events if isinstance(e, ModelCallEvent)]

    @property
    def tool_events(self) -> list[ToolEvent]:
        return [e for e in self.events if isinstance(e, ToolEvent)]

    @property
    def n_steps(self) -> int:
        return len(self.model_calls)

    def images(self) -> list[ImageRef]:
        """Every image the model was shown, in order."""
        out: list[ImageRef] = []
        for e in self.events:
            if isinstance(e, ImageEvent):
                out.append(e.image)
            elif isinstance(e, ToolEvent):
                out.extend(e.images)
        return out

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.model_validate_json(text)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()


def load_trace(path: Path | str) -> Trace:
    """Read a trace file with a clear error for missing or malformed files."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: no such trace file")
    try:
        return Trace.from_json(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise TraceError(f"{p}: not a slidescout trace ({first})") from None


def dump_schema(path: str) -> None:
    """Write the trace JSON Schema for other tools."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(Trace.json_schema(), f, indent=1)
