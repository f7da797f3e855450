"""``ResultRecord``: one finished (sample, repeat), one line of a run's ``results.jsonl``.

``build_record`` (``eval/sample_run.py``) makes it from a trace; the executors hand it to the
runner, which appends it as it is. The same type reads the file back (older lines included:
unknown fields are kept). ``correct`` is derived, never stored: None when the sample has no
ground truth (``slidescout ask``), so such a record is not scored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field, model_validator

from slidescout.core.parsing import ParsedAnswer
from slidescout.core.sample import Metric, Sample
from slidescout.core.trace import Status

__all__ = ["FINAL_STATUSES", "ResultRecord", "Value", "answer_key"]

Value = int | str
# statuses that end a sample for good; the others (budget_*, cancelled) are run again on resume
FINAL_STATUSES: frozenset[str] = frozenset({"answered", "error", "max_steps", "stopped"})


def answer_key(v: Value | None) -> str | None:
    """How answers are compared: as text, stripped, lower case."""
    return None if v is None else str(v).strip().lower()


class ResultRecord(BaseModel):
    """One finished (sample, repeat): one JSON line of ``results.jsonl``. Extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    sample_id: str
    task: str
    metric: Metric = "accuracy"
    truth: Value | None = None
    predicted: Value | None = None  # ParsedAnswer.value; None when unparsed or the run failed
    parsed_ok: bool = False
    repeat: int = 0
    status: Status = "answered"
    finished: bool | None = None  # None (older lines): derived from the status
    n_steps: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None  # None = unknown (e.g. a local model without a price)
    # the prompt cache's part of it, as billed (agents.models.accounting), and what the same
    # tokens cost uncached; the input tokens slidescout estimated beside those reported
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_read_usd: float | None = None
    cache_write_usd: float | None = None
    uncached_usd: float | None = None
    estimated_input_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None  # run error or parse error
    answer_format: str | None = None
    truth_label: str | None = None
    parse_method: str | None = None
    answer_label: str | None = None  # the option the parsed answer names
    answer_text: str | None = None  # the reply's tail
    model: str | None = None
    preset: str | None = None
    dataset: str | None = None
    trace: str | None = None  # the trace file, relative to the run directory
    # trace scores (eval/grounding.py)
    n_images: int | None = None
    n_views: int | None = None
    model_latency_s: float | None = None
    tool_s: float | None = None
    finest_mpp: float | None = None
    viewed_mm2: dict[str, float] | None = None  # mm² seen, by magnification
    tissue_mm2: dict[str, float] | None = None
    grounding: dict[str, Any] | None = None
    scoring_error: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derived_fields(cls, data: Any) -> Any:
        """``correct`` is written for readers of results.jsonl but always derived again."""
        if isinstance(data, dict) and "correct" in data:
            data = {k: v for k, v in data.items() if k != "correct"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def correct(self) -> bool | None:
        """Whether the parsed answer equals the truth (False when unparsed or failed); None when
        the sample has no ground truth to compare with."""
        if self.truth is None:
            return None
        return (
            self.parsed_ok
            and self.predicted is not None
            and answer_key(self.predicted) == answer_key(self.truth)
        )

    @property
    def key(self) -> tuple[str, int]:
        """``(sample_id, repeat)``: what a resumed run skips when finished."""
        return self.sample_id, self.repeat

    def is_finished(self, *, retry_errors: bool = False) -> bool:
        """Whether this record ends its (sample, repeat) for good (a resumed run skips it)."""
        finished = self.status in FINAL_STATUSES if self.finished is None else self.finished
        if finished and retry_errors and self.status == "error":
            return False
        return finished

    def to_json_dict(self) -> dict[str, Any]:
        """The line as written (``correct`` included for readers)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_answer(
        cls, sample: Sample, parsed: ParsedAnswer | None, *, repeat: int = 0, **fields: Any
    ) -> ResultRecord:
        """The record of ``sample`` answered with ``parsed`` (None when the run gave no reply)."""
        ok = bool(parsed and parsed.ok)
        base: dict[str, Any] = dict(
            sample_id=sample.sample_id,
            task=sample.task,
            metric=sample.metric,
            truth=sample.answer,
            truth_label=sample.answer_label,
            answer_format=sample.answer_format,
            repeat=repeat,
            predicted=parsed.value if ok and parsed else None,
            parsed_ok=ok,
            parse_method=parsed.method if parsed else None,
        )
        if parsed is not None and not ok and fields.get("error") is None:
            base["error"] = parsed.error
        base.update(fields)
        return cls(**base)
