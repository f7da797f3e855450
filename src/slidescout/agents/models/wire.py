"""Request bodies as JSON bytes, built from pieces encoded once.

A sample's history is append-only: every request repeats the previous one and adds a turn. The
adapters therefore encode each message once (``WireCache``: the message's provider JSON, kept
while the message lives) and join the pieces into the body (``encode_object``), so a step encodes
only what is new: the overview's base64 data URL is encoded once per sample, not once per
request.

The bytes are what the SDKs' own encoder writes (compact separators, UTF-8 as is, no NaN): a body
joined from pieces is byte-for-byte ``dumps`` of the same body as one object, because compact JSON
of an object or a list is its members' JSON joined by commas.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = ["Raw", "WireCache", "dumps", "encode_list", "encode_object"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
T = TypeVar("T")
P = ParamSpec("P")


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON bytes, as the ``openai`` and ``anthropic`` SDKs encode a body."""
    return _ENCODER.encode(obj).encode("utf-8")


@dataclass(frozen=True)
class Raw:
    """A value already encoded as JSON (a list of messages joined from cached pieces)."""

    data: bytes


def encode_list(items: Iterable[bytes]) -> bytes:
    """A JSON array of already-encoded items."""
    return b"[" + b",".join(items) + b"]"


def encode_object(fields: Mapping[str, Any]) -> bytes:
    """A JSON object whose values are Python values or :class:`Raw` bytes, in ``fields``' order."""
    parts = [
        dumps(k) + b":" + (v.data if isinstance(v, Raw) else dumps(v)) for k, v in fields.items()
    ]
    return b"{" + b",".join(parts) + b"}"


def decode(body: bytes) -> dict[str, Any]:
    """A body as a dict again (tests, debugging)."""
    out = json.loads(body)
    assert isinstance(out, dict)
    return out


class WireCache(Generic[T]):
    """What an adapter encoded for each message object, kept as long as that message lives.

    Keyed by the message's identity (and a variant: the layout choices that change its encoding),
    never by its content: the loop never changes a message once it is in the history, and a
    message rebuilt (an image dropped to fit the context) is a new object, encoded anew. An entry
    goes when its message is garbage-collected, so the cache holds exactly the live histories."""

    def __init__(self) -> None:
        self._slots: dict[int, tuple[weakref.ref[Any], dict[Any, T]]] = {}
        self.encoded = 0  # pieces encoded (misses), for tests and benchmarks

    def get(
        self, obj: Any, variant: Any, encode: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``obj``'s encoding under ``variant``: the cached one, else ``encode(*args, **kwargs)``
        (kept)."""
        oid = id(obj)
        slot = self._slots.get(oid)
        if slot is None or slot[0]() is not obj:
            slot = (weakref.ref(obj, self._dropper(oid)), {})
            self._slots[oid] = slot
        values = slot[1]
        if variant in values:
            return values[variant]
        value = values[variant] = encode(*args, **kwargs)
        self.encoded += 1
        return value

    def _dropper(self, oid: int) -> Callable[[weakref.ref[Any]], None]:
        def drop(ref: weakref.ref[Any]) -> None:
            slot = self._slots.get(oid)
            if slot is not None and slot[0] is ref:
                del self._slots[oid]

        return drop

    def __len__(self) -> int:
        return len(self._slots)
