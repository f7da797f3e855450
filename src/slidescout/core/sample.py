"""The one sample type: a question on a slide (or a set of images), with its truth when known.

``slidescout ask`` and every benchmark loader produce a :class:`Sample`; the loop runs it, the
parser reads its ``answer_format`` and the record compares with its ``answer``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from slidescout.core.answer_formats import ANSWER_FORMATS
from slidescout.core.trace import GroundTruth

Metric = Literal["accuracy", "balanced_accuracy"]
SampleKind = Literal["slide", "imageset"]

__all__ = ["Metric", "Sample", "SampleKind"]


class Sample(BaseModel):
    """One question, ready for the agent and for scoring.

    ``answer`` is the normalised ground truth, comparable with ``ParsedAnswer.value``: the
    1-based option index (int) for ``index``, the option text for ``label``, the ISUP grade 0-5
    (int) for ``isup_json``, the upper-case letter for ``letter``; None when the truth is unknown
    (a question asked with ``slidescout ask``).
    """

    sample_id: str  # stable across runs: "<task>/<benchmark id>", "~2" etc. for a repeated id
    task: str = "ask"
    question: str  # the full text the model sees, options and answer instructions included
    options: list[str] = Field(default_factory=list)
    answer: int | str | None = None
    answer_label: str | None = (
        None  # option text (index/label/letter), or the grade as text (isup_json)
    )
    answer_index: int | None = None  # 1-based position of the answer in ``options``, if any
    metric: Metric = "accuracy"
    # a name in the answer-format registry (``core.answer_formats``): built-in or a plugin's
    answer_format: str = "index"
    kind: SampleKind = "slide"  # "imageset": the agent sees a set of images (MedFrameQA)
    image_path: str  # the slide (or first image): absolute once resolved, else the name as given
    image_paths: list[str] = Field(default_factory=list)  # every image (one for a slide)
    regions: list[dict[str, Any]] = Field(
        default_factory=list
    )  # truth regions {"id","label","box"}
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("answer_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ANSWER_FORMATS:
            raise ValueError(
                f"unknown answer format {value!r}; known: {', '.join(ANSWER_FORMATS.names())}"
            )
        return value

    @property
    def is_multi_image(self) -> bool:
        """Whether the sample has several images."""
        return len(self.image_paths) > 1

    @property
    def is_image_set(self) -> bool:
        """Whether the agent sees an image set (MedFrameQA) rather than one slide."""
        return self.is_multi_image or self.kind == "imageset"

    @property
    def images(self) -> list[str]:
        """The image-set members (empty for a slide)."""
        return list(self.image_paths or [self.image_path]) if self.is_image_set else []

    @property
    def truth(self) -> GroundTruth | None:
        """The truth recorded in the trace (answer label and regions), None when unknown."""
        if self.answer_label is None and not self.regions:
            return None
        return GroundTruth(answer=self.answer_label, regions=[dict(r) for r in self.regions])
