"""Golden request bodies (``tests/goldens/*.yaml``): how a preset's requests look on each route, each
field justified by the upstream line it comes from.

A golden file holds

- ``body``: the whole request body as slidescout sends it, normalised (:func:`normalise`): our
  prompt text, ids, signatures and image bytes become placeholders, everything else is compared
  as it is. Every line that names a field carries a ``#`` comment citing the upstream line it
  reproduces (``A:341``: file ``A`` of the header, line 341) or saying ``ours:`` and why it
  differs;
- ``upstream_only``: fields upstream sends that slidescout does not, each with its reason.

A field that appears in a body and not in its golden fails the conformance test until someone adds
it, with its justification.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

GOLDENS = Path(__file__).parent / "goldens"

# keys whose string values are our own prose (prompts, tool descriptions, results, questions) or
# opaque tokens; they are compared as placeholders
_TEXT_KEYS = {"text", "instructions", "system", "description", "thinking"}
_OPAQUE = {
    "id": "<id>",
    "call_id": "<id>",
    "tool_use_id": "<id>",
    "signature": "<signature>",
    "encrypted_content": "<encrypted>",
}
_DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,")
# a line that names a field: "key:" or "- key:" (a YAML mapping entry)
_FIELD_LINE = re.compile(r"^\s*(?:-\s+)?[A-Za-z_\"'][\w\"'.-]*\s*:")
_CITATION = re.compile(r"#.*(\b[A-Z]:\d+|\bours\b)")


def normalise(obj: Any, key: str | None = None) -> Any:
    """A request body with our prose, ids, signatures and image bytes as placeholders."""
    if isinstance(obj, dict):
        return {k: normalise(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v, key) for v in obj]
    if isinstance(obj, str):
        m = _DATA_URL.match(obj)
        if m:
            return f"<{m.group(1)} data URL>"
        if key in _OPAQUE:
            return _OPAQUE[key]
        if key == "data":
            return "<base64>"
        if key in _TEXT_KEYS or key in ("content", "output"):
            return "<text>"
    return obj


def load(name: str) -> dict[str, Any]:
    """A golden file's data (``body`` and ``upstream_only``)."""
    return yaml.safe_load((GOLDENS / f"{name}.yaml").read_text(encoding="utf-8"))


def unjustified(name: str) -> list[str]:
    """The lines of a golden file's ``body`` and ``upstream_only`` that name a field without a
    comment citing an upstream line (``X:123``) or saying ``ours``."""
    bad = []
    section = None
    for i, line in enumerate((GOLDENS / f"{name}.yaml").read_text(encoding="utf-8").splitlines()):
        if re.match(r"^(body|upstream_only)\s*:", line):
            section = line.split(":")[0]
            continue
        if re.match(r"^\S", line) and not line.startswith("#"):
            section = None
        if section and _FIELD_LINE.match(line) and not _CITATION.search(line):
            bad.append(f"{name}.yaml:{i + 1}: {line.strip()}")
    return bad


def as_yaml(body: Any) -> str:
    """``body`` as YAML, for writing a new golden file (then justify every field)."""
    return yaml.safe_dump({"body": body}, sort_keys=False, width=100, allow_unicode=True)
