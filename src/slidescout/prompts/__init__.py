"""Prompt templates (package data). ``load(name)`` returns the text and ``sha256(name)`` its hash."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

from slidescout.errors import ConfigError


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md``."""
    try:
        return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no prompt named {name!r} in slidescout/prompts") from None


def sha256(name: str) -> str:
    return hashlib.sha256(load(name).encode("utf-8")).hexdigest()


def render(name: str, **values: object) -> str:
    """Fill ``$placeholders`` of a prompt; unknown ones stay as they are."""
    return Template(load(name)).safe_substitute({k: str(v) for k, v in values.items()}).strip()


def read_file(path: str | Path) -> str:
    """A user's system prompt file (e.g. GIANT's exact text), or a one-line ``ConfigError``."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--system-prompt {path}: cannot read it ({type(exc).__name__}); give a UTF-8 text file"
        ) from None
    if not text.strip():
        raise ConfigError(f"--system-prompt {path}: the file is empty")
    return text


__all__ = ["load", "read_file", "render", "sha256"]
