"""SynthPath textures repeat without seams: no nucleus is cut along a straight line, neither by
the window it is drawn in nor where a periodic tile meets its next copy."""

from __future__ import annotations

import numpy as np
import pytest

from slidescout.slides.synth import textures as T

STYLES = ["_SPINDLE", "_LYMPHOCYTE", "_TUMOUR", "_MITOSIS", "_GHOST", "_DUST"]


@pytest.mark.parametrize("name", STYLES)
def test_no_nucleus_is_cut_by_its_window(name):
    style: T.NucleusStyle = getattr(T, name)
    rng = np.random.default_rng(7)
    ppu = 4.0  # 0.25 µm/px, where a cut shows
    for _ in range(150):
        a = float(np.exp(rng.uniform(*np.log(style.radius)))) * ppu
        b = a / rng.uniform(*style.aspect)
        terms = (
            [
                (k, amp * style.irregular * rng.normal(), rng.uniform(0, 2 * np.pi))
                for k, amp in ((2, 1.0), (3, 0.7), (4, 0.4))
            ]
            if style.irregular > 0
            else []
        )
        cy, cx = rng.uniform(-5, 105, 2)
        ys, xs, r = T._nucleus_window(cy, cx, a, b, rng.uniform(0, np.pi), terms)
        cov = np.clip((1.0 - r) * b * 0.9 + 0.5, 0.0, 1.0)
        assert cov.max() > 0.5
        edge = np.concatenate([cov[0], cov[-1], cov[:, 0], cov[:, -1]])
        assert edge.max() == 0.0, f"{name}: a nucleus touches the edge of its window (cut straight)"


def _jump_lines(tile: np.ndarray, thr: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Per column (row) boundary: how many pixels jump by more than ``thr`` across it; the last
    entry is the boundary between the tile and its next copy."""
    cols = (np.abs(np.diff(np.concatenate([tile, tile[:, :1]], 1), axis=1)) > thr).sum(0)
    rows = (np.abs(np.diff(np.concatenate([tile, tile[:1]], 0), axis=0)) > thr).sum(1)
    return cols, rows


@pytest.mark.parametrize("cls", ["normal", "tumor", "lymphocytes", "necrosis"])
def test_no_straight_seams_at_tile_borders(cls):
    tex = T.class_texture(cls, np.random.default_rng(3), 2.0, 0.5)
    tiles = [h for (h, _), own in tex.variants() for h in [h, *(o for o, _ in own)]]
    tiles += [h for h, _ in tex.extra_tiles()]
    for tile in tiles:
        for lines in _jump_lines(np.asarray(tile, np.float32)):
            # a cut along the border would make it the sharpest line of the tile
            assert lines[-1] <= max(2, int(np.percentile(lines[:-1], 99.5))), (
                cls,
                lines[-1],
                lines.max(),
            )


def _boundary_ratio(h: np.ndarray, block: int, thr: int = 60) -> float:
    """Strong jumps across the lines between blocks of ``block`` px, relative to other lines."""
    cols = (np.abs(np.diff(h.astype(int), axis=1)) > thr).sum(0)  # jump between x and x+1
    rows = (np.abs(np.diff(h.astype(int), axis=0)) > thr).sum(1)
    on = np.concatenate([cols[block - 1 :: block], rows[block - 1 :: block]])
    off = np.concatenate(
        [np.delete(cols, np.s_[block - 1 :: block]), np.delete(rows, np.s_[block - 1 :: block])]
    )
    return float(on.mean() / max(off.mean(), 1e-9))


def test_variant_switch_keeps_nuclei_whole():
    """The stroma variants switch on a coarse map (blocks of ``scale`` px, 32 on a 40k px slide).
    With a checkerboard map every block edge is a switch: nuclei drawn whole leave no trace of the
    block edges, while a per-pixel switch cuts them along those straight lines."""
    import pyvips

    from slidescout.slides.synth import render as R

    block, n = 64, 16
    tex = T.class_texture("normal", np.random.default_rng(5), 4.0, 0.5)
    coarse = ((np.indices((n, n)).sum(0) % 2) * 255).astype(np.uint8)
    blend = pyvips.Image.new_from_array(coarse).zoom(block, block)
    size = n * block
    ratios = {}
    for whole in (False, True):
        canvas = R._Canvas(size, size, np.random.default_rng(9))
        cb = R._CentreBlend(coarse, block) if whole else None
        h = R.class_plane(tex, canvas, blend, cb)[0].numpy()
        ratios[whole] = _boundary_ratio(h, block)
    assert ratios[False] > 2.0  # the detector sees the cut nuclei of a per-pixel switch
    assert ratios[True] < 1.3, ratios
