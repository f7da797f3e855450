"""GIANT's patch baseline: CLAM's presets as GIANT's repository ships them (``clam_presets/*.csv``),
the right one per task, and CLAM's segmentation and ``four_pt`` patch rules."""

from __future__ import annotations

import numpy as np
import pytest

from slidescout.slides.clam import (
    clam_grid,
    clam_mask,
    clam_preset,
    clam_preset_for,
    clam_seg_side,
    clam_tissue,
)


def test_presets_are_giants_csv_values() -> None:
    # clam_presets/tcga.csv: sthresh 8, mthresh 7, close 4, a_t 16, a_h 4, max_n_holes 8
    assert clam_preset("tcga") == {
        "sthresh": 8,
        "mthresh": 7,
        "close": 4,
        "a_t": 16,
        "a_h": 4,
        "max_n_holes": 8,
    }
    # clam_presets/panda.csv: sthresh 4, mthresh 5, close 3, a_t 20, a_h 4, max_n_holes 15
    assert clam_preset("panda") == {
        "sthresh": 4,
        "mthresh": 5,
        "close": 3,
        "a_t": 20,
        "a_h": 4,
        "max_n_holes": 15,
    }


@pytest.mark.parametrize(
    "task, preset",
    [
        ("tcga", "tcga"),
        ("tcga_slidebench", "tcga"),
        ("tcga_expert_vqa", "tcga"),
        ("gtex", "tcga"),
        ("panda", "panda"),
        ("synth", "tcga"),
    ],
)
def test_preset_per_task(task: str, preset: str) -> None:
    assert clam_preset_for(task) == preset


def test_segmentation_level_is_clams() -> None:
    # seg_level -1: the coarsest level at most 64x; an SVS with 1, 4, 16 segments at 16x
    assert clam_seg_side([1.0, 4.0, 16.0], 80000) == 4096  # 5000 px, capped
    assert clam_seg_side([1.0, 4.0, 16.0, 64.0], 80000) == 1250
    assert clam_seg_side([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0], 64000) == 1000


def test_closing_uses_a_close_by_close_square() -> None:
    img = np.full((40, 40, 3), 240, np.uint8)
    img[10:30, 10:30] = (200, 120, 170)
    img[10:30, 19:22] = 240  # a 3 px gap: a 4x4 closing bridges it, a 3x3 one does not
    assert clam_mask(img, sthresh=8, mthresh=1, close=4)[20, 20]
    assert not clam_mask(img, sthresh=8, mthresh=1, close=3)[20, 20]


def test_small_pieces_dropped_big_holes_kept_small_holes_filled() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:90, 10:90] = True
    mask[30:55, 30:50] = False  # a hole of 500 px
    mask[70:72, 70:72] = False  # a hole of 4 px
    mask[95:97, 95:97] = True  # a speck
    # 51.2 level-0 px per mask px: a reference patch (512 x 512 level-0 px) is 100 mask px
    pieces, holes, n = clam_tissue(mask, 51.2, a_t=20, a_h=4, max_n_holes=8)
    assert n == 1 and pieces[95, 95] == 0  # the speck is under a_t
    assert holes[40, 40] == 1 and holes[71, 71] == 0 and pieces[71, 71] == 1


def test_four_pt_is_clams_easy_check_and_holes_exclude() -> None:
    pieces = np.zeros((100, 100), np.int32)
    pieces[0:50, 0:52] = 1  # 1 mask px = 10 level-0 px: the piece is 520 x 500 level-0 px
    holes = np.zeros_like(pieces)
    holes[20:30, 20:30] = 1
    grid = clam_grid(pieces, (0, 0, 1000, 1000), 224, holes)
    kept = {tuple(p) for p in grid}
    # the grid starts at the piece's bounding box and steps by the patch size
    assert kept <= {(x, y) for x in range(0, 520, 224) for y in range(0, 500, 224)}
    # (448, 0): its centre (560, 112) is off the piece, but one point (504, 56) is on it
    assert (448, 0) in kept
    # (0, 0) and (224, 224) lie on the tissue, their centres outside the hole
    assert (0, 0) in kept and (224, 224) in kept
    holes[33, 33] = 1  # a hole under the centre of (224, 224)
    assert (224, 224) not in {tuple(p) for p in clam_grid(pieces, (0, 0, 1000, 1000), 224, holes)}


@pytest.mark.parametrize("task, preset", [("panda", "panda"), ("tcga_expert_vqa", "tcga")])
def test_patch_baseline_uses_the_tasks_preset(tmp_path, task: str, preset: str) -> None:
    import asyncio
    import json

    from slidefactory import make_tiff

    from slidescout.agents.loop import make_agent
    from slidescout.agents.models import resolve_model
    from slidescout.eval.ask import question_sample
    from slidescout.testing.fake_openai import FakeOpenAI, Reply
    from slidescout.traces.rundir import RunDir

    slide = make_tiff(tmp_path / "s.tiff", 4000, 3000, pattern="tissue")
    sample = question_sample(slide, "Which?", ["A", "B"]).model_copy(update={"task": task})
    with FakeOpenAI(lambda body: Reply(text='{"answer": 1}')) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        agent = make_agent(model, preset="patch", max_steps=4)
        run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

        async def go():  # type: ignore[no-untyped-def]
            try:
                return await agent.run(sample, run.recorder())
            finally:
                await agent.model.aclose()

        trace = asyncio.run(go())
    notes = [
        json.loads(e.message) for e in trace.events if getattr(e, "message", "").startswith("{")
    ]
    assert {"clam_preset": preset, "patches": 4} in notes
    assert trace.status == "answered"
