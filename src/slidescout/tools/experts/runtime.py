"""The expert runtime: patches of a region (or of all the tissue) through a model, in batches, on
the best device, with a reader pool that keeps the device fed.

    from slidescout.tools.experts import run_patches, load_card
    run = run_patches(slide, load_card("tumor.yaml"), Box(20000, 14000, 8000, 6000))
    run.probs, run.boxes, run.stats.patches_per_s, run.heatmap(slide).image

How it works:
- :func:`~slidescout.tools.experts.tiling.plan_patches` lays the grid (target mpp, patch size,
  tissue filter, a cap on the number of patches) and picks the pyramid level to read.
- Reader threads each fill one whole batch buffer with ``slide.patch_reader(level).fetch`` (pyvips
  ``Region.fetch``, one region per thread; they release the GIL) and resize to the patch size.
  At most ``prefetch`` batches are in flight and the buffers are recycled, so memory stays
  bounded for any region: ``(prefetch + 1) * batch * patch² * 3`` bytes.
- The calling thread runs the model on each batch in order (one shared instance per device from
  :func:`model_pool`, forward passes serialised by :func:`device_lock`). On CUDA the buffers are
  pinned and copied with ``non_blocking``; runners use ``inference_mode``, channels-last, and
  bf16 autocast.
- Timing: time the model waited for data, time it computed, time it waited for the device; the
  reader throughput is what the pool could deliver if the model never held it back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from queue import SimpleQueue
from typing import Any

import numpy as np
from PIL import Image

from slidescout.core.types import Box
from slidescout.tools.context import ToolCancelled
from slidescout.tools.experts import heatmap as hm
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.kinds import ExpertKind, get_kind
from slidescout.tools.experts.loading import resolve_device
from slidescout.tools.experts.pool import ModelPool, device_lock, model_pool
from slidescout.tools.experts.tiling import PatchPlan, plan_patches

DEFAULT_MAX_PATCHES = 100_000
DEFAULT_BATCH = {"cpu": 16, "gpu": 64}  # small CPU batches stay in cache; GPUs want big ones


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
            f"{self.device}, batch {self.batch_size}, {self.workers} reader thread{'s' if self.workers != 1 else ''}; "
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


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------
def _alloc(n: int, size: int, pinned: bool, prepared: bool) -> tuple[np.ndarray, Any]:
    """A batch buffer: uint8 (n, size, size, 3), or float32 (n, 3, size, size) for runners that
    take prepared input; on CUDA a pinned torch tensor and its NumPy view."""
    shape, dtype = ((n, 3, size, size), np.float32) if prepared else ((n, size, size, 3), np.uint8)
    if pinned:
        import torch

        t = torch.empty(shape, dtype=torch.float32 if prepared else torch.uint8).pin_memory()
        return t.numpy(), t
    arr = np.empty(shape, dtype)
    return arr, arr


def default_workers(device: str = "cpu") -> int:
    """Reader threads: on an accelerator, most cores (up to 8) feed it; on the CPU the model needs
    the cores itself, and one reader per 4 cores (at least one) outpaces any CPU model."""
    import os

    cpus = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    )
    if device == "cpu":
        return max(1, min(8, cpus // 4))
    return max(2, min(8, cpus - 1))


_THREADS_TUNED = False


def _leave_cores_for_readers(workers: int) -> None:
    """On the CPU, torch's intra-op threads default to every core, so they fight the reader
    threads (measured on 2 cores: 1,088 patches/s with 2 torch threads, 1,977 with 1). Lower them
    once to the cores the readers leave free; ``SLIDESCOUT_TORCH_THREADS`` overrides, and a value
    the user already lowered is kept."""
    global _THREADS_TUNED
    if _THREADS_TUNED:
        return
    import os

    import torch

    _THREADS_TUNED = True
    cpus = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    )
    want = int(os.environ.get("SLIDESCOUT_TORCH_THREADS", "0") or 0) or max(1, cpus - workers)
    if want < torch.get_num_threads() or os.environ.get("SLIDESCOUT_TORCH_THREADS"):
        torch.set_num_threads(want)


def run_patches(
    slide: Any,
    model: Card | Callable[[Any], np.ndarray],
    region: Box | tuple | None = None,
    *,
    mpp: float | None = None,
    patch_size: int | None = None,
    stride: int | None = None,
    min_tissue: float | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    prefetch: int | None = None,
    device: str | None = None,
    max_patches: int | None = DEFAULT_MAX_PATCHES,
    cancel: threading.Event | None = None,
    pool: ModelPool | None = None,
    labels: list[str] | None = None,
    output: str = "score",
    plan: PatchPlan | None = None,
    sink: Callable[[int, np.ndarray], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PatchRun:
    """Run ``model`` over the patches of ``region`` (None: all the tissue of the slide).

    ``model`` is a :class:`Card` (loaded once per device through the pool) or any callable taking
    uint8 patches (N, P, P, 3) and returning (N, K) values (then give ``mpp`` and ``patch_size``;
    ``labels`` and ``output`` describe its values). ``min_tissue`` defaults to 0.25 for the whole
    slide and 0 for a region. Raises ``PatchLimitExceeded`` (a ``ToolError``) past ``max_patches``
    and ``ToolCancelled`` when ``cancel`` is set. ``sink(first_index, outputs)`` takes each batch's
    raw outputs instead of collecting them (segmentation maps; ``PatchRun.outputs`` is then empty).
    ``progress(done, total)`` is called after each batch (patches).
    """
    t_start = time.perf_counter()
    card = model if isinstance(model, Card) else None
    if card is not None:
        c = card.card
        mpp, patch_size = mpp or c.mpp, patch_size or c.patch_size
        labels, output = list(c.labels), c.output
    if mpp is None or patch_size is None:
        raise ValueError("give mpp and patch_size for a model without a card")
    box = None if region is None else Box.of(region)
    if plan is None:
        plan = plan_patches(
            slide,
            box,
            mpp=mpp,
            patch_size=patch_size,
            stride=stride,
            min_tissue=(0.25 if box is None else 0.0) if min_tissue is None else min_tissue,
            max_patches=max_patches,
        )
    t_plan = time.perf_counter()
    dev = resolve_device(device)
    load_s = 0.0
    if card is not None:
        p = pool or model_pool()
        t0 = time.perf_counter()
        runner: Callable[[Any], np.ndarray] = p.get(card, dev)
        load_s = time.perf_counter() - t0
        dev = getattr(runner, "device", dev)
    else:
        runner = model  # type: ignore[assignment]
        dev = getattr(runner, "device", dev)
    n = len(plan)
    workers = max(1, workers or default_workers(str(dev)))
    batch_size = max(
        1, min(batch_size or DEFAULT_BATCH["cpu" if str(dev) == "cpu" else "gpu"], n or 1)
    )
    stats = RuntimeStats(
        patches=n,
        batches=math.ceil(n / batch_size),
        batch_size=batch_size,
        workers=workers,
        device=str(dev),
        plan_s=t_plan - t_start,
        load_s=load_s,
    )
    if str(dev) == "cpu":
        _leave_cores_for_readers(workers)
    outputs = _pipeline(
        slide,
        plan,
        runner,
        stats,
        prefetch or workers + 1,
        str(dev).startswith("cuda"),
        cancel,
        sink,
        progress,
    )
    stats.total_s = time.perf_counter() - t_start
    notes = []
    if plan.mpp < plan.slide_mpp * 0.99:
        notes.append(
            f"the model wants {plan.mpp:g} µm/px but the slide is scanned at "
            f"{plan.slide_mpp:.3g} µm/px: patches were upsampled"
        )
    return PatchRun(
        plan=plan,
        outputs=outputs,
        output_kind=output,
        labels=list(labels or []),
        stats=stats,
        model_name=card.name if card else getattr(model, "__name__", "model"),
        score_range=(
            (card.card.score_range[0], card.card.score_range[1])
            if card and card.card.score_range
            else None
        ),
        heatmap_label=card.card.heatmap_label if card else None,
        notes=notes,
    )


def _pipeline(
    slide: Any,
    plan: PatchPlan,
    runner: Callable[[Any], np.ndarray],
    stats: RuntimeStats,
    prefetch: int,
    pinned: bool,
    cancel: threading.Event | None,
    sink: Callable[[int, np.ndarray], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Outputs (M, K) of every patch, in plan order; with ``sink``, each batch's raw outputs go to
    ``sink(first_index, outputs)`` instead (segmentation maps) and an empty array comes back."""
    n, bsz, size = len(plan), stats.batch_size, plan.patch_size
    if n == 0:
        return np.zeros((0, 0), np.float32)
    reader = slide.patch_reader(plan.level)
    lx, ly = plan.level_xy()
    r = plan.read_size
    prefetch = max(1, min(prefetch, stats.batches))
    prepare = getattr(runner, "prepare", None) if getattr(runner, "host_prepare", False) else None
    buffers: SimpleQueue = SimpleQueue()
    for _ in range(prefetch + 1):
        buffers.put(_alloc(bsz, size, pinned, prepare is not None))
    stop = threading.Event()
    read_times: list[float] = []

    def read_batch(b: int) -> tuple[Any, int]:
        buf = buffers.get()
        if stop.is_set():
            buffers.put(buf)
            return buf, 0
        t0 = time.perf_counter()
        arr = buf[0]
        lo, hi = b * bsz, min(n, (b + 1) * bsz)
        for j, i in enumerate(range(lo, hi)):
            tile = reader.fetch(int(lx[i]), int(ly[i]), r, r)
            if r != size:
                tile = np.asarray(
                    Image.fromarray(tile).resize((size, size), Image.Resampling.BILINEAR)
                )
            if prepare is not None:
                prepare(tile, arr[j])
            else:
                arr[j] = tile
        read_times.append(time.perf_counter() - t0)
        return buf, hi - lo

    out: np.ndarray | None = None
    lock = device_lock(stats.device)
    pending: deque[Future] = deque()
    ex = ThreadPoolExecutor(max_workers=stats.workers, thread_name_prefix="slidescout-reader")
    try:
        nxt = 0
        while nxt < stats.batches and len(pending) < prefetch:
            pending.append(ex.submit(read_batch, nxt))
            nxt += 1
        for b in range(stats.batches):
            t0 = time.perf_counter()
            buf, m = pending.popleft().result()
            t1 = time.perf_counter()
            stats.data_wait_s += t1 - t0
            if nxt < stats.batches:
                pending.append(ex.submit(read_batch, nxt))
                nxt += 1
            if cancel is not None and cancel.is_set():
                raise ToolCancelled("the run was cancelled while an expert model was running")
            with lock:
                t2 = time.perf_counter()
                y = np.asarray(runner(buf[1][:m]), np.float32)
                t3 = time.perf_counter()
            buffers.put(buf)
            stats.device_wait_s += t2 - t1
            stats.model_s += t3 - t2
            if progress is not None:
                progress(b * bsz + m, n)
            if sink is not None:
                sink(b * bsz, y)
                continue
            if y.ndim == 1:
                y = y[:, None]
            if out is None:
                out = np.empty((n, y.shape[1]), np.float32)
            out[b * bsz : b * bsz + m] = y.reshape(m, -1)
    except BaseException:
        stop.set()
        for f in pending:
            f.cancel()
        for _ in range(stats.workers):
            buffers.put(_alloc(1, 1, False, False))  # wake readers blocked on the buffer queue
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        stats.read_s = float(sum(read_times))
    if out is None:
        return np.zeros((0, 0), np.float32)
    return out


__all__ = [
    "DEFAULT_MAX_PATCHES",
    "HeatmapImage",
    "PatchRun",
    "RuntimeStats",
    "default_workers",
    "run_patches",
]
