"""Stain normalisation: Macenko and Reinhard against torchstain's implementations on the same
image, the stain vectors of Ruifrok & Johnston (2001) recovered from a Beer-Lambert mixture, and
the card field / run option through the runtime."""

from __future__ import annotations

import numpy as np
import pytest
from slidefactory import make_tiff
from test_experts_support import write_card

from slidescout.errors import ConfigError
from slidescout.slides import open_slide
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.runtime import run_patches
from slidescout.tools.experts.stainnorm import (
    StainNormalizer,
    macenko_stains,
    optical_density,
    vahadane_stains,
)

# Ruifrok & Johnston, Anal Quant Cytol Histol 2001: H&E optical density vectors (normalised)
H = np.array([0.650, 0.704, 0.286])
E = np.array([0.072, 0.990, 0.105])


def mixture(seed: int = 0, shape=(96, 128), h_scale=1.0, e_scale=1.0) -> np.ndarray:
    """An H&E-like image by Beer-Lambert: nuclei (mostly H) in stroma (mostly E), on some glass."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    ch = np.zeros(shape)
    for _ in range(25):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(3, 7)
        ch += 1.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    ce = 0.3 + 0.5 * rng.random(shape)
    glass = xx > shape[1] * 0.85
    ch[glass], ce[glass] = 0.0, 0.02
    ch, ce = ch * h_scale + 0.05 * rng.random(shape), ce * e_scale
    h, e = H / np.linalg.norm(H), E / np.linalg.norm(E)
    od = ch[..., None] * h + ce[..., None] * e
    return np.clip(240 * np.exp(-od) - 1, 0, 255).astype(np.uint8)


def test_macenko_matches_torchstain_on_one_image():
    ts = pytest.importorskip("torchstain")
    img = mixture(1, h_scale=1.4, e_scale=0.7)
    ref = ts.normalizers.MacenkoNormalizer(backend="numpy")
    want, _, _ = ref.normalize(I=img, stains=True)
    ours = StainNormalizer("macenko")
    ours.fit_source(img)
    got = ours(img)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_reinhard_matches_torchstain_on_one_image():
    ts = pytest.importorskip("torchstain")
    src, tgt = mixture(2, h_scale=1.5), mixture(3, e_scale=0.6)
    ref = ts.normalizers.ReinhardNormalizer(backend="numpy")
    ref.fit(tgt)
    want = ref.normalize(I=src)
    ours = StainNormalizer("reinhard", tgt)
    ours.fit_source(src)
    got = ours(src)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.0
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 3


@pytest.mark.parametrize("estimate", [macenko_stains, vahadane_stains])
def test_published_stain_vectors_are_recovered(estimate):
    img = mixture(4)
    stains = estimate(optical_density(img))
    h, e = stains[:, 0], stains[:, 1]
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    # the L1 penalty (0.1, as in Vahadane's paper) tilts the eosin vector a little toward H
    assert cos(h, H) > 0.95 and cos(e, E) > 0.95


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_normalising_to_a_target_moves_the_source_stains_to_the_target(method):
    target = mixture(5)
    source = mixture(6, h_scale=1.8, e_scale=0.5)  # darker haematoxylin, paler eosin
    norm = StainNormalizer(method, target)
    norm.fit_source(source)
    out = norm(source)
    od_t, od_s, od_o = (optical_density(x).mean(axis=0) for x in (target, source, out))
    assert np.linalg.norm(od_o - od_t) < 0.6 * np.linalg.norm(od_s - od_t)


def test_reinhard_needs_a_target(tmp_path):
    with pytest.raises(ConfigError, match="needs a target image"):
        StainNormalizer("reinhard")
    path = write_card(
        tmp_path, "r", "r.pt", format="torchscript", labels=["a"], stain_norm={"method": "reinhard"}
    )
    with pytest.raises(ConfigError, match="stain_norm.target"):
        load_card(path)


def test_card_field_and_run_option_normalise_every_patch(tmp_path):
    img = mixture(7, shape=(256, 256), h_scale=1.6)
    slide = open_slide(
        make_tiff(
            tmp_path / "he.tiff",
            256,
            256,
            mpp=0.5,
            pattern=lambda x0, y0, w, h, W, H_: img[y0 : y0 + h, x0 : x0 + w],
        )
    )
    seen = []

    def model(batch):
        seen.append(np.asarray(batch).copy())
        return (
            np.asarray(batch, np.float32).reshape(len(batch), -1)[:, :3].mean(axis=1, keepdims=True)
        )

    plain = run_patches(slide, model, None, mpp=0.5, patch_size=64, min_tissue=0)
    normed = run_patches(slide, model, None, mpp=0.5, patch_size=64, min_tissue=0, stain="macenko")
    assert "stain-normalised (macenko)" in " ".join(normed.notes)
    raw, out = seen[0], seen[-1]
    assert raw.shape == out.shape and not np.array_equal(raw, out)
    norm = StainNormalizer("macenko")
    from slidescout.slides.tissue import tissue_mask

    thumb = np.asarray(slide.thumbnail(2048).image)[..., :3]
    norm.fit_source(thumb, tissue_mask(thumb))
    np.testing.assert_array_equal(out[0], norm(raw[0]))
    assert len(plain.outputs) == len(normed.outputs)
