"""Check a card against its checkpoint: load once, run two blank patches, and compare the output
with what the card promises (labels count, embedding size, map channels and geometry). Every
mismatch is a one-line ``ConfigError`` that names the field to fix."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from slidescout.errors import ConfigError
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.cpuform import Progress
from slidescout.tools.experts.loading import Runner, load_runner


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_model` found."""

    output_width: int
    load_s: float
    forward_s: float


def check_model(
    card: Card, device: str = "cpu", runner: Runner | None = None, progress: Progress | None = None
) -> CheckReport:
    """Load once and run two blank patches; ``ConfigError`` when the output does not fit the card."""
    t0 = time.perf_counter()
    runner = runner or load_runner(card, device, progress)
    t1 = time.perf_counter()
    c = card.card
    blank = np.full((2, c.patch_size, c.patch_size, 3), 230, np.uint8)
    try:
        y = runner(blank)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"model card {card.file.name}: the model fails on a batch of "
            f"{c.patch_size}×{c.patch_size} RGB patches ({_first_line(exc)}); check "
            "'patch_size' and that the model takes (N, 3, H, W) input"
        ) from None
    t2 = time.perf_counter()
    if c.spatial:
        return _check_maps(card, y, t1 - t0, t2 - t1)
    if c.kind.tool == "zero_shot":
        labels = list(c.labels) or ["tumor", "normal tissue"]
        try:
            probs = runner.classifier(labels)(blank)  # type: ignore[attr-defined]
        except Exception as exc:
            raise ConfigError(
                f"model card {card.file.name}: the text side fails on the prompts "
                f"{c.prompts} ({_first_line(exc)})"
            ) from None
        if probs.shape != (2, len(labels)) or not np.all(np.isfinite(probs)):
            raise ConfigError(
                f"model card {card.file.name}: label probabilities of shape {probs.shape} "
                f"(want (2, {len(labels)})) or not finite"
            )
    if y.ndim != 2 or y.shape[0] != 2:
        raise ConfigError(
            f"model card {card.file.name}: the model returned shape {tuple(y.shape)} for "
            "2 patches; it must return one row of values per patch"
        )
    k = int(y.shape[1])
    if c.kind.returns == "embedding":
        if c.embedding_dim is not None and k != c.embedding_dim:
            raise ConfigError(
                f"model card {card.file.name}: the model outputs {k} values per patch but "
                f"field 'embedding_dim' says {c.embedding_dim}"
            )
    elif k != len(c.labels):
        raise ConfigError(
            f"model card {card.file.name}: the model outputs {k} values per patch but the "
            f"card lists {len(c.labels)} labels ({', '.join(c.labels)}); fix field 'labels'"
        )
    if not np.all(np.isfinite(y)):
        raise ConfigError(
            f"model card {card.file.name}: the model returned NaN or infinite values on "
            "blank patches"
        )
    return CheckReport(k, t1 - t0, t2 - t1)


def _check_maps(card: Card, y: np.ndarray, load_s: float, forward_s: float) -> CheckReport:
    c = card.card
    name = card.file.name
    if y.ndim != 4 or y.shape[0] != 2:
        raise ConfigError(
            f"model card {name}: output '{c.output}' needs maps (N, C, h, w), but the model "
            f"returned shape {tuple(y.shape)} for 2 patches"
        )
    k, h, w = (int(v) for v in y.shape[1:])
    want = c.num_outputs
    if k != want:
        layout = (
            "one channel per label"
            if c.output == "mask"
            else "NP background, NP foreground, H, V, then one type channel per label"
            if c.decoder == "hovernet"
            else f"object probability, then {c.rays} ray distances"
            if c.decoder == "stardist"
            else "one channel of instance ids"
            if c.decoder == "label_map"
            else "background and foreground"
        )
        raise ConfigError(
            f"model card {name}: the model returns {k} channels but the card needs {want} "
            f"({layout})"
        )
    if h != w or h > c.patch_size or (c.patch_size - h) % 2:
        raise ConfigError(
            f"model card {name}: output maps of {h}x{w} for {c.patch_size} px patches; they "
            "must be square, as large as the input, or smaller and centred (an even margin)"
        )
    if h < c.stride:
        raise ConfigError(
            f"model card {name}: output maps of {h} px leave gaps between patches {c.stride} px "
            f"apart; set field 'overlap' to at least {c.patch_size - h}"
        )
    if not np.all(np.isfinite(y)):
        raise ConfigError(
            f"model card {name}: the model returned NaN or infinite values on blank patches"
        )
    return CheckReport(k, load_s, forward_s)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


__all__ = ["CheckReport", "check_model"]
