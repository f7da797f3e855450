"""The ``Model`` protocol and the base of the provider adapters.

A model adapter translates provider-neutral messages to one wire format and back; the
``Provider`` it holds is only the authenticated client (key, base URL, timeout). So one OpenAI
Chat adapter serves OpenAI, vLLM, Ollama and llama.cpp alike.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

from slidescout.agents.models import accounting, json_actions
from slidescout.agents.models.accounting import Bill
from slidescout.agents.models.pricing import Price, price_table
from slidescout.agents.models.profile import ModelApi, ModelProfile
from slidescout.agents.models.providers import Provider
from slidescout.agents.models.retry import (
    Decision,
    RequestTimeout,
    RetryPolicy,
    call_with_retries,
    model_error_decision,
)
from slidescout.agents.models.wire import WireCache, encode_object
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from slidescout.core.model_settings import ModelSettings
from slidescout.errors import ModelError

log = logging.getLogger("slidescout.models")


@runtime_checkable
class Model(Protocol):
    """What the loop needs from a planner model: a name, what its route can carry (its profile),
    its own default settings, and one request at a time. Settings travel with each request."""

    @property
    def name(self) -> str:
        """``provider:model``, e.g. ``openai:gpt-5``."""
        ...

    @property
    def profile(self) -> ModelProfile:
        """What the model's route can carry (tools, images, reasoning, thinking...)."""
        ...

    @property
    def settings(self) -> ModelSettings:
        """The model's own default settings (the lowest layer of the merge)."""
        ...

    async def request(self, req: ModelRequest) -> ModelResponse: ...

    async def aclose(self) -> None: ...


@dataclass
class TokenCounts:
    """Raw token counts of one call. ``input`` includes cached and cache-written tokens;
    ``output`` includes reasoning tokens."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cached: int = 0
    cache_write: int = 0


@dataclass
class Parsed:
    message: AssistantMessage
    counts: TokenCounts
    stop_reason: str | None = None


# -- helpers shared by the adapters -------------------------------------------------------------


def window_of(
    provider: str, model: str, options: AdapterOptions, custom_endpoint: bool
) -> int | None:
    """The context window a profile states: the option's, else the table's (not for a custom
    endpoint, whose model may share a name with another)."""
    if options.context_window is not None:
        return options.context_window
    return None if custom_endpoint else accounting.context_window(provider, model)


_B64_CACHE: OrderedDict[str, str] = OrderedDict()
_B64_LOCK = threading.Lock()


class EncodedImages:
    """Base64 of the images a model sends, by hash: every step re-sends the images in its context.

    Each adapter owns one, so the cache lives as long as the model that fills it (the images of
    the samples in flight), and bounded (``size`` images)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def b64(self, part: ImagePart) -> str:
        if part.data is None:
            raise ModelError(
                f"image {part.image.sha256[:12]} has no bytes in memory; load it from the run's "
                "blob store before sending the request",
                retryable=False,
            )
        key = part.image.sha256
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        enc = base64.b64encode(part.data).decode("ascii")
        with self._lock:
            self._cache[key] = enc
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return enc

    def data_url(self, part: ImagePart) -> str:
        return f"data:{part.image.media_type};base64,{self.b64(part)}"


def system_text(messages: list[Message]) -> str | None:
    texts = [m.content for m in messages if isinstance(m, SystemMessage) and m.content.strip()]
    return "\n\n".join(texts) if texts else None


def result_text(result: ToolResultPart) -> str:
    text = "\n".join(c.text for c in result.content if isinstance(c, TextPart)).strip()
    if not text:
        n = sum(isinstance(c, ImagePart) for c in result.content)
        text = f"({n} image{'s' if n != 1 else ''} below)" if n else "(no output)"
    return text


def result_images(result: ToolResultPart) -> list[ImagePart]:
    return [c for c in result.content if isinstance(c, ImagePart)]


def arguments_json(call: ToolCallPart) -> str:
    """A past call's arguments as the model sent them (raw when they were not valid JSON)."""
    if call.parse_error and call.raw_arguments is not None:
        return call.raw_arguments
    return json.dumps(call.arguments)


def parse_arguments(call_id: str, name: str, raw: Any) -> ToolCallPart:
    """A ``ToolCallPart`` from arguments as a provider sent them: a JSON string or an object.
    Malformed arguments never raise: they set ``parse_error`` and keep ``raw_arguments``."""
    if isinstance(raw, dict):
        return ToolCallPart(id=call_id, name=name, arguments=raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ToolCallPart(id=call_id, name=name, arguments={})
    if not isinstance(raw, str):
        return ToolCallPart(
            id=call_id,
            name=name,
            raw_arguments=json.dumps(raw, default=str),
            parse_error="the arguments must be a JSON object",
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolCallPart(
            id=call_id,
            name=name,
            raw_arguments=raw,
            parse_error=f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
        )
    if not isinstance(value, dict):
        return ToolCallPart(
            id=call_id,
            name=name,
            raw_arguments=raw,
            parse_error="the arguments must be a JSON object",
        )
    return ToolCallPart(id=call_id, name=name, arguments=value)


def to_plain(obj: Any) -> dict[str, Any]:
    """An SDK response object as a plain dict, extra fields the server added included."""
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_none=True, warnings=False)
    raise ModelError(f"unexpected response object {type(obj).__name__}", retryable=False)


@dataclass(frozen=True)
class AdapterOptions:
    """How an adapter is built (not per request): function calling and images (None: by the
    model's name), extra body fields every request carries, a user's price, the retry policy, the
    model's context window in tokens (None: the table's, ``token_rules.toml``), and two
    Responses-only options (``reasoning``: force the reasoning-model classification; ``store``:
    keep responses on OpenAI's side)."""

    tools: bool | None = None
    images: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    price: Price | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    context_window: int | None = None
    reasoning: bool | None = None
    store: bool = False


ADAPTER_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(AdapterOptions))


class ModelAdapter:
    """Base of the provider adapters: request translation, retries, usage and cost.

    Subclasses set ``api`` and ``path`` (the endpoint, under the SDK client's base URL) and
    implement ``profile_for`` (what the route carries), ``build_request(req, settings) -> dict``
    (the body's fields; the history as :class:`~slidescout.agents.models.wire.Raw` bytes joined
    from the pieces ``wire`` keeps per message, so each message is encoded once) and
    ``parse_response(raw) -> Parsed``. The adapter never changes after it is built: the settings
    a request carries arrive with it (``ModelRequest.settings``), over the adapter's own
    defaults (``settings``).

    The body goes out as JSON bytes through the SDK client's ``post`` (its auth, headers, base
    URL, timeout and error types), and the reply comes back as plain JSON: the SDK's typed
    request and response models are not built, since the adapter reads and writes the wire
    format itself.
    """

    api: ClassVar[ModelApi]
    path: ClassVar[str]

    def __init__(
        self,
        provider: Provider,
        model: str,
        options: AdapterOptions | None = None,
        settings: ModelSettings | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.name = f"{provider.name}:{model}"
        self.options = options or AdapterOptions()
        self.profile: ModelProfile = self.profile_for(
            provider.name, model, self.options, custom_endpoint=provider.custom_endpoint
        )
        own = settings or ModelSettings()
        self.profile.check(own)  # a setting the route cannot carry: one line, now
        self.settings: ModelSettings = self.default_settings().merged(own)
        self.images = EncodedImages()  # base64 of the images sent, by hash
        self.wire: WireCache[Any] = WireCache()  # each message's encoded pieces, while it lives

    # -- to implement -----------------------------------------------------------------------
    @classmethod
    def profile_for(  # pragma: no cover - abstract
        cls, provider: str, model: str, options: AdapterOptions, *, custom_endpoint: bool
    ) -> ModelProfile:
        raise NotImplementedError

    def default_settings(self) -> ModelSettings:
        """Settings the route needs when nobody sets them (Claude's required ``max_tokens``)."""
        return ModelSettings()

    def build_request(  # pragma: no cover - abstract
        self, req: ModelRequest, settings: ModelSettings
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, body: bytes) -> Any:
        """One POST of ``body`` to the route's endpoint; the reply as plain JSON (or text)."""
        return await self.provider.post(self.path, body)

    def parse_response(self, raw: dict[str, Any]) -> Parsed:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.provider.base_url

    def connect(self) -> None:
        """Build the SDK client now (importing the SDK), before samples start: done on the first
        request instead, the import would stall every sample running in the event loop."""
        self.provider.client  # noqa: B018 - the property builds it

    def should_retry(self, exc: BaseException) -> Decision | None:
        """Whether a failed call may succeed if tried again (inspect's ``should_retry``); None
        when ``exc`` is not a provider error (a bug: it propagates unchanged). Only this
        adapter's SDK is consulted, and only once its client exists."""
        if isinstance(exc, ModelError):
            return model_error_decision(exc)
        return self.provider.classify(exc)

    def prepare(self, req: ModelRequest) -> ModelRequest:
        """The request as this model can take it (JSON actions, no images)."""
        if not self.profile.tools:
            req = json_actions.to_text_only(req)
        if not self.profile.images:
            req = json_actions.without_images(req)
        return req

    def price(self) -> Price | None:
        """USD per 1M tokens: a price the user gave, else the table's (None: unknown; a custom
        endpoint is priced only from the user's own file)."""
        if self.options.price is not None:
            return self.options.price
        return price_table().lookup(
            self.provider.name, self.model, custom_endpoint=self.provider.custom_endpoint
        )

    def bill(self, counts: TokenCounts) -> Bill | None:
        """What ``counts`` cost by the provider's rules (``accounting.bill``); None: unknown price."""
        price = self.price()
        if price is None:
            return None
        return accounting.bill(
            self.provider.name,
            price,
            input_tokens=counts.input,
            output_tokens=counts.output,
            cached_input_tokens=counts.cached,
            cache_write_tokens=counts.cache_write,
        )

    def cost(self, counts: TokenCounts) -> float | None:
        found = self.bill(counts)
        return None if found is None else found.usd

    def usage(self, counts: TokenCounts, estimate: int) -> Usage:
        """The call's usage: the provider's counts (they win), billed; the estimate beside them.
        A server that reports no usage is counted by the estimate."""
        if counts.input <= 0 and counts.output <= 0:
            counts = TokenCounts(input=estimate)
        found = self.bill(counts)
        return Usage(
            input_tokens=counts.input,
            output_tokens=counts.output,
            reasoning_tokens=counts.reasoning,
            cached_input_tokens=counts.cached,
            cache_write_tokens=counts.cache_write,
            estimated_input_tokens=estimate,
            cost_usd=None if found is None else found.usd,
            cache_read_usd=None if found is None else found.cache_read_usd,
            cache_write_usd=None if found is None else found.cache_write_usd,
            uncached_usd=None if found is None else found.uncached_usd,
        )

    def request_settings(self, req: ModelRequest) -> ModelSettings:
        """The adapter's defaults under the request's settings, less what the route cannot carry
        (an agent has checked its settings against the profile already; a direct caller's
        extra setting is left out, not sent)."""
        merged = self.settings.merged(req.settings)
        kept = self.profile.keep(merged)
        if kept != merged:
            log.debug(
                "%s: not sent (the route cannot carry them): %s",
                self.name,
                sorted(set(merged.given()) - set(kept.given())),
            )
        return kept

    async def request(self, req: ModelRequest) -> ModelResponse:
        t0 = time.monotonic()
        prepared = self.prepare(req)
        estimate = accounting.estimate_request(self.provider.name, self.model, prepared)
        fields = self.build_request(prepared, self.request_settings(req))
        if self.options.extra_body:
            fields = {**fields, **self.options.extra_body}
        body = encode_object(fields)
        request_bytes = len(body)
        raw, retries = await call_with_retries(
            lambda: self._send_checked(body),
            self.options.retry,
            classify=self.should_retry,
            label=self.name,
            redact=self.provider.redact,
            key_env=self.provider.key_env,
        )
        parsed = self._parse(raw)
        message = parsed.message
        if not self.profile.tools:
            message = json_actions.reparse_message(message)
        usage = self.usage(parsed.counts, estimate)
        return ModelResponse(
            message=message,
            usage=usage,
            model=self.name,
            api=self.api,
            latency_s=round(time.monotonic() - t0, 4),
            request_bytes=request_bytes,
            retries=retries,
            stop_reason=parsed.stop_reason,
        )

    def _parse(self, raw: Any) -> Parsed:
        """The reply read, or a ``ModelError`` that says what came back instead of an API reply."""
        if isinstance(raw, (str, bytes)):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            what = (
                "an HTML page"
                if "<html" in text[:2000].lower() or "<!doctype" in text[:200].lower()
                else "text"
            )
            raise ModelError(
                f"{self.name}: the server at {self.base_url} answered with {what}, not an API reply; "
                "check that --base-url is the API root (e.g. http://localhost:8000/v1)",
                retryable=False,
            )
        try:
            return self.parse_response(to_plain(raw))
        except ModelError:
            raise
        except Exception as exc:  # a malformed response: say so, without the payload
            raise ModelError(
                f"{self.name}: could not read the provider's response "
                f"({type(exc).__name__}: {self.provider.redact(str(exc))[:200]})",
                retryable=False,
            ) from None

    async def _send_checked(self, body: bytes) -> Any:
        """``send`` within the request's deadline, with a reply that is not valid JSON (cut off by
        a proxy or a crash) as a retryable ``ModelError`` instead of a bare decoding error.

        The deadline (the provider's ``timeout_s``, ``--timeout``) bounds the whole attempt:
        connecting, sending, waiting and reading the reply. The SDK's own timeout bounds each
        read only, so a server that trickles its reply would otherwise hold a request forever."""
        limit = self.provider.timeout_s
        self.provider.client  # noqa: B018 - made (its SDK imported) before the clock starts
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                return await self.send(body)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise RequestTimeout(
                f"{self.name}: timed out after {limit:g} s (--timeout) without a complete reply "
                f"from {self.base_url}; the server is stalled or too slow"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelError(
                f"{self.name}: the server at {self.base_url} sent a reply that is not valid JSON "
                f"({exc.msg}, at char {exc.pos}: cut off?)",
                retryable=True,
            ) from None

    async def aclose(self) -> None:
        await self.provider.aclose()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, api={self.api!r}, base_url={self.base_url!r}, "
            f"tools={self.profile.tools}, images={self.profile.images})"
        )
