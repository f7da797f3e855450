"""Providers: an authenticated SDK client (key, base URL, timeout). Model adapters use them.

Keys come only from the providers' usual environment variables (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``). A provider never shows its key: not in ``repr``, and every error text
passes through ``redact`` before it reaches a message or a log line.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlparse

from slidescout.agents.models.retry import Decision, SdkErrors
from slidescout.errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
PLACEHOLDER_KEY = "not-needed"

# key-like tokens that a server may echo back ("Incorrect API key provided: sk-ab***yz")
_KEYLIKE = re.compile(r"\b(sk-(?:ant-)?[A-Za-z0-9_\-*.]{4,}|Bearer\s+\S+)")


def _host(url: str | None) -> str:
    return (urlparse(url).hostname or "").lower() if url else ""


def check_base_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; else a ConfigError saying what is expected."""
    example = "expected e.g. http://localhost:8000/v1"
    if not url.strip():
        raise ConfigError(f"the base URL is empty; {example}")
    try:
        parsed = urlparse(url.strip())
        port = parsed.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise ConfigError(f"base URL {url!r} is malformed ({exc}); {example}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL; {example}")
    if port == 0:
        raise ConfigError(f"base URL {url!r}: port 0 is not a server's port; {example}")
    return url


def api_root(url: str, *, versioned: bool) -> str:
    """The base URL an SDK client wants, from either form a user may give: the host root
    (``http://HOST``) or the versioned root (``http://HOST/v1``).

    The ``openai`` SDK appends the endpoint to a versioned root (``/v1`` + ``/responses``), so a
    bare host gets ``/v1`` (a URL with any other path is taken as given: ``/api/v1``, a proxy's
    prefix). The ``anthropic`` SDK appends ``/v1/messages`` to the host root, so a trailing
    ``/v1`` is removed (``versioned=False``): ``http://HOST/v1`` would otherwise post to
    ``/v1/v1/messages``."""
    url = url.strip().rstrip("/")
    parsed = urlparse(url)
    path = parsed.path.rstrip("/")
    if versioned:
        return url + "/v1" if not path else url
    return url[: -len("/v1")] if path.endswith("/v1") else url


class Provider:
    """Base of the providers. ``custom_endpoint`` is True for any base URL that is not the
    provider's own (a local server, a proxy): such models are priced only from the user's file.

    ``versioned``: whether the SDK's base URL ends in the API version (OpenAI's ``/v1``) or is
    the host root (Anthropic's); either form a user gives is turned into it (``api_root``)."""

    name: str = ""
    key_env: str = ""
    default_url: str = ""
    versioned: bool = True

    def __init__(self, *, base_url: str | None, api_key: str, timeout_s: float) -> None:
        if base_url:
            check_base_url(base_url)
        self.base_url = api_root(base_url or self.default_url, versioned=self.versioned)
        self.timeout_s = float(timeout_s)
        self.__key = api_key
        self._client: Any = None
        self._errors: SdkErrors | None = None  # the SDK's exception classes, once it is loaded

    @property
    def custom_endpoint(self) -> bool:
        return _host(self.base_url) != _host(self.default_url)

    def redact(self, text: str) -> str:
        """``text`` with the key (and anything key-like) masked."""
        if not text:
            return text
        key = self.__key
        if key and len(key) >= 8:
            text = text.replace(key, "[redacted]")
        return _KEYLIKE.sub("[redacted]", text)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client, self._errors = self._make_client(self.__key)
        return self._client

    async def post(self, path: str, body: bytes) -> Any:
        """POST a JSON ``body`` (bytes, already encoded) to ``path`` through the SDK client: its
        auth and headers, base URL, timeout and exception types. The reply is the plain JSON
        the server sent (``cast_to=object``: no response model is built), or its text when it
        is not JSON (an HTML error page), for the adapter to say so."""
        return await self.client.post(path, cast_to=object, content=body)

    def _make_client(self, key: str) -> tuple[Any, SdkErrors]:  # pragma: no cover - abstract
        """The SDK client, and the SDK's exception classes (read while the SDK is at hand)."""
        raise NotImplementedError

    def classify(self, exc: BaseException) -> Decision | None:
        """The retry decision for an exception of this provider's SDK; None for any other (and
        for everything before the client exists: no SDK call can have failed yet)."""
        return self._errors.classify(exc) if self._errors is not None else None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None  # the SDK's classes stay known: a late error is still classified

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    __str__ = __repr__

    def __getstate__(self) -> dict[str, Any]:  # never pickle a key into a worker payload
        raise TypeError(
            f"{type(self).__name__} holds credentials and cannot be pickled; "
            "resolve the model again in the worker"
        )


def _key_from_env(env: str, *, custom: bool, hint: str) -> str:
    key = os.environ.get(env, "").strip()
    if key:
        return key
    if custom:
        return PLACEHOLDER_KEY  # local servers (vLLM, Ollama, llama.cpp) usually need none
    raise ConfigError(f"{env} is not set; export {env}=... {hint}")


class OpenAIProvider(Provider):
    """OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, proxies)."""

    name = "openai"
    key_env = "OPENAI_API_KEY"
    default_url = OPENAI_URL

    @classmethod
    def from_env(cls, base_url: str | None = None, *, timeout_s: float = 120.0) -> OpenAIProvider:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url:
            check_base_url(base_url)
        custom = _host(base_url) not in ("", _host(OPENAI_URL))
        key = _key_from_env(
            cls.key_env,
            custom=custom,
            hint="to use OpenAI, or pass --base-url for a local OpenAI-compatible server",
        )
        return cls(base_url=base_url, api_key=key, timeout_s=timeout_s)

    def _make_client(self, key: str) -> tuple[Any, SdkErrors]:
        import openai

        client = openai.AsyncOpenAI(
            api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
        )
        return client, SdkErrors(
            status=(openai.APIStatusError,),
            timeout=(openai.APITimeoutError,),
            connection=(openai.APIConnectionError,),
            invalid_response=(openai.APIResponseValidationError,),
        )


class AnthropicProvider(Provider):
    """Anthropic's Messages API, or a compatible endpoint at ``base_url``."""

    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    default_url = ANTHROPIC_URL
    versioned = False

    @classmethod
    def from_env(
        cls, base_url: str | None = None, *, timeout_s: float = 120.0
    ) -> AnthropicProvider:
        base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        if base_url:
            check_base_url(base_url)
        custom = _host(base_url) not in ("", _host(ANTHROPIC_URL))
        key = _key_from_env(cls.key_env, custom=custom, hint="to use Anthropic models")
        return cls(base_url=base_url, api_key=key, timeout_s=timeout_s)

    def _make_client(self, key: str) -> tuple[Any, SdkErrors]:
        import anthropic

        client = anthropic.AsyncAnthropic(
            api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
        )
        return client, SdkErrors(
            status=(anthropic.APIStatusError,),
            timeout=(anthropic.APITimeoutError,),
            connection=(anthropic.APIConnectionError,),
            invalid_response=(anthropic.APIResponseValidationError,),
        )
