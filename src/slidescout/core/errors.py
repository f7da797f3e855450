"""Exception hierarchy. Every message says what was wrong and what to do."""

from __future__ import annotations


class SlidescoutError(Exception):
    """Base of every error slidescout raises on purpose (user-facing, one line)."""


class SlideError(SlidescoutError):
    """A slide cannot be opened or a region cannot be read (bad file, bad box)."""


class ToolError(SlidescoutError):
    """A tool tells the model what was wrong with its call; the loop sends it back as an observation."""


class ModelError(SlidescoutError):
    """A model provider failed. ``retryable`` says whether trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        retries: list | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retries = list(retries or [])  # RetryInfo records of the attempts before this failure
        self.status = status
        self.retry_after = retry_after


class BudgetExceeded(SlidescoutError):
    """A budget (steps, tokens, dollars, wall time) ran out. ``kind`` names which."""

    def __init__(self, message: str, *, kind: str = "usd") -> None:
        super().__init__(message)
        self.kind = kind


class DatasetError(SlidescoutError):
    """A dataset file is missing, malformed, or not in the expected schema."""


class ConfigError(SlidescoutError):
    """A bad option, model id, preset, card or plugin: the user's configuration is wrong."""


class TraceError(SlidescoutError):
    """A trace file or run directory is missing, malformed, or not slidescout's."""
