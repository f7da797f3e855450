"""Retries for slide downloads: tenacity with backoff on connection errors, 429 and 5xx.

A 429 or 503 with ``Retry-After`` waits what the server asked (up to ``max_retry_after``).
Any other 4xx fails that slide at once (:class:`SlideFailed`). Every wait is configurable so
tests run with millisecond waits.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt


class SlideFailed(Exception):
    """This slide cannot be had; the message is the one-line reason."""


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, a short or inconsistent response)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``base * 2**n`` (with jitter) up to ``cap`` seconds."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0
    timeout: float = 60.0  # seconds without progress on one request


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_response(resp: httpx.Response, what: str) -> None:
    """Raise :class:`TransientError` for 429/5xx, :class:`SlideFailed` for another 4xx."""
    code = resp.status_code
    if code < 400:
        return
    reason = f"HTTP {code} {resp.reason_phrase or ''}".strip() + f" from {what}"
    if code == 429 or code >= 500:
        raise TransientError(reason, retry_after_seconds(resp.headers.get("retry-after")))
    raise SlideFailed(reason)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | httpx.TransportError)


def wait_seconds(policy: RetryPolicy, state: RetryCallState) -> float:
    """The wait before the next attempt: the server's ``Retry-After``, else jittered backoff."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, TransientError) and exc.retry_after is not None:
        return min(exc.retry_after, policy.max_retry_after)
    backoff = min(policy.cap, policy.base * 2 ** max(0, state.attempt_number - 1))
    return backoff * (0.5 + random.random() / 2)


def retrying(policy: RetryPolicy) -> AsyncRetrying:
    """An ``async for attempt in retrying(p): with attempt: ...`` loop; the last error is re-raised."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        retry=retry_if_exception(is_retryable),
        wait=lambda s: wait_seconds(policy, s),
        reraise=True,
    )


def describe(exc: BaseException) -> str:
    """One line for an error that ended a slide's download."""
    if isinstance(exc, SlideFailed | TransientError):
        return str(exc)
    if isinstance(exc, httpx.TransportError):
        text = str(exc).splitlines()[0] if str(exc) else ""
        return f"connection failed ({type(exc).__name__}{': ' + text if text else ''})"
    if isinstance(exc, OSError):
        return (
            f"file error: {exc.strerror or exc} ({exc.filename})"
            if exc.filename
            else f"file error: {exc}"
        )
    return f"{type(exc).__name__}: {exc}"
