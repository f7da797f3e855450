"""What one agent run is about: a question on a slide (or an image set), with optional truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from slidescout.traces.schema import GroundTruth


class AgentSample(BaseModel):
    sample_id: str
    question: str  # the full text the model sees (options included)
    options: list[str] = Field(default_factory=list)
    slide_path: str | None = None
    image_paths: list[str] = Field(default_factory=list)  # multi-image questions (ImageSet)
    task: str = "ask"
    answer_format: str = "index"  # index | label | isup_json | letter | free
    truth: GroundTruth | None = None
    repeat: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)


def format_question(question: str, options: list[str]) -> str:
    """A question with numbered options, asking for MultiPathQA's JSON answer format."""
    if not options:
        return question.strip()
    lines = "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1))
    return (f"{question.strip()}\n\nSelect from the following options:\n{lines}\n\n"
            "Please choose the number of the correct option and respond in the following JSON format:\n"
            "```json\n{\"answer\": YOUR_ANSWER}\n```")


def sample_for_question(slide: str | Path, question: str, options: list[str] | None = None,
                        sample_id: str | None = None) -> AgentSample:
    options = list(options or [])
    return AgentSample(sample_id=sample_id or Path(slide).stem, question=format_question(question, options),
                       options=options, slide_path=str(slide), answer_format="index" if options else "free")
