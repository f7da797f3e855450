"""What a patch run returns: per-patch outputs with their level-0 boxes (:class:`PatchRun`: class
probabilities, fractions, top patches, heatmaps) and where the time went (:class:`RuntimeStats`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from slidescout.core.types import Box
from slidescout.tools.experts import heatmap as hm
from slidescout.tools.experts.kinds import ExpertKind, get_kind
from slidescout.tools.experts.tiling import PatchPlan


@dataclass
class RuntimeStats:
    """Where the time went. ``wait_fraction``: share of the model thread's busy time spent waiting
    for the readers (0 = the device never starved)."""

    patches: int
    batches: int
    batch_size: int
    workers: int
    device: str
    total_s: float = 0.0
    plan_s: float = 0.0
    load_s: float = 0.0
    model_s: float = 0.0
    data_wait_s: float = 0.0
    device_wait_s: float = 0.0
    read_s: float = 0.0  # summed over reader threads
    threads: int | None = None  # torch threads the CPU model ended with

    @property
    def patches_per_s(self) -> float:
        return self.patches / self.total_s if self.total_s > 0 else 0.0

    @property
    def wait_fraction(self) -> float:
        busy = self.data_wait_s + self.model_s
        return self.data_wait_s / busy if busy > 0 else 0.0

    @property
    def model_patches_per_s(self) -> float:
        return self.patches / self.model_s if self.model_s > 0 else float("inf")

    @property
    def reader_patches_per_s(self) -> float:
        """What the pool delivers when never held back: patches / (read time / workers)."""
        return self.patches * self.workers / self.read_s if self.read_s > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        d.update(
            patches_per_s=round(self.patches_per_s, 1),
            wait_fraction=round(self.wait_fraction, 3),
            model_patches_per_s=_finite(self.model_patches_per_s),
            reader_patches_per_s=_finite(self.reader_patches_per_s),
        )
        return d

    def describe(self) -> str:
        return (
            f"{self.patches} patches in {self.total_s:.2f} s ({self.patches_per_s:.0f}/s) on "
            f"{self.device}{f' ({self.threads} torch threads)' if self.threads else ''}, batch "
            f"{self.batch_size}, {self.workers} reader thread{'s' if self.workers != 1 else ''}; "
            f"the model waited for "
            f"data {self.wait_fraction:.0%} of its time"
        )


def _finite(v: float) -> float | None:
    return round(v, 1) if math.isfinite(v) else None


@dataclass
class PatchRun:
    """Per-patch outputs of one run, their level-0 boxes, and how to draw them."""

    plan: PatchPlan
    outputs: np.ndarray  # (M, K) raw model outputs
    output_kind: str  # an expert kind's name (``kinds.py``): logits, probabilities, score...
    labels: list[str]
    stats: RuntimeStats
    model_name: str = ""
    score_range: tuple[float, float] | None = None
    heatmap_label: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def boxes(self) -> np.ndarray:
        return self.plan.boxes()

    @property
    def kind(self) -> ExpertKind:
        return get_kind(self.output_kind)

    @property
    def probs(self) -> np.ndarray | None:
        """Class probabilities (M, K) for classifiers (what the kind makes of the outputs)."""
        to_probs = self.kind.probabilities
        return to_probs(self.outputs) if to_probs is not None else None

    @property
    def is_classifier(self) -> bool:
        return self.kind.is_classifier

    @property
    def is_scalar(self) -> bool:
        """One score per patch (not a classifier, not an embedding)."""
        return self.kind.scalar

    def label_index(self, label: str | None) -> int | None:
        label = label or self.heatmap_label
        if label is None:
            return 0 if self.is_scalar else None
        if label not in self.labels:
            raise ValueError(
                f"unknown label {label!r}; the model's labels are {', '.join(self.labels)}"
            )
        return self.labels.index(label)

    def values(self, label: str | None = None) -> np.ndarray:
        """The scalar per patch a heatmap shows: a class probability, or a score scaled to [0, 1]."""
        i = self.label_index(label)
        if self.is_classifier:
            probs = self.probs
            assert probs is not None
            return probs.max(axis=1) if i is None else probs[:, i]
        if self.is_scalar:
            v = self.outputs[:, i or 0]
            if self.score_range is not None:
                lo, hi = self.score_range
            else:
                lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
            return np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(v)
        raise ValueError(
            "an embedding has no scalar per patch; use heatmap(), which maps it to colours"
        )

    def class_fractions(self) -> dict[str, float]:
        """Share of patches whose most probable class is each label (classifiers only)."""
        probs = self.probs
        if probs is None or not len(probs):
            return {}
        counts = np.bincount(probs.argmax(axis=1), minlength=len(self.labels))
        return {lab: float(c / len(probs)) for lab, c in zip(self.labels, counts, strict=False)}

    def mean_probs(self) -> dict[str, float]:
        probs = self.probs
        if probs is None or not len(probs):
            return {}
        return {lab: float(p) for lab, p in zip(self.labels, probs.mean(axis=0), strict=False)}

    def top(self, label: str | None = None, k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` patches with the highest heatmap value: box and value."""
        if not len(self.outputs) or not (self.is_classifier or self.is_scalar):
            return []
        v = self.values(label)
        order = np.argsort(-v, kind="stable")[:k]
        boxes = self.boxes
        return [{"box": [int(b) for b in boxes[i]], "value": float(v[i])} for i in order]

    def heatmap_colours(self, label: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
        """Per-patch colours (M, 3), alphas (M,), and a sentence saying what the colours mean."""
        if not (self.is_classifier or self.is_scalar):  # an embedding: no value per patch
            return (
                hm.pca_colours(self.outputs),
                np.full(len(self.outputs), 0.6, np.float32),
                "colours are the first three principal components of the patch embeddings "
                "(similar colours = similar patches)",
            )
        i = self.label_index(label)
        if self.is_classifier and i is None:
            probs = self.probs
            assert probs is not None
            win = probs.argmax(axis=1)
            colours = np.array([hm.class_colour(int(c))[0] for c in win], np.float32).reshape(-1, 3)
            legend = ", ".join(
                f"{hm.class_colour(j)[1]} = {lab}" for j, lab in enumerate(self.labels)
            )
            return (
                colours,
                0.25 + 0.45 * probs.max(axis=1),
                f"colour = most probable class ({legend}); stronger = more confident",
            )
        v = self.values(label)
        what = (
            f"P({self.labels[i]})"
            if self.is_classifier and i is not None
            else (f"{self.labels[i] if self.labels and i is not None else 'score'}")
        )
        return (
            hm.colormap(v).astype(np.float32),
            np.full(len(v), 0.55, np.float32),
            f"{what}: {hm.SCALE_TEXT}",
        )

    def heatmap(
        self,
        slide: Any = None,
        label: str | None = None,
        *,
        max_side: int = 1000,
        background: bool = True,
    ) -> HeatmapImage:
        """The heatmap over the plan's region: blended with the slide when ``background`` (needs
        ``slide``), else on white. ``image``, level-0 ``box``, ``mpp`` and a ``legend``."""
        region = self.plan.region
        colours, alpha, legend = self.heatmap_colours(label)
        if background and slide is not None:
            view = slide.read(region, max_side=max_side)
            base, box, mpp, level = np.asarray(view.image), view.box, view.mpp, view.level
            size = (view.width, view.height)
        else:
            scale = min(1.0, max_side / max(region.w, region.h))
            size = (max(1, round(region.w * scale)), max(1, round(region.h * scale)))
            base, box, level = None, region, None
            mpp = self.plan.slide_mpp * region.w / size[0]
        img = hm.render(self.plan, colours, alpha, box.as_tuple(), size, base)
        return HeatmapImage(image=img, box=box, mpp=mpp, level=level, legend=legend)

    def grid(self, label: str | None = None) -> np.ndarray:
        """(rows, cols) heatmap values (NaN where no patch ran)."""
        return hm.grid_of(self.plan, self.values(label))


@dataclass
class HeatmapImage:
    image: np.ndarray
    box: Box
    mpp: float | None
    level: int | None
    legend: str


__all__ = ["HeatmapImage", "PatchRun", "RuntimeStats"]
