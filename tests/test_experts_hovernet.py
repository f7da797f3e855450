"""The ``hovernet`` decoder against HoVer-Net's published post-processing (vqdang/hover_net,
``models/hovernet/post_proc.py``): its rules are re-implemented below with the libraries it uses
(OpenCV, SciPy, scikit-image), and our OpenCV-free implementation must give the same instances."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import ndimage as ndi
from skimage.segmentation import watershed
from test_experts_support import write_card

from slidescout.errors import ConfigError
from slidescout.tools.experts import decoders
from slidescout.tools.experts.cards import load_card

cv2 = pytest.importorskip("cv2")


def _drop_small_labels(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    out = labels.copy()
    out[(sizes < min_size)[labels]] = 0
    return out


def reference(np_prob, h, v, *, threshold=0.5, edge=0.4, min_size=10, ksize=21, kernel=5):
    """HoVer-Net's nuclear-pixel + HV post-processing, step by step as its code runs it."""
    blb = _drop_small_labels(ndi.label((np_prob >= threshold).astype(np.int32))[0], min_size)
    blb = (blb > 0).astype(np.int32)
    h_dir = cv2.normalize(h, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F)
    v_dir = cv2.normalize(v, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F)
    sh = cv2.Sobel(h_dir, cv2.CV_64F, 1, 0, ksize=ksize)
    sv = cv2.Sobel(v_dir, cv2.CV_64F, 0, 1, ksize=ksize)
    sh = 1 - cv2.normalize(sh, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F)
    sv = 1 - cv2.normalize(sv, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F)
    overall = np.maximum(sh, sv) - (1 - blb)
    overall[overall < 0] = 0
    dist = -cv2.GaussianBlur((1.0 - overall) * blb, (3, 3), 0)
    marker = blb - (overall >= edge).astype(np.int32)
    marker[marker < 0] = 0
    marker = ndi.binary_fill_holes(marker).astype("uint8")
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    marker = cv2.morphologyEx(marker, cv2.MORPH_OPEN, se)
    marker = _drop_small_labels(ndi.label(marker)[0], min_size)
    return watershed(dist, markers=marker, mask=blb)


def synthetic_maps(seed: int, shape=(160, 200), n=40, noise=0.08):
    """Touching discs of random radius: the NP probability and the HV maps a trained HoVer-Net
    would predict for them (per nucleus, x and y offsets from its centre scaled to -1..1), noised."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    inst = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf, np.float32)
    for k in range(1, n + 1):
        cy, cx = rng.uniform(8, shape[0] - 8), rng.uniform(8, shape[1] - 8)
        r = rng.uniform(5, 10)
        d = np.hypot(yy - cy, xx - cx) / r
        mine = (d <= 1) & (d < best)
        inst[mine], best[mine] = k, d[mine]
    h = np.zeros(shape, np.float32)
    v = np.zeros(shape, np.float32)
    for k in np.unique(inst)[1:]:
        m = inst == k
        dx, dy = xx[m] - xx[m].mean(), yy[m] - yy[m].mean()
        h[m] = dx / max(1e-6, np.abs(dx).max())
        v[m] = dy / max(1e-6, np.abs(dy).max())
    prob = ndi.gaussian_filter((inst > 0).astype(np.float32), 1.0)
    prob = np.clip(prob + rng.normal(0, noise, shape), 0, 1).astype(np.float32)
    h = (h + rng.normal(0, noise, shape)).astype(np.float32)
    v = (v + rng.normal(0, noise, shape)).astype(np.float32)
    return prob, h, v


def _relabelled(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids[ids > 0]] = np.arange(1, (ids > 0).sum() + 1)
    return lut[labels]


def test_opencv_kernels_are_reproduced():
    for size in (3, 5, 7, 21, 31):
        kx, ky = cv2.getDerivKernels(1, 0, size, ktype=cv2.CV_64F)
        deriv, smooth = decoders.sobel_kernels(size)
        np.testing.assert_array_equal(deriv, kx.ravel())
        np.testing.assert_array_equal(smooth, ky.ravel())
    for size in (3, 5, 7, 9, 11):
        want = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(bool)
        np.testing.assert_array_equal(decoders.ellipse(size), want)
    for size in (3, 5, 7, 9):
        want = cv2.getGaussianKernel(size, 0).ravel()
        np.testing.assert_allclose(decoders._gaussian_kernel(size), want, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hovernet_decoder_matches_the_published_post_processing(seed):
    prob, h, v = synthetic_maps(seed)
    want = _relabelled(reference(prob, h, v))
    got = decoders.hovernet_instances(prob, h, v)
    assert want.max() > 15  # the maps hold many touching nuclei
    assert got.max() == want.max()
    np.testing.assert_array_equal(got, want)


def test_thresholds_are_card_fields_and_reach_the_decoder(tmp_path):
    prob, h, v = synthetic_maps(5)
    loose = decoders.hovernet_instances(prob, h, v, edge=0.7, opening=3, sobel_size=11)
    want = _relabelled(reference(prob, h, v, edge=0.7, kernel=3, ksize=11))
    np.testing.assert_array_equal(loose, want)
    path = write_card(
        tmp_path,
        "hv",
        "hv.pth",
        format="state_dict",
        architecture="x.y:Z",
        output="instances",
        labels=["a"],
        postprocess={"edge": 0.7, "opening": 3, "sobel_size": 11, "threshold": 0.6},
    )
    pp = load_card(path).card.postprocess
    assert (pp.edge, pp.opening, pp.sobel_size, pp.threshold, pp.min_area) == (0.7, 3, 11, 0.6, 10)
    data = yaml.safe_load(path.read_text())
    data["postprocess"] = {"sobel_size": 20}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="field 'postprocess.sobel_size'"):
        load_card(path)


def test_background_type_takes_the_second_most_frequent_type():
    labels = np.array([[1, 1, 1, 2, 2], [1, 1, 0, 2, 2]])
    types = np.array([[0, 0, 2, 0, 0], [0, 2, 0, 0, 0]])
    assert decoders.majority_type(labels, types).tolist() == [0, 0]
    # instance 1: background 3 px, type 2 2 px -> type 2; instance 2: only background -> stays 0
    assert decoders.majority_type(labels, types, background=0).tolist() == [2, 0]
