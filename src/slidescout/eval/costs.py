"""What a run cost, as the providers bill it: per task, the billed dollars with the prompt cache's
reads and writes split out, what the same tokens would cost uncached, the dollars per correct
answer, and the input tokens the providers reported beside slidescout's own estimate by their
published rules (``agents.models.accounting``). ``slidescout report`` prints it."""

from __future__ import annotations

from typing import Any

from slidescout.eval.metrics import ResultRecord

__all__ = ["cost_summary", "cost_table"]


def _sum(values: list[Any]) -> float | None:
    """The sum, or None when any value is unknown (a model without a price)."""
    return None if any(v is None for v in values) else float(sum(values))


def cost_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: ``n``, ``correct``, ``billed_usd``, ``cache_read_tokens``, ``cache_read_usd``,
    ``cache_write_tokens``, ``cache_write_usd``, ``uncached_usd``, ``usd_per_correct``,
    ``input_tokens`` (reported) and ``estimated_input_tokens`` (None where a record predates the
    estimate). A dollar figure is None when some record's cost is unknown."""
    by: dict[str, list[ResultRecord]] = {}
    for r in records:
        rec = ResultRecord.model_validate(r)
        by.setdefault(rec.task, []).append(rec)
    out: dict[str, dict[str, Any]] = {}
    for task, recs in by.items():
        billed = _sum([r.cost_usd for r in recs])
        correct = sum(r.correct is True for r in recs)
        estimates = [r.estimated_input_tokens for r in recs]
        out[task] = {
            "n": len(recs),
            "correct": correct,
            "billed_usd": billed,
            "cache_read_tokens": sum(r.cached_input_tokens or 0 for r in recs),
            "cache_read_usd": _sum([r.cache_read_usd for r in recs]),
            "cache_write_tokens": sum(r.cache_write_tokens or 0 for r in recs),
            "cache_write_usd": _sum([r.cache_write_usd for r in recs]),
            "uncached_usd": _sum([r.uncached_usd for r in recs]),
            "usd_per_correct": billed / correct if billed is not None and correct else None,
            "input_tokens": sum(r.input_tokens or 0 for r in recs),
            "estimated_input_tokens": None
            if any(e is None for e in estimates)
            else sum(e or 0 for e in estimates),
        }
    return out


def _usd(v: float | None) -> str:
    if v is None:
        return "unknown"
    return f"${v:.4f}" if v < 10 else f"${v:,.2f}"


def _tok(n: int, usd: float | None) -> str:
    return f"{n:,} ({_usd(usd)})" if n else "-"


def cost_table(records: list[dict[str, Any]], *, title: str = "Cost (as billed)") -> Any:
    """The cost per task as a rich table (None when no record has a cost)."""
    summ = cost_summary(records)
    if not summ:
        return None
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in (
        "task",
        "billed",
        "cache reads",
        "cache writes",
        "uncached",
        "$/correct",
        "input tok (reported / estimated)",
    ):
        t.add_column(col, justify="left" if col == "task" else "right")
    for task, c in summ.items():
        est = c["estimated_input_tokens"]
        t.add_row(
            task,
            _usd(c["billed_usd"]),
            _tok(c["cache_read_tokens"], c["cache_read_usd"]),
            _tok(c["cache_write_tokens"], c["cache_write_usd"]),
            _usd(c["uncached_usd"]),
            "-" if c["usd_per_correct"] is None else _usd(c["usd_per_correct"]),
            f"{c['input_tokens']:,} / " + ("-" if est is None else f"{est:,}"),
        )
    return t
