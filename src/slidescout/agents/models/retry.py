"""Retries for provider calls: each adapter's ``should_retry`` decision, tenacity for the loop.

Each adapter classifies its own errors (inspect's ``ModelAPI.should_retry``): its provider knows
its SDK's exception classes (:class:`SdkErrors`), learnt when the client was made; there is no
central list of SDKs, and nothing is imported to classify an exception.

- 429: retry, honouring ``retry-after-ms`` / ``retry-after`` (capped at ``max_wait_s``).
- 408, 409, 5xx (529 overloaded included), timeouts, connection errors: retry with exponential
  backoff plus jitter, capped per wait and in total. A timeout is the SDK's (no byte for the
  timeout's length) or the request's own deadline (:class:`RequestTimeout`: the whole reply did
  not arrive in time, however steadily it trickled).
- Any other 4xx (400, 401, 403, 404, 422...) and invalid responses: fail at once with a clean
  ``ModelError(retryable=False)``: status and the provider's message, never the key.

Every retry is recorded as a ``RetryInfo``; exhausting the retries raises
``ModelError(retryable=True)`` that lists them (and carries them as ``.retries``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from slidescout.core.messages import RetryInfo
from slidescout.errors import ModelError

log = logging.getLogger("slidescout.models")

T = TypeVar("T")

_HINTS = {
    400: "the provider rejected the request",
    401: "the API key was refused; check {env}",
    403: "the key has no access to this model or feature",
    404: "the model or endpoint was not found; check the model id and base URL",
    413: "the request is too large; send fewer or smaller images",
    422: "the provider could not process the request",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. ``max_retries`` counts retries (attempts = max_retries + 1)."""

    max_retries: int = 5
    base_wait_s: float = 1.0
    max_wait_s: float = 60.0  # cap of one wait, retry-after included
    max_total_wait_s: float = 300.0  # cap of all waits of one request
    jitter: float = 0.25  # each backoff wait is multiplied by 1 + U(0, jitter)

    def backoff(self, retry_number: int) -> float:
        wait = self.base_wait_s * (2 ** max(0, retry_number - 1))
        wait *= 1.0 + random.uniform(0.0, self.jitter)
        return min(wait, self.max_wait_s)


@dataclass(frozen=True)
class Decision:
    retry: bool
    reason: str  # "429 rate limit", "500", "timeout", "connection error", "400"
    status: int | None = None
    retry_after: float | None = None
    message: str = ""  # the provider's own message (not yet redacted)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _provider_message(exc: Any) -> tuple[str, str | None]:
    """(message, error type) from an SDK status error's body."""
    body = getattr(exc, "body", None)
    err: Any = body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or ""
        kind = err.get("type") or err.get("code")
        return str(msg), (str(kind) if kind else None)
    if isinstance(body, str) and body.strip():
        return body.strip(), None
    return str(getattr(exc, "message", "") or ""), None


@dataclass(frozen=True)
class SdkErrors:
    """The exception classes of one provider SDK, and how to read them.

    A provider builds this from its own SDK when it creates its client (the SDK is imported by
    then), so classifying an exception never imports an SDK, and an exception from anywhere
    else is never mistaken for a provider error."""

    status: tuple[type[BaseException], ...] = ()
    timeout: tuple[type[BaseException], ...] = ()
    connection: tuple[type[BaseException], ...] = ()
    invalid_response: tuple[type[BaseException], ...] = ()

    def classify(self, exc: BaseException) -> Decision | None:
        """The decision for an exception of this SDK; None for anything else."""
        if isinstance(exc, self.timeout):
            return Decision(True, "timeout", message="request timed out")
        if isinstance(exc, self.connection):
            return Decision(True, "connection error", message="could not connect")
        if isinstance(exc, self.invalid_response):
            return Decision(
                False,
                "invalid response",
                getattr(exc, "status_code", None),
                None,
                "the response did not match the expected schema",
            )
        if isinstance(exc, self.status):
            return status_decision(
                int(getattr(exc, "status_code", 0) or 0),
                getattr(getattr(exc, "response", None), "headers", None),
                _provider_message(exc),
            )
        return None


def status_decision(status: int, headers: Any, message: tuple[str, str | None]) -> Decision:
    """The decision for an HTTP error status: 429, 408, 409 and 5xx are retried."""
    msg, kind = message
    if kind:
        msg = f"({kind}) {msg}" if msg else f"({kind})"
    if status == 429:
        return Decision(True, "429 rate limit", status, parse_retry_after(headers), msg)
    if status in (408, 409) or status >= 500:
        return Decision(True, str(status), status, parse_retry_after(headers), msg)
    return Decision(False, str(status), status, None, msg)


class RequestTimeout(ModelError):
    """One attempt of a request did not complete within its deadline (``--timeout``): connecting,
    sending, waiting and reading the whole reply together. Retryable, like the SDK's timeouts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


def model_error_decision(exc: ModelError) -> Decision:
    """A ``ModelError`` raised by an adapter itself says whether it may be retried."""
    reason = "timeout" if isinstance(exc, RequestTimeout) else "model error"
    return Decision(exc.retryable, reason, exc.status, exc.retry_after, str(exc))


Classify = Callable[[BaseException], "Decision | None"]  # None: not a provider error


def only_model_errors(exc: BaseException) -> Decision | None:
    """The classifier of a caller with no SDK: only ``ModelError`` is a provider error."""
    return model_error_decision(exc) if isinstance(exc, ModelError) else None


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    classify: Classify = only_model_errors,
    label: str,
    redact: Callable[[str], str] = lambda s: s,
    key_env: str = "the API key environment variable",
) -> tuple[T, list[RetryInfo]]:
    """Run ``fn`` with retries. Returns its result and the retries made.

    ``classify`` decides for each exception (the adapter's ``should_retry``): None means it is not
    a provider error. Provider errors become ``ModelError`` with a redacted message; any other
    exception (a bug) propagates unchanged.
    """
    retries: list[RetryInfo] = []

    def decide(exc: BaseException | None) -> Decision:
        found = classify(exc) if exc is not None else None
        return found if found is not None else Decision(False, "unknown")

    def _retry(exc: BaseException) -> bool:
        found = classify(exc)
        return found is not None and found.retry

    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        decision = decide(exc)
        if decision.retry_after is not None:
            return min(decision.retry_after, policy.max_wait_s)
        return policy.backoff(state.attempt_number)

    def _stop(state: RetryCallState) -> bool:
        if state.attempt_number > policy.max_retries:
            return True
        return state.idle_for + (state.upcoming_sleep or 0.0) > policy.max_total_wait_s

    def _before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        decision = decide(exc)
        wait = float(state.upcoming_sleep or 0.0)
        retries.append(
            RetryInfo(attempt=state.attempt_number, reason=decision.reason, wait_s=round(wait, 4))
        )
        log.warning(
            "%s: %s on attempt %d; retrying in %.2fs",
            label,
            decision.reason,
            state.attempt_number,
            wait,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(_retry),
        wait=_wait,
        stop=_stop,
        before_sleep=_before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        return await fn()

    failure: ModelError | None = None
    result: Any = None
    try:
        result = await retrying(attempt)
    except Exception as exc:
        decision = classify(exc)
        if decision is None or (isinstance(exc, ModelError) and not retries):
            raise
        failure = _final_error(decision, retries, label=label, redact=redact, key_env=key_env)
    if failure is not None:
        # raised outside the except block: the SDK exception (whose text or request may hold
        # secrets) is neither the cause nor the context of what the caller sees
        raise failure
    return result, retries


def _final_error(
    decision: Decision,
    retries: list[RetryInfo],
    *,
    label: str,
    redact: Callable[[str], str],
    key_env: str,
) -> ModelError:
    detail = redact(decision.message)[:600]
    if detail.startswith(f"{label}: "):  # a ModelError of the adapter already names the model
        detail = detail[len(label) + 2 :]
    attempts = len(retries) + 1
    what = f"HTTP {decision.status}" if decision.status else decision.reason
    if decision.reason == "model error" and not decision.status:
        what = ""
    if decision.retry:
        summary = ", ".join(r.reason for r in retries)
        msg = (
            f"{label}: gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
            f"{f' (retried: {summary})' if summary else ''}; last error{f' {what}' if what else ''}"
            f"{f': {detail}' if detail else ''}. Try again later or raise the retry limits."
        )
    else:
        hint = _HINTS.get(decision.status or 0, "the request was refused").format(env=key_env)
        msg = f"{label}: {what}{f': {detail}' if detail else ''} ({hint})"
    err = ModelError(
        redact(msg),
        retryable=decision.retry,
        status=decision.status,
        retry_after=decision.retry_after,
        retries=list(retries),
    )
    return err
