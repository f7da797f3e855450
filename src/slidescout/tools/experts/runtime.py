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
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import numpy as np
from PIL import Image

from slidescout.core.types import Box
from slidescout.tools.context import ToolCancelled
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.loading import resolve_device
from slidescout.tools.experts.pool import ModelPool, device_lock, model_pool
from slidescout.tools.experts.results import HeatmapImage, PatchRun, RuntimeStats
from slidescout.tools.experts.tiling import PatchPlan, plan_patches

DEFAULT_MAX_PATCHES = 100_000
DEFAULT_BATCH = {"cpu": 16, "gpu": 64}  # small CPU batches stay in cache; GPUs want big ones
# a segmentation net keeps full-resolution activations: on the CPU one patch at a time stays in
# cache (a 256 px UNet costs about half the CPU a patch alone as in batches of 16; see
# docs/benchmarks.md, "Expert models on whole slides")
SPATIAL_CPU_BATCH = 1


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


def _cpus() -> int:
    import os

    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    )


def _threads_override() -> int:
    import os

    return int(os.environ.get("SLIDESCOUT_TORCH_THREADS", "0") or 0)


def _leave_cores_for_readers(workers: int) -> None:
    """On the CPU, torch's intra-op threads default to every core, so they fight the reader
    threads (measured on 2 cores: 1,088 patches/s with 2 torch threads, 1,977 with 1). A run
    starts with the cores the readers leave free; :func:`_use_idle_cores` gives the model the
    readers' cores too once it sees them idle. ``SLIDESCOUT_TORCH_THREADS`` fixes the number."""
    import torch

    want = _threads_override() or max(1, _cpus() - workers)
    if want != torch.get_num_threads():
        torch.set_num_threads(want)


def _oversubscribed() -> bool:
    """More runnable threads than cores over the last minute (load average; ours included)."""
    import os

    try:
        return os.getloadavg()[0] > _cpus() + 0.5
    except OSError:
        return False


def _use_idle_cores(stats: RuntimeStats, batches_done: int, read_times: list[float]) -> None:
    """Give the model the cores the readers leave idle, from the batches so far: the readers need
    (read time per batch) / (model time per batch) cores; torch gets the most threads that leaves
    them (a small CNN keeps one thread beside one busy reader on 2 cores; a segmentation net whose
    patches take far longer to run than to read gets both). Called after the first batch and again
    after the fourth, with better estimates; the model's time is assumed to scale with threads."""
    import math

    import torch

    if _threads_override() or batches_done < 1 or not read_times or stats.model_s <= 0:
        return
    if _oversubscribed():
        return  # no core is idle: other processes use them, and waiting OpenMP threads stall
    per_read = sum(read_times) / len(read_times)
    cur = torch.get_num_threads()
    one_thread = stats.model_s / batches_done * cur  # model time per batch on one thread
    cpus = _cpus()
    for want in range(cpus, 0, -1):  # the most threads whose readers still keep up
        needed = per_read / (one_thread / want)
        if want + math.ceil(max(0.0, needed - 0.15)) <= cpus:
            break
    else:
        want = max(1, cpus - stats.workers)
    if want != cur:
        torch.set_num_threads(want)
    stats.threads = want


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
    stain: str | None = None,
    stain_target: Path | None = None,
) -> PatchRun:
    """Run ``model`` over the patches of ``region`` (None: all the tissue of the slide).

    ``model`` is a :class:`Card` (loaded once per device through the pool) or any callable taking
    uint8 patches (N, P, P, 3) and returning (N, K) values (then give ``mpp`` and ``patch_size``;
    ``labels`` and ``output`` describe its values). ``min_tissue`` defaults to 0.25 for the whole
    slide and 0 for a region. Raises ``PatchLimitExceeded`` (a ``ToolError``) past ``max_patches``
    and ``ToolCancelled`` when ``cancel`` is set. ``sink(first_index, outputs)`` takes each batch's
    raw outputs instead of collecting them (segmentation maps; ``PatchRun.outputs`` is then empty).
    ``progress(done, total)`` is called after each batch (patches). ``stain`` normalises every
    patch first (``macenko``, ``vahadane``, ``reinhard``; ``none`` turns a card's off; default:
    the card's ``stain_norm``), fitted once on the tissue of the region (or slide).
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
    runner, dev, load_s = _runner(model, card, pool, device)
    stats = _start_stats(len(plan), dev, card, workers, batch_size, t_plan - t_start, load_s)
    normalize, method = _stain(slide, card, box, stain, stain_target, len(plan))
    outputs = _pipeline(
        slide,
        plan,
        runner,
        stats,
        prefetch or stats.workers + 1,
        dev.startswith("cuda"),
        cancel,
        sink,
        progress,
        normalize,
    )
    stats.total_s = time.perf_counter() - t_start
    model_name = card.name if card else getattr(model, "__name__", "model")
    return _patch_run(plan, outputs, output, labels, stats, card, model_name, method)


def _start_stats(
    n: int,
    dev: str,
    card: Card | None,
    workers: int | None,
    batch_size: int | None,
    plan_s: float,
    load_s: float,
) -> RuntimeStats:
    """The run's worker and batch sizes (defaults from the device), recorded in fresh stats; on
    CPU, torch's threads are set to leave cores for the patch readers."""
    workers = max(1, workers or default_workers(dev))
    batch_size = max(1, min(batch_size or _default_batch(dev, card), n or 1))
    stats = RuntimeStats(
        patches=n,
        batches=math.ceil(n / batch_size),
        batch_size=batch_size,
        workers=workers,
        device=dev,
        plan_s=plan_s,
        load_s=load_s,
    )
    if dev == "cpu":
        _leave_cores_for_readers(workers)
        import torch

        stats.threads = torch.get_num_threads()
    return stats


def _patch_run(
    plan: PatchPlan,
    outputs: Any,
    output: str,
    labels: list[str] | None,
    stats: RuntimeStats,
    card: Card | None,
    model_name: str,
    method: str | None,
) -> PatchRun:
    return PatchRun(
        plan=plan,
        outputs=outputs,
        output_kind=output,
        labels=list(labels or []),
        stats=stats,
        model_name=model_name,
        score_range=(
            (card.card.score_range[0], card.card.score_range[1])
            if card and card.card.score_range
            else None
        ),
        heatmap_label=card.card.heatmap_label if card else None,
        notes=_run_notes(plan, method),
    )


def _runner(
    model: Card | Callable[[Any], np.ndarray],
    card: Card | None,
    pool: ModelPool | None,
    device: str | None,
) -> tuple[Callable[[Any], np.ndarray], str, float]:
    """The callable that scores a batch (a card's model, loaded once per device through the
    pool), the device it runs on, and the seconds its loading took."""
    dev = resolve_device(device)
    load_s = 0.0
    if card is not None:
        p = pool or model_pool()
        t0 = time.perf_counter()
        runner: Callable[[Any], np.ndarray] = p.get(card, dev)
        load_s = time.perf_counter() - t0
    else:
        runner = model  # type: ignore[assignment]
    return runner, str(getattr(runner, "device", dev)), load_s


def _run_notes(plan: PatchPlan, method: str | None) -> list[str]:
    """What the caller should know about how the patches were prepared."""
    notes = [f"patches stain-normalised ({method})"] if method else []
    if plan.mpp < plan.slide_mpp * 0.99:
        notes.append(
            f"the model wants {plan.mpp:g} µm/px but the slide is scanned at "
            f"{plan.slide_mpp:.3g} µm/px: patches were upsampled"
        )
    return notes


def _default_batch(device: str, card: Card | None) -> int:
    if device != "cpu":
        return DEFAULT_BATCH["gpu"]
    return SPATIAL_CPU_BATCH if card is not None and card.card.spatial else DEFAULT_BATCH["cpu"]


def _stain(
    slide: Any,
    card: Card | None,
    box: Box | None,
    stain: str | None,
    target: Path | None,
    n: int,
) -> tuple[Callable[[np.ndarray], np.ndarray] | None, str | None]:
    """The patch normaliser asked for (or the card's), fitted on the region, and its name."""
    method, card_target = card.stain if card is not None else (None, None)
    if stain is not None:
        method = None if stain.lower() == "none" else stain.lower()
        card_target = None
    if method is None or n == 0:
        return None, None
    from slidescout.tools.experts.stainnorm import normalizer_for

    return normalizer_for(slide, method, target or card_target, box), method


class _BatchReader:
    """Reads batch ``b`` of a plan into a reusable buffer (resized, stain-normalised and, for a
    runner that prepares on the host, prepared); reader threads call :meth:`read`."""

    def __init__(
        self,
        slide: Any,
        plan: PatchPlan,
        runner: Callable[[Any], np.ndarray],
        batch_size: int,
        n_buffers: int,
        pinned: bool,
        normalize: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        self.reader = slide.patch_reader(plan.level)
        self.lx, self.ly = plan.level_xy()
        self.n, self.bsz, self.size, self.r = len(plan), batch_size, plan.patch_size, plan.read_size
        self.normalize = normalize
        host = getattr(runner, "host_prepare", False)
        self.prepare = getattr(runner, "prepare", None) if host else None
        self.buffers: SimpleQueue = SimpleQueue()
        for _ in range(n_buffers):
            self.buffers.put(_alloc(batch_size, self.size, pinned, self.prepare is not None))
        self.stop = threading.Event()
        self.read_times: list[float] = []

    def read(self, b: int) -> tuple[Any, int]:
        """(buffer, patches in it); after :meth:`abort`, an untouched buffer and 0."""
        buf = self.buffers.get()
        if self.stop.is_set():
            self.buffers.put(buf)
            return buf, 0
        t0 = time.perf_counter()
        arr, size, r = buf[0], self.size, self.r
        lo, hi = b * self.bsz, min(self.n, (b + 1) * self.bsz)
        for j, i in enumerate(range(lo, hi)):
            tile = self.reader.fetch(int(self.lx[i]), int(self.ly[i]), r, r)
            if r != size:
                tile = np.asarray(
                    Image.fromarray(tile).resize((size, size), Image.Resampling.BILINEAR)
                )
            if self.normalize is not None:
                tile = self.normalize(tile[..., :3])
            if self.prepare is not None:
                self.prepare(tile, arr[j])
            else:
                arr[j] = tile
        self.read_times.append(time.perf_counter() - t0)
        return buf, hi - lo

    def release(self, buf: Any) -> None:
        self.buffers.put(buf)

    def abort(self, workers: int) -> None:
        """Stop reading and wake the reader threads blocked on the buffer queue."""
        self.stop.set()
        for _ in range(workers):
            self.buffers.put(_alloc(1, 1, False, False))


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
    normalize: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Outputs (M, K) of every patch, in plan order; with ``sink``, each batch's raw outputs go to
    ``sink(first_index, outputs)`` instead (segmentation maps) and an empty array comes back.
    Reader threads fill ``prefetch`` batches ahead while the model runs on the current one."""
    n, bsz = len(plan), stats.batch_size
    if n == 0:
        return np.zeros((0, 0), np.float32)
    prefetch = max(1, min(prefetch, stats.batches))
    batches = _BatchReader(slide, plan, runner, bsz, prefetch + 1, pinned, normalize)
    out: np.ndarray | None = None
    lock = device_lock(stats.device)
    pending: deque[Future] = deque()
    ex = ThreadPoolExecutor(max_workers=stats.workers, thread_name_prefix="slidescout-reader")
    try:
        nxt = 0
        while nxt < stats.batches and len(pending) < prefetch:
            pending.append(ex.submit(batches.read, nxt))
            nxt += 1
        for b in range(stats.batches):
            t0 = time.perf_counter()
            buf, m = pending.popleft().result()
            t1 = time.perf_counter()
            stats.data_wait_s += t1 - t0
            if nxt < stats.batches:
                pending.append(ex.submit(batches.read, nxt))
                nxt += 1
            if cancel is not None and cancel.is_set():
                raise ToolCancelled("the run was cancelled while an expert model was running")
            with lock:
                t2 = time.perf_counter()
                y = np.asarray(runner(buf[1][:m]), np.float32)
                t3 = time.perf_counter()
            batches.release(buf)
            stats.device_wait_s += t2 - t1
            stats.model_s += t3 - t2
            if b in (0, 3) and stats.device == "cpu":
                _use_idle_cores(stats, b + 1, batches.read_times)
            if progress is not None:
                progress(b * bsz + m, n)
            if sink is not None:
                sink(b * bsz, y)
            else:
                out = _collect(out, y, b * bsz, m, n)
    except BaseException:
        for f in pending:
            f.cancel()
        batches.abort(stats.workers)
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        stats.read_s = float(sum(batches.read_times))
    if out is None:
        return np.zeros((0, 0), np.float32)
    return out


def _collect(out: np.ndarray | None, y: np.ndarray, lo: int, m: int, n: int) -> np.ndarray:
    """Write one batch's outputs ``y`` (m, K) into rows ``lo:lo+m`` of the (n, K) result."""
    if y.ndim == 1:
        y = y[:, None]
    if out is None:
        out = np.empty((n, y.shape[1]), np.float32)
    out[lo : lo + m] = y.reshape(m, -1)
    return out


__all__ = [
    "DEFAULT_MAX_PATCHES",
    "HeatmapImage",
    "PatchRun",
    "RuntimeStats",
    "default_workers",
    "run_patches",
]
