"""Scoring as the papers do it: bootstrap mean ± std, ISUP 0 from replies naming no grade, the
official MedFrameQA score without empty replies; and GIANT's rendering rules."""

from __future__ import annotations

import numpy as np
import pytest

from slidescout.core.types import Box
from slidescout.eval.metrics import score_task
from slidescout.eval.report import protocol_notes
from slidescout.slides.guides import dejavu_path, draw_guides, giant_font_size
from slidescout.slides.render import choose_level, giant_level


def _rec(
    i: int,
    truth: int,
    predicted: int | None,
    method: str = "json_isup_grade",
    repeat: int = 0,
    error: str | None = None,
) -> dict:
    return {
        "sample_id": f"s{i}",
        "task": "panda",
        "metric": "balanced_accuracy",
        "truth": truth,
        "predicted": predicted,
        "parsed_ok": predicted is not None,
        "parse_method": method,
        "repeat": repeat,
        "error": error,
    }


def test_bootstrap_mean_std_beside_the_ci_and_isup0_counted() -> None:
    recs = [
        _rec(i, i % 3, i % 3 if i % 4 else 0, "isup_null" if i % 4 == 0 else "json_isup_grade")
        for i in range(40)
    ]
    s = score_task(recs, n_bootstrap=500)
    assert s.boot_mean is not None and s.boot_std is not None and 0 < s.boot_std < 0.2
    assert abs(s.boot_mean - s.value) < 0.05 and s.ci_low <= s.boot_mean <= s.ci_high
    assert s.n_isup0_null == 10
    assert protocol_notes({"panda": s})[0].startswith("panda: 10 replies named no grade")


def test_majority_vote_has_its_own_bootstrap_mean_std() -> None:
    recs = [_rec(i, 1, 1 if (i + r) % 5 else 2, repeat=r) for i in range(20) for r in range(5)]
    s = score_task(recs, n_bootstrap=300)
    assert s.repeats == 5 and s.majority_vote == pytest.approx(1.0)
    assert s.majority_boot_mean == pytest.approx(1.0) and s.majority_boot_std == pytest.approx(0.0)


def test_empty_replies_left_out_and_counted_wrong() -> None:
    recs = [
        {
            "sample_id": f"q{i}",
            "task": "medframeqa",
            "metric": "accuracy",
            "truth": "A",
            "predicted": "A" if i < 6 else None,
            "parsed_ok": i < 6,
            "error": "empty reply" if i >= 8 else None,
        }
        for i in range(10)
    ]
    s = score_task(recs, n_bootstrap=100)
    assert (
        s.value == pytest.approx(0.6)
        and s.n_empty == 2
        and s.value_excluding_empty == pytest.approx(0.75)
    )
    assert "75.0%" in protocol_notes({"medframeqa": s})[0]


@pytest.mark.parametrize(
    "box_long, expected",
    [
        (1000, 0),  # ds 1: level 0
        (2000, 0),  # 0.85 * 2 = 1.7: level 0 (ds 1)
        (2400, 1),  # 0.85 * 2.4 = 2.04: level 1 (ds 2), read 1200 px
        (4000, 1),  # 3.4: level 1, read 2000 px
        (5000, 2),  # 4.25: level 2 (ds 4), read 1250 px
        (9000, 2),  # 7.65: level 2, read 2250 px
        (9500, 3),  # 8.08: level 3 (ds 8), read 1188 px
    ],
)
def test_giant_level_rule(box_long: int, expected: int) -> None:
    downsamples = [1.0, 2.0, 4.0, 8.0, 16.0]
    assert giant_level(downsamples, box_long, box_long // 2, 1000, 500) == expected


def test_giant_level_never_reads_under_the_target() -> None:
    # GIANT's "one level finer when under target" guard: with rounded level sizes (a 16.04 ds)
    ds = [1.0, 4.01, 16.04, 64.3]
    for long_box in range(1000, 60000, 97):
        level = giant_level(ds, long_box, long_box, 1000, 1000)
        assert long_box / ds[level] >= 1000 or level == 0


def test_giant_and_fine_rules_differ_on_a_x2_pyramid() -> None:
    scales = [(d, d) for d in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)]
    ds = [s[0] for s in scales]
    differ = sum(
        giant_level(ds, L, L, 1000, 1000) != choose_level(scales, L, L, 1000, 1000)
        for L in range(1000, 32000, 37)
    )
    assert differ > 0  # the rules are not the same: which one runs is a preset field


def test_giant_guides_style() -> None:
    img = np.full((500, 1000, 3), 200, np.uint8)
    out = draw_guides(img, Box(0, 0, 10000, 5000), style="giant")
    # GIANT draws onto an RGBA copy without blending and drops the alpha: every element is opaque
    assert tuple(out[250, 0]) == (255, 0, 0) and tuple(out[250, 999]) == (255, 0, 0)
    assert tuple(out[250, 1]) == (200, 200, 200)  # the border is 1 px wide
    assert tuple(out[350, 200]) == (0, 255, 0) and tuple(out[350, 201]) == (200, 200, 200)
    assert tuple(out[100, 500]) == (0, 255, 0)  # a horizontal line at 1/5 of the height
    # labels sit on opaque black boxes, near the top of each vertical line
    assert (out[2:8, 203:215].reshape(-1, 3).max(axis=1) == 0).any()
    assert giant_font_size(1000, 500) == 10 and dejavu_path() is not None
