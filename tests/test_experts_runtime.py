"""The expert runtime: patch grid, reader pool, batches, bounded memory, heatmap alignment, and
one lazily loaded model per device."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_experts_support import (
    BLUE,
    CELL,
    RED,
    checker_slide,
    classifier_card,
    red_fraction,
    redness_card,
    redness_to_fraction,
)

from slidescout.core.types import Box
from slidescout.errors import ConfigError, ToolError
from slidescout.slides import open_slide
from slidescout.tools.context import ToolCancelled
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.pool import ModelPool
from slidescout.tools.experts.runtime import run_patches
from slidescout.tools.experts.tiling import PatchLimitExceeded, plan_patches


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    return open_slide(checker_slide(tmp_path_factory.mktemp("slides") / "checker.tiff"))


def mean_red(batch) -> np.ndarray:
    a = np.asarray(batch, np.float32)
    return a[..., 0].mean(axis=(1, 2))[:, None] / 255.0


class Recorder:
    """A model callable that records batch sizes and the thread it ran on."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, batch) -> np.ndarray:
        self.sizes.append(len(batch))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return mean_red(batch)


class CountingSlide:
    """Wraps a slide; counts patch fetches and records which threads made them."""

    def __init__(self, slide) -> None:
        self._s = slide
        self.fetched = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._s, name)

    def patch_reader(self, level):
        inner = self._s.patch_reader(level)
        outer = self

        class Reader:
            def fetch(self, x, y, w, h):
                with outer._lock:
                    outer.fetched += 1
                    outer.threads.add(threading.current_thread().name)
                return inner.fetch(x, y, w, h)

        return Reader()


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------
def test_plan_geometry_level_and_centred_grid(checker):
    plan = plan_patches(checker, Box(0, 0, 6 * CELL, 4 * CELL), mpp=0.5, patch_size=224)
    assert (plan.rows, plan.cols, len(plan)) == (4, 6, 24)
    assert plan.level == 1 and plan.read_size == 224 and not plan.resized
    assert plan.patch_l0 == pytest.approx(CELL)
    assert plan.origin == (0.0, 0.0)
    boxes = plan.boxes()
    assert boxes[0].tolist() == [0, 0, CELL, CELL] and boxes[-1].tolist() == [
        5 * CELL,
        3 * CELL,
        CELL,
        CELL,
    ]
    # a region smaller than one patch gets one patch centred on it
    small = plan_patches(checker, Box(1000, 1000, 100, 60), mpp=0.5, patch_size=224)
    (b,) = small.boxes().tolist()
    assert (b[0] + b[2] / 2, b[1] + b[3] / 2) == pytest.approx((1050, 1030), abs=1)
    # a model finer than the scan: read level 0, resized; a coarse one reads a coarser level
    assert plan_patches(checker, Box(0, 0, 500, 500), mpp=0.6, patch_size=100).read_size == 120
    assert plan_patches(checker, Box(0, 0, 2000, 2000), mpp=1.0, patch_size=100).level == 2


def test_plan_limits_and_errors(checker):
    with pytest.raises(
        PatchLimitExceeded, match=r"more than the limit of 10 per call; choose a smaller region"
    ):
        plan_patches(
            checker, Box(0, 0, 6 * CELL, 4 * CELL), mpp=0.5, patch_size=224, max_patches=10
        )
    assert issubclass(PatchLimitExceeded, ToolError)
    with pytest.raises(ToolError, match="outside the slide"):
        plan_patches(checker, Box(90000, 0, 10, 10), mpp=0.5, patch_size=224)


def test_plan_tissue_filter(tmp_path):
    from slidefactory import make_tiff
    from test_experts_support import blobs_pattern

    path = make_tiff(
        tmp_path / "blob.tiff", 3584, 2688, pattern=blobs_pattern([(900, 1300, 600, 900)])
    )
    slide = open_slide(path)
    everything = plan_patches(slide, None, mpp=0.5, patch_size=224, min_tissue=0.0)
    tissue = plan_patches(slide, None, mpp=0.5, patch_size=224, min_tissue=0.5)
    assert len(everything) == 8 * 6 and 0 < len(tissue) < len(everything)
    centres = tissue.boxes()[:, :2] + CELL / 2
    assert np.all(((centres[:, 0] - 900) / 700) ** 2 + ((centres[:, 1] - 1300) / 1000) ** 2 <= 1)
    assert np.all(tissue.tissue >= 0.5)


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------
def test_outputs_match_the_painted_pattern_for_any_region(checker):
    region = Box(300, 250, 2000, 1300)  # not aligned with the painted cells
    run = run_patches(checker, mean_red, region, mpp=0.5, patch_size=224, batch_size=5, workers=2)
    assert len(run.plan) == run.outputs.shape[0] > 10
    for box, value in zip(run.boxes, run.outputs[:, 0], strict=True):
        assert redness_to_fraction(value) == pytest.approx(red_fraction(box), abs=0.04), box


def test_heatmap_aligned_with_pattern(checker):
    region = Box(0, 0, 6 * CELL, 4 * CELL)
    run = run_patches(
        checker, mean_red, region, mpp=0.5, patch_size=224, output="score", labels=["red"]
    )
    run.score_range = (BLUE[0] / 255, RED[0] / 255)
    grid = run.grid()
    expected = (np.add.outer(np.arange(4), np.arange(6)) % 2 == 0).astype(float)
    np.testing.assert_allclose(grid, expected, atol=0.05)
    heat = run.heatmap(checker, max_side=600, background=False)
    assert heat.box == region and heat.image.shape == (400, 600, 3)
    assert heat.mpp == pytest.approx(0.25 * region.w / 600)
    px = heat.image.astype(int)
    for r in range(4):
        for c in range(6):
            y, x = int((r + 0.5) * 100), int((c + 0.5) * 100)
            red, blue = px[y, x, 0], px[y, x, 2]
            assert (red > blue) == ((r + c) % 2 == 0), (r, c, px[y, x])
    # with the slide behind it: same size as the region's view, recorded box and mpp
    over = run.heatmap(checker, max_side=300)
    assert (
        over.box == region
        and max(over.image.shape[:2]) == 300
        and over.mpp == pytest.approx(0.25 * region.w / 300)
    )


def test_batches_threads_and_bounded_prefetch(checker):
    slide = CountingSlide(checker)
    model = Recorder(delay=0.01)
    fetched_at_batch: list[int] = []

    def watch(batch):
        fetched_at_batch.append(slide.fetched)
        return model(batch)

    run = run_patches(
        slide,
        watch,
        Box(0, 0, 6 * CELL, 4 * CELL),
        mpp=0.5,
        patch_size=224,
        batch_size=5,
        workers=3,
        prefetch=2,
    )
    assert model.sizes == [5, 5, 5, 5, 4] and run.stats.batches == 5
    assert model.threads == {threading.current_thread().name}  # the model runs in the caller
    assert slide.threads and all(t.startswith("slidescout-reader") for t in slide.threads)
    for b, fetched in enumerate(
        fetched_at_batch
    ):  # never more than prefetch + 1 batches read ahead
        assert fetched - b * 5 <= (2 + 1) * 5
    s = run.stats
    assert s.patches == 24 and s.workers == 3 and s.model_s > 0.04 and s.total_s > 0
    assert 0.0 <= s.wait_fraction <= 1.0 and s.patches_per_s > 0 and s.reader_patches_per_s > 0
    assert set(s.to_dict()) >= {
        "patches_per_s",
        "wait_fraction",
        "data_wait_s",
        "model_s",
        "read_s",
    }


def test_resized_patches(checker):
    run = run_patches(checker, mean_red, Box(0, 0, 960, 960), mpp=0.6, patch_size=100, workers=1)
    assert run.plan.read_size == 120 and run.plan.resized
    for box, value in zip(run.boxes, run.outputs[:, 0], strict=True):
        assert redness_to_fraction(value) == pytest.approx(red_fraction(box), abs=0.06)


def test_cap_cancel_and_model_errors_stop_cleanly(checker):
    with pytest.raises(PatchLimitExceeded):
        run_patches(checker, mean_red, None, mpp=0.5, patch_size=224, min_tissue=0, max_patches=5)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ToolCancelled):
        run_patches(
            checker,
            mean_red,
            Box(0, 0, 2000, 2000),
            mpp=0.5,
            patch_size=224,
            cancel=cancel,
            batch_size=2,
        )

    def broken(batch):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_patches(
            checker,
            broken,
            Box(0, 0, 2000, 2000),
            mpp=0.5,
            patch_size=224,
            batch_size=1,
            workers=2,
            prefetch=1,
        )
    left = [t for t in threading.enumerate() if t.name.startswith("slidescout-reader")]
    assert not left  # the reader pool was shut down


# ---------------------------------------------------------------------------------------------
# cards through the pool
# ---------------------------------------------------------------------------------------------
def test_card_runs_through_pool_once_per_device(checker, tmp_path):
    card = load_card(classifier_card(tmp_path))
    pool = ModelPool()
    region = Box(0, 0, 6 * CELL, 4 * CELL)
    results = []

    def work():
        results.append(run_patches(checker, card, region, device="cpu", pool=pool, batch_size=4))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.loads == 1 and len(results) == 4 and pool.loaded() == [("redclass", "cpu")]
    run = results[0]
    assert run.model_name == "redclass" and run.labels == ["blue", "red"] and run.is_classifier
    assert run.class_fractions() == {"blue": 0.5, "red": 0.5}
    grid = run.grid("red")  # P(red) per patch follows the checkerboard
    expected = np.add.outer(np.arange(4), np.arange(6)) % 2 == 0
    assert np.all((grid > 0.9) == expected) and np.all((grid < 0.1) == ~expected)
    top = run.top("red", k=3)
    assert all(red_fraction(t["box"]) == 1.0 for t in top)
    for other in results[1:]:
        np.testing.assert_allclose(other.outputs, run.outputs, atol=1e-5)


def test_pool_loads_once_under_concurrency_and_remembers_failures(tmp_path):
    card = load_card(redness_card(tmp_path))
    calls = []

    def slow_loader(c, device, **kw):
        calls.append(device)
        time.sleep(0.2)
        return object()

    pool = ModelPool(loader=slow_loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(pool.get(card, "cpu"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["cpu"] and len({id(g) for g in got}) == 1

    def failing(c, device, **kw):
        calls.append("fail")
        raise ConfigError("bad weights")

    bad = ModelPool(loader=failing)
    for _ in range(3):
        with pytest.raises(ConfigError, match="bad weights"):
            bad.get(card, "cpu")
    assert calls.count("fail") == 1


def test_torch_runner_normalises_channels_last(tmp_path):
    import torch

    from slidescout.tools.experts.loading import TorchRunner

    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["channels_last"] = x.is_contiguous(memory_format=torch.channels_last)
            seen["grad"] = torch.is_grad_enabled()
            seen["dtype"] = x.dtype
            return x.mean(dim=(2, 3))

    card = load_card(redness_card(tmp_path, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]))
    runner = TorchRunner(Probe().eval(), card, "cpu")
    batch = np.zeros((3, 16, 16, 3), np.uint8)
    batch[..., 0] = 255
    y = runner(batch)
    assert seen == {"channels_last": True, "grad": False, "dtype": torch.float32}
    np.testing.assert_allclose(
        y[0], [(1 - 0.5) / 0.25, (0 - 0.5) / 0.25, (0 - 0.5) / 0.25], atol=1e-5
    )


def test_host_prepared_batches_match_device_normalisation(tmp_path):
    from slidescout.tools.experts.loading import load_runner

    card = load_card(redness_card(tmp_path, mean=[0.2, 0.4, 0.6], std=[0.3, 0.2, 0.1]))
    runner = load_runner(card, "cpu")
    assert runner.host_prepare
    batch = np.random.default_rng(3).integers(0, 255, (5, 224, 224, 3), dtype=np.uint8)
    prepared = runner.prepared(batch)
    assert prepared.shape == (5, 3, 224, 224) and prepared.dtype == np.float32
    np.testing.assert_allclose(
        prepared[:, 0], (batch[..., 0] / 255 - 0.2) / 0.3, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(runner(prepared), runner(batch), atol=1e-5)
    np.testing.assert_allclose(
        runner(batch)[:, 0], (batch[..., 0] / 255 - 0.2).mean(axis=(1, 2)) / 0.3, atol=1e-4
    )


def test_whole_slide_and_embedding_outputs(checker):
    def embed(batch):
        a = np.asarray(batch, np.float32) / 255
        return np.stack(
            [
                a[..., 0].mean(axis=(1, 2)),
                a[..., 2].mean(axis=(1, 2)),
                a.std(axis=(1, 2, 3)),
                np.zeros(len(a)),
            ],
            axis=1,
        )

    run = run_patches(checker, embed, None, mpp=0.5, patch_size=224, output="embedding")
    assert len(run.plan) == 24 and run.outputs.shape == (24, 4)  # all of it is "tissue"
    assert run.probs is None and run.class_fractions() == {} and run.top() == []
    with pytest.raises(ValueError, match="embedding has no scalar"):
        run.values()
    heat = run.heatmap(checker, max_side=240)
    assert heat.box == run.plan.region and "principal components" in heat.legend
    px = heat.image.astype(int)
    red_cell, blue_cell = px[20, 20], px[20, 60]  # cells (0, 0) and (0, 1) at 40 px per cell
    assert np.abs(red_cell - blue_cell).sum() > 60  # the two kinds of patch get different colours
