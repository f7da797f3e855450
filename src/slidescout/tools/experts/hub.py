"""Weights from the Hugging Face hub, with the user's own token (``HF_TOKEN`` or
``huggingface-cli login``). Every failure is a one-line ``ConfigError`` that says what to do."""

from __future__ import annotations

import os
from pathlib import Path

from slidescout.errors import ConfigError


def hub_download(repo: str, dest: Path, *, what: str, filenames: tuple[str, ...] = ()) -> Path:
    """Download ``repo`` into ``dest``: the first of ``filenames`` the repo has, or (none given) a
    snapshot of the whole repo. Returns the file or the folder."""
    try:
        import huggingface_hub as hub
        from huggingface_hub.utils import (
            EntryNotFoundError,
            GatedRepoError,
            RepositoryNotFoundError,
        )
    except Exception:  # noqa: BLE001 - not installed, or broken
        raise ConfigError(
            f"{what}: downloading {repo!r} needs huggingface_hub (pip install huggingface_hub), "
            "or download the weights yourself and pass --weights PATH"
        ) from None
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if not filenames:
            return Path(hub.snapshot_download(repo, local_dir=str(dest), token=token))
        for name in filenames:
            try:
                return Path(hub.hf_hub_download(repo, name, local_dir=str(dest), token=token))
            except EntryNotFoundError:
                continue
        raise ConfigError(
            f"{what}: {repo!r} has none of {', '.join(filenames)}; download the weights "
            "yourself and pass --weights PATH"
        )
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
            "network, or download the weights yourself and pass --weights PATH"
        ) from None


__all__ = ["hub_download"]
