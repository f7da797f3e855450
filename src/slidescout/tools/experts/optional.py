"""Optional libraries that can break each other, named in one line.

PyPI's torchvision wheels are CUDA builds pinned to one torch release; beside a CPU torch their
compiled operators do not load (``RuntimeError: operator torchvision::nms does not exist``), and
every library that imports torchvision when it is installed fails with it: timm at import,
transformers' CLIP and SigLIP classes ("Could not import module 'CLIPModel'"). This module finds
that cause so the error names it instead of the symptom.
"""

from __future__ import annotations

import functools
import importlib.util


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ValueError, ImportError):  # a None placeholder in sys.modules
        return False


@functools.lru_cache(maxsize=1)
def torchvision_problem() -> str | None:
    """None when torchvision is absent or imports cleanly; else one line saying it is broken and
    how to fix it (the import is tried once per process)."""
    if not _installed("torchvision"):
        return None
    try:
        importlib.import_module("torchvision")
    except Exception as exc:  # noqa: BLE001 - RuntimeError from compiled ops, OSError, ...
        return broken_torchvision_message(exc)
    return None


def broken_torchvision_message(exc: BaseException) -> str:
    import importlib.metadata as md

    try:
        tv = md.version("torchvision")
    except md.PackageNotFoundError:
        tv = "?"
    try:
        torch_version = md.version("torch")
    except md.PackageNotFoundError:
        torch_version = "?"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return (
        f"torchvision {tv} is installed but does not load beside torch {torch_version} "
        f"({type(exc).__name__}: {first}); uninstall it (pip uninstall torchvision) or install "
        "the torchvision build made for this torch, from the same index as torch"
    )


__all__ = ["broken_torchvision_message", "torchvision_problem"]
