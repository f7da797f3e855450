"""Test-wide guards: no request may leave this machine, and no real provider key is used."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # unix sockets
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_local(address):
        raise RuntimeError(
            f"network access in tests is forbidden (tried {address!r}); use a local fake server"
        )
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise RuntimeError(
            f"network access in tests is forbidden (tried {address!r}); use a local fake server"
        )
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch, tmp_path_factory):
    """Real provider keys never reach a test; tests that need a key set a fake one."""
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(
        "HF_HUB_OFFLINE", "1"
    )  # the Hugging Face hub is never asked, not even by DNS
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # user state (knowledge base, expert registry) goes to a fresh folder per test
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path_factory.mktemp("home")))
