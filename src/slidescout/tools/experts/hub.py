"""Weights from the Hugging Face hub, with the user's own token (``HF_TOKEN`` or
``huggingface-cli login``). Every failure is a one-line ``ConfigError`` that says what to do.

Before any download the hub's endpoint is probed once (a few seconds at most): when it cannot be
reached, or ``HF_HUB_OFFLINE`` is set, the answer is at once "cannot reach the hub; pass
--weights", instead of huggingface_hub's retries and a message that blames the repository.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from slidescout.errors import ConfigError

PROBE_TIMEOUT_S = 4.0
WEIGHTS_HINT = "pass --weights PATH to `slidescout experts add` with weights you already have"


def _endpoint() -> str:
    try:
        from huggingface_hub import constants

        env = os.environ.get("HF_ENDPOINT")
        return (env or constants.ENDPOINT or "https://huggingface.co").rstrip("/")
    except Exception:  # noqa: BLE001 - old or broken huggingface_hub
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _reachable(endpoint: str, timeout: float) -> str | None:
    """None when ``endpoint`` answers an HTTP request within ``timeout`` seconds (any status),
    else why not. Runs in a daemon thread so a hanging name lookup cannot hold the caller."""
    import httpx

    result: list[str | None] = []

    def probe() -> None:
        try:
            httpx.head(endpoint, timeout=timeout, follow_redirects=False)
            result.append(None)
        except httpx.TimeoutException:
            result.append(f"no answer within {timeout:g} s")
        except (httpx.HTTPError, OSError) as exc:
            result.append(type(exc).__name__)

    t = threading.Thread(target=probe, daemon=True, name="slidescout-hub-probe")
    t.start()
    t.join(timeout + 1.0)
    return result[0] if result else f"no answer within {timeout:g} s"


class HubUnreachable(ConfigError):
    """The hub cannot be reached: a failure of the network, not of the input (exit status 1)."""

    exit_code = 1


def _offline(endpoint: str, why: str) -> ConfigError:
    host = urlsplit(endpoint).netloc or endpoint
    return HubUnreachable(f"cannot reach the hub ({host}: {why}); {WEIGHTS_HINT}")


def hub_download(repo: str, dest: Path, *, what: str, filenames: tuple[str, ...] = ()) -> Path:
    """Download ``repo`` into ``dest``: the first of ``filenames`` the repo has, or (none given) a
    snapshot of the whole repo. Returns the file or the folder."""
    try:
        import huggingface_hub as hub
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
        )
    except Exception:  # noqa: BLE001 - not installed, or broken
        raise ConfigError(
            f"{what}: downloading {repo!r} needs huggingface_hub (pip install huggingface_hub), "
            f"or {WEIGHTS_HINT}"
        ) from None
    endpoint = _endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise _offline(endpoint, "HF_HUB_OFFLINE is set")
    why = _reachable(endpoint, PROBE_TIMEOUT_S)
    if why is not None:
        raise _offline(endpoint, why)
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if not filenames:
            return Path(hub.snapshot_download(repo, local_dir=str(dest), token=token))
        for name in filenames:
            try:
                return Path(hub.hf_hub_download(repo, name, local_dir=str(dest), token=token))
            except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: the hub is gone
                raise
            except EntryNotFoundError:
                continue
        raise ConfigError(
            f"{what}: {repo!r} has none of {', '.join(filenames)}; download the weights "
            f"yourself and {WEIGHTS_HINT}"
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise _offline(endpoint, "the connection failed during the download") from None
    except GatedRepoError:
        raise ConfigError(
            f"{what}: {repo!r} is gated: accept its terms at https://huggingface.co/{repo} "
            "with your account, then log in (huggingface-cli login, or set HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{what}: no Hugging Face repo {repo!r} (or it is private and you are not "
            "logged in: huggingface-cli login, or set HF_TOKEN)"
        ) from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, disk
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"{what}: downloading {repo!r} failed ({type(exc).__name__}: {first}); check the "
            f"network, or {WEIGHTS_HINT}"
        ) from None


__all__ = ["HubUnreachable", "hub_download"]
