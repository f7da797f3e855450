"""Reading what a model's replies say about the run: the rethink block, the supporting steps, and
why a sample that did not answer ended."""

from __future__ import annotations

import json
import re

from slidescout.core.trace import ErrorEvent, NoteEvent, Rethink, Trace

__all__ = ["RETHINK_BLOCK", "failure_reason", "parse_rethink", "parse_supporting_steps"]

RETHINK_BLOCK = re.compile(r"<rethink>\s*(\{.*?\})\s*</rethink>", re.S | re.I)
_SUPPORT = re.compile(r"supporting steps?\s*[:=]\s*([\d,\s and]+)", re.I)


def parse_rethink(text: str) -> Rethink | None:
    """The last ``<rethink>{json}</rethink>`` block of a reply, if any and valid."""
    blocks = RETHINK_BLOCK.findall(text or "")
    for raw in reversed(blocks):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            conf = data.get("confidence")
            try:
                conf = None if conf is None else max(0.0, min(1.0, float(conf)))
            except (TypeError, ValueError):
                conf = None
            diff = data.get("differential") or []
            return Rethink(
                hypothesis=str(data.get("hypothesis", "")),
                differential=[str(d) for d in diff] if isinstance(diff, list) else [str(diff)],
                confidence=conf,
                needed_evidence=str(data.get("needed_evidence", "")),
            )
    return None


def parse_supporting_steps(text: str) -> list[int]:
    m = _SUPPORT.search(text or "")
    return sorted({int(n) for n in re.findall(r"\d+", m.group(1))}) if m else []


_STATUS_TEXT = {
    "max_steps": "the step budget ran out before the model answered (raise --max-steps)",
    "budget_usd": "the dollar budget was spent",
    "budget_tokens": "the token budget was spent",
    "budget_time": "the time limit was reached",
    "cancelled": "the run was interrupted",
    "stopped": "stopped by the user",
    "error": "the run failed",
}


def failure_reason(trace: Trace) -> str | None:
    """Why a sample that did not answer ended, in one line (never a traceback): its fatal error (else
    its last error), the note of the limit it hit, or what the status means."""
    if trace.status in ("answered", "running"):
        return None
    errors = [ev for ev in reversed(trace.events) if isinstance(ev, ErrorEvent)]
    chosen = next((e for e in errors if e.fatal), errors[0] if errors else None)
    text = chosen.message if chosen is not None else None
    if text is None and (trace.status.startswith("budget") or trace.status == "cancelled"):
        text = next(
            (
                ev.message
                for ev in reversed(trace.events)
                if isinstance(ev, NoteEvent) and not ev.message.startswith("Traceback")
            ),
            None,
        )
    lines = [
        ln.strip()
        for ln in (text or "").splitlines()
        if ln.strip() and not ln.startswith("Traceback")
    ]
    if lines and lines[0] != trace.status:
        return lines[0][:500]
    return _STATUS_TEXT.get(trace.status, trace.status)
