"""Expert kinds: what a model card's ``output`` means, as a registry.

A kind (an :class:`ExpertKind`) says what the model returns for each patch and how the rest of
slidescout reads it: which tool runs it (``patch_classifier``, ``segment`` or ``zero_shot``; the
same path ``slidescout experts run`` takes), whether the card lists one label per value, how many
values the model must produce, the card format it needs, and, for classifiers, how its outputs
become class probabilities (the heatmap, class fractions and the tool's text follow from that).

Built in: ``logits``, ``probabilities``, ``score``, ``embedding``, ``mask``, ``instances``,
``zero_shot``, ``slide``. A plugin adds a kind with an entry point in ``slidescout.expert_kinds`` whose value
is an ``ExpertKind``; a card then names it in ``output``. Adding a kind is this one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from slidescout.core.registry import Registry

__all__ = ["EXPERT_KINDS", "CardShape", "ExpertKind", "get_kind", "softmax"]

ExpertTool = Literal["patch_classifier", "segment", "zero_shot", "slide_classifier"]


class CardShape(Protocol):
    """What a kind reads of a card to count the values its model returns."""

    @property
    def labels(self) -> list[str]: ...

    @property
    def embedding_dim(self) -> int | None: ...

    @property
    def decoder(self) -> str: ...

    @property
    def rays(self) -> int: ...


def softmax(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities of logits (per row)."""
    z = outputs - outputs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _one_per_label(card: CardShape) -> int | None:
    return len(card.labels)


def _embedding_width(card: CardShape) -> int | None:
    return card.embedding_dim


def _instance_channels(card: CardShape) -> int | None:
    if card.decoder == "stardist":
        return 1 + card.rays
    if card.decoder == "label_map":
        return 1
    if card.decoder == "hovernet":
        return 4 + len(card.labels)
    return 2  # foreground


@dataclass(frozen=True)
class ExpertKind:
    """One meaning of a card's ``output``.

    Attributes:
        name: the value of ``output`` in a card.
        description: one line for help and ``experts catalog``.
        tool: the tool that runs such a model (and the path ``experts run`` takes).
        needs_labels: the card lists one label per value (or per map channel).
        returns: ``values`` (a row per patch), ``embedding`` (features, no classes) or
            ``maps`` (per-pixel maps: segmentation).
        num_outputs: values (or channels) per patch the model must return; None: any.
        card_format: the one weights format such a card loads with (None: any).
        probabilities: a classifier's class probabilities from its raw outputs (None: not a
            classifier).
        scalar: one score per patch, scaled to [0, 1] for the heatmap.
    """

    name: str
    description: str
    tool: ExpertTool = "patch_classifier"
    needs_labels: bool = True
    returns: Literal["values", "embedding", "maps"] = "values"
    num_outputs: Callable[[CardShape], int | None] = _one_per_label
    card_format: str | None = None
    probabilities: Callable[[np.ndarray], np.ndarray] | None = None
    scalar: bool = False

    @property
    def spatial(self) -> bool:
        return self.returns == "maps"

    @property
    def is_classifier(self) -> bool:
        return self.probabilities is not None


BUILTIN_KINDS: dict[str, ExpertKind] = {
    "logits": ExpertKind("logits", "class logits, one per label", probabilities=softmax),
    "probabilities": ExpertKind(
        "probabilities", "class probabilities, one per label", probabilities=lambda p: p
    ),
    "score": ExpertKind("score", "one score per label (e.g. a regression)", scalar=True),
    "embedding": ExpertKind(
        "embedding",
        "the model's pooled features (no classes)",
        needs_labels=False,
        returns="embedding",
        num_outputs=_embedding_width,
    ),
    "mask": ExpertKind(
        "mask", "per-pixel class logits (semantic segmentation)", tool="segment", returns="maps"
    ),
    "instances": ExpertKind(
        "instances",
        "maps decoded to nuclei (HoVer-Net, foreground, StarDist or label maps)",
        tool="segment",
        needs_labels=False,
        returns="maps",
        num_outputs=_instance_channels,
    ),
    "zero_shot": ExpertKind(
        "zero_shot",
        "a CLIP or SigLIP model: labels scored against text prompts",
        tool="zero_shot",
        needs_labels=False,
        returns="embedding",
        num_outputs=_embedding_width,
        card_format="transformers",
    ),
    # a slide-level head over a tile encoder's cached features (slidehead.py: the head, its
    # training with `experts train-head`, and the slide_classifier tool)
    "slide": ExpertKind(
        "slide",
        "class probabilities for a whole slide from its tile features (attention-MIL or linear)",
        tool="slide_classifier",
        card_format="state_dict",
        probabilities=lambda p: p,
    ),
}


def _as_kind(obj: object, name: str) -> ExpertKind:
    if not isinstance(obj, ExpertKind):
        raise TypeError(f"{obj!r} is not an ExpertKind")
    return obj


EXPERT_KINDS: Registry[ExpertKind] = Registry(
    "slidescout.expert_kinds", "expert kind", BUILTIN_KINDS, _as_kind
)


def get_kind(name: str) -> ExpertKind:
    """The kind a card's ``output`` names (built-in or a plugin's)."""
    return EXPERT_KINDS.get(name)
