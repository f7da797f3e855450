"""The untrained module a ``state_dict`` card names: a built-in architecture (``archs.py``,
``vit.py``), an author's own ``package.module:Class``, or a timm model. Failures, including a timm
whose import breaks on a mismatched torchvision, are one-line ``ConfigError``s."""

from __future__ import annotations

import difflib
import importlib.util
from typing import Any

from slidescout.errors import ConfigError
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.optional import broken_torchvision_message, torchvision_problem

BUILTIN_ARCHITECTURES = ("tiny_cnn", "resnet18", "resnet34", "resnet50", "vit_* (timm names)")


def build_architecture(card: Card) -> Any:
    """The untrained module a ``state_dict`` card names: a built-in (``archs.py``), an author's own
    class (``package.module:Class``, built with ``architecture_args``) or a timm model.

    The output head has one unit per label; an ``embedding`` card has no head (``num_classes=0``),
    so the model returns its pooled features. ``architecture_args`` may override ``num_classes``.
    """
    c = card.card
    arch = (c.architecture or "").strip()
    args = dict(c.architecture_args)
    n_out = int(args.pop("num_classes", args.pop("num_outputs", c.head_outputs)))
    forced_timm = arch.startswith(("timm:", "timm/"))
    name = arch[5:] if forced_timm else arch
    if not forced_timm and ":" in name:
        return _build_custom(card, name)
    if not forced_timm and name in builtin_architectures():
        from slidescout.tools.experts.archs import ARCHITECTURES

        if name.startswith("vit_"):
            args.setdefault("img_size", c.patch_size)
        try:
            return ARCHITECTURES[name](n_out, **args)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model card {card.file.name}: field 'architecture_args': {exc}"
            ) from None
    hint = "" if forced_timm else _did_you_mean(name)
    if hint and not _timm_installed():
        raise ConfigError(
            f"model card {card.file.name}: field 'architecture': {name!r} is not a built-in "
            f"architecture{hint} (other names need timm, which is not installed)"
        )
    timm = _import_timm(card, arch)
    try:
        return timm.create_model(name, pretrained=False, num_classes=n_out, **args)
    except Exception as exc:  # RuntimeError: unknown model, TypeError: bad kwargs
        raise ConfigError(
            f"model card {card.file.name}: timm cannot build {name!r} ({_first_line(exc)}){hint}"
        ) from None


def _timm_installed() -> bool:
    try:
        return importlib.util.find_spec("timm") is not None
    except (ValueError, ImportError):  # a None placeholder in sys.modules
        return False


def _did_you_mean(name: str) -> str:
    """ "; did you mean resnet18?" for a name close to a built-in architecture, else ""."""
    known = builtin_architectures()
    squashed = {k.replace("_", "").replace("-", ""): k for k in known}
    key = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    close = [squashed[key]] if key in squashed else []
    close = close or difflib.get_close_matches(name.lower(), known, n=2, cutoff=0.75)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def builtin_architectures() -> tuple[str, ...]:
    """Names of the built-in architectures (see ``archs.py``)."""
    from slidescout.tools.experts.archs import ARCHITECTURES

    return tuple(ARCHITECTURES)


def _import_timm(card: Card, arch: str) -> Any:
    """timm, or a one-line ConfigError saying why it cannot be imported and how to fix it."""
    builtins = ", ".join(BUILTIN_ARCHITECTURES)
    try:
        timm = importlib.import_module("timm")  # optional: the [timm] extra
    except ImportError as exc:
        if getattr(exc, "name", None) in ("timm", None) and "timm" in str(exc):
            raise ConfigError(
                f"model card {card.file.name}: architecture {arch!r} needs timm, which is not installed "
                f"(pip install timm); built-in architectures: {builtins}"
            ) from None
        raise ConfigError(_timm_broken(card, exc, builtins)) from None
    except Exception as exc:  # noqa: BLE001 - e.g. RuntimeError from a torchvision built for another torch
        raise ConfigError(_timm_broken(card, exc, builtins)) from None
    return timm


def _timm_broken(card: Card, exc: BaseException, builtins: str) -> str:
    msg = f"{type(exc).__name__}: {_first_line(exc)}"
    fix = "reinstall timm and its dependencies (pip install -U timm)"
    if "torchvision" in msg:
        fix = broken_torchvision_message(exc)
    elif problem := torchvision_problem():
        fix = problem
    return (
        f"model card {card.file.name}: timm is installed but fails to import ({msg}); {fix}; or "
        f"use a built-in architecture ({builtins}) or TorchScript"
    )


def _build_custom(card: Card, spec: str) -> Any:
    """``package.module:Class`` (or a factory function) called with the card's architecture_args."""
    import importlib

    mod_name, _, attr = spec.partition(":")
    where = f"model card {card.file.name}: field 'architecture' {spec!r}"
    if not mod_name or not attr:
        raise ConfigError(f"{where}: write it as package.module:Class")
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the author's module's
        raise ConfigError(
            f"{where}: cannot import {mod_name!r} ({type(exc).__name__}: "
            f"{_first_line(exc)}); is it installed or on PYTHONPATH?"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{where}: {mod_name!r} has no attribute {attr!r}")
    if not callable(obj):
        raise ConfigError(f"{where}: {attr!r} is not a class or function")
    try:
        return obj(**card.card.architecture_args)
    except Exception as exc:  # noqa: BLE001 - the author's constructor
        raise ConfigError(
            f"{where}: building it with architecture_args {card.card.architecture_args} "
            f"failed ({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


__all__ = ["BUILTIN_ARCHITECTURES", "build_architecture", "builtin_architectures"]
