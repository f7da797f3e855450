"""Nuclei segmentation and morphometry on H&E without learned weights.

Colour deconvolution (Ruifrok & Johnston, ``skimage.color.rgb2hed``) isolates haematoxylin;
Otsu thresholding (bounded for robustness), then a distance-transform watershed splits touching
nuclei. Measurements are in µm when the image's mpp is known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from slidescout.slides.tissue import label_components, tissue_mask


@dataclass
class NucleiStats:
    """Morphometry of one image region."""

    count: int
    tissue_area_mm2: float | None
    density_per_mm2: float | None
    mean_area_um2: float | None
    area_cv: float | None  # coefficient of variation of nuclear area (pleomorphism)
    mean_eccentricity: float | None
    mean_solidity: float | None
    hematoxylin_mean: float  # mean H optical density over tissue
    dark_fraction: float  # fraction of tissue pixels inside nuclei
    tissue_fraction: float
    mpp: float | None
    areas_um2: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, with_areas: bool = False) -> dict:
        d = asdict(self)
        if not with_areas:
            d.pop("areas_um2")
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

    def summary(self) -> str:
        """A sentence for a model."""
        if self.count == 0:
            return f"No nuclei detected in {self.tissue_fraction:.0%} tissue coverage" + (
                f" ({self.tissue_area_mm2:.3f} mm² of tissue)." if self.tissue_area_mm2 else "."
            )
        parts = [f"{self.count} nuclei"]
        if self.density_per_mm2 is not None:
            parts.append(f"density {self.density_per_mm2:,.0f}/mm² of tissue")
        if self.mean_area_um2 is not None:
            parts.append(f"mean nuclear area {self.mean_area_um2:.1f} µm² (CV {self.area_cv:.2f})")
        if self.mean_eccentricity is not None:
            parts.append(
                f"eccentricity {self.mean_eccentricity:.2f}, solidity {self.mean_solidity:.2f}"
            )
        parts.append(
            f"nuclei cover {self.dark_fraction:.0%} of tissue; tissue covers {self.tissue_fraction:.0%} of the region"
        )
        return "; ".join(parts) + "."


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density channel (float, ~0 for white)."""
    from skimage.color import rgb2hed

    return rgb2hed(rgb[..., :3])[..., 0]


def segment_nuclei(
    rgb: np.ndarray, mpp: float | None, *, min_area_um2: float = 6.0, max_area_um2: float = 400.0
) -> tuple[np.ndarray, NucleiStats]:
    """Label image of nuclei and their morphometry. ``mpp`` is the image's µm per pixel."""
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import regionprops
    from skimage.segmentation import watershed

    rgb = np.ascontiguousarray(rgb[..., :3])
    tissue = tissue_mask(rgb)
    h = gaussian(hematoxylin(rgb), sigma=1.0)
    tissue_px = int(tissue.sum())
    h_mean = float(h[tissue].mean()) if tissue_px else 0.0
    px_area = (mpp or 0.5) ** 2  # µm² per pixel (assume 20x when unknown, for size filters only)
    empty = NucleiStats(
        0, None, None, None, None, None, None, h_mean, 0.0, float(tissue.mean()), mpp
    )
    if tissue_px < 50:
        labels = np.zeros(rgb.shape[:2], np.int32)
        if mpp:
            empty.tissue_area_mm2 = tissue_px * px_area / 1e6
            empty.density_per_mm2 = 0.0
        return labels, empty
    vals = h[tissue]
    try:
        t = threshold_otsu(vals)
    except ValueError:
        t = float(vals.max())
    # keep the threshold from collapsing into stroma on nucleus-free tissue (necrosis)
    t = max(t, float(np.percentile(vals, 50)) + 0.02, 0.05)
    mask = (h > t) & tissue
    min_px = max(3, int(min_area_um2 / px_area))
    lab, _ = label_components(mask)
    sizes = np.bincount(lab.ravel())
    mask &= sizes[lab] >= min_px  # drop specks (version-proof stand-in for remove_small_objects)
    dist = np.asarray(ndi.distance_transform_edt(mask), np.float64)
    radius_px = max(1, int(round(2.0 / (mpp or 0.5))))  # nuclei ~>= 4 µm across
    peaks = (ndi.maximum_filter(dist, size=2 * radius_px + 1) == dist) & (dist >= radius_px * 0.8)
    markers, _ = label_components(peaks)
    labels = watershed(-dist, markers, mask=mask) if markers.max() else label_components(mask)[0]
    props = [p for p in regionprops(labels) if min_px <= p.area <= max_area_um2 / px_area]
    areas = np.array([p.area * px_area for p in props], dtype=float)
    tissue_mm2 = tissue_px * px_area / 1e6 if mpp else None
    n = len(props)
    stats = NucleiStats(
        count=n,
        tissue_area_mm2=tissue_mm2,
        density_per_mm2=(n / tissue_mm2) if tissue_mm2 else None,
        mean_area_um2=float(areas.mean()) if n and mpp else None,
        area_cv=float(areas.std() / areas.mean()) if n > 1 else (0.0 if n else None),
        mean_eccentricity=float(np.mean([p.eccentricity for p in props])) if n else None,
        mean_solidity=float(np.mean([p.solidity for p in props])) if n else None,
        hematoxylin_mean=h_mean,
        dark_fraction=float(mask.sum() / tissue_px),
        tissue_fraction=float(tissue.mean()),
        mpp=mpp,
        areas_um2=[round(float(a), 2) for a in areas] if mpp else [],
    )
    return labels, stats


def outline_overlay(
    rgb: np.ndarray, labels: np.ndarray, color: tuple[int, int, int] = (0, 255, 0)
) -> np.ndarray:
    """The image with nucleus outlines drawn on it."""
    from skimage.segmentation import find_boundaries

    out = np.array(rgb[..., :3], copy=True)
    out[find_boundaries(labels, mode="outer")] = color
    return out
