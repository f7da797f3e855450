"""Plain images (PNG, JPEG, WebP, GIF, HEIF, untiled TIFF, BMP via PIL) as one-level slides,
with TIFF resolution tags and ImageDescription read as OpenSlide-style properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from slidescout.errors import SlideError
from slidescout.slides.backend_vips import _vips, _VipsBackendBase, to_srgb8
from slidescout.slides.backends import _reason, truncation_hint
from slidescout.slides.integrity import image_file_damage

# plain images up to this size are decoded at open, so a truncated file fails there
EAGER_DECODE_PX = 16 * 1024 * 1024


def _cut_short(path: Path) -> str:
    """'; the file is truncated ...' when a PNG or JPEG lacks its end marker, else ''."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, path.stat().st_size - 32))
            tail = f.read()
    except OSError:
        return ""
    png, jpeg = head.startswith(b"\x89PNG"), head.startswith(b"\xff\xd8")
    if (png and b"IEND" not in tail) or (jpeg and b"\xff\xd9" not in tail):
        return "; the file is truncated (it ends before the image's end marker): copy or download it again"
    return ""


def _tiff_fields(img) -> dict[str, str]:
    """OpenSlide-style resolution and description properties of an image read by tiffload."""
    fields = img.get_fields()
    props: dict[str, str] = {}
    if "image-description" in fields:
        props["tiff.ImageDescription"] = str(img.get("image-description"))[:4000]
    unit = str(img.get("resolution-unit")) if "resolution-unit" in fields else ""
    if unit in ("cm", "in"):  # libvips keeps xres/yres in px/mm whatever the file's unit
        props["tiff.ResolutionUnit"] = "centimeter" if unit == "cm" else "inch"
        for axis in ("x", "y"):
            res = float(img.get(f"{axis}res"))
            if res > 0:
                props[f"openslide.mpp-{axis}"] = f"{1000.0 / res:.6g}"
    return props


class VipsImageBackend(_VipsBackendBase):
    """A plain image (PNG, JPEG, WebP, GIF, HEIF, untiled TIFF, BMP via PIL) as a one-level slide."""

    format = "image"
    vendor = None

    def __init__(self, path: Path, image, loader: str) -> None:
        super().__init__()
        self.path = path
        self._image = image
        self.properties = {"slidescout.loader": loader}
        self.level_dimensions = ((int(image.width), int(image.height)),)
        self.level_downsamples = (1.0,)

    @classmethod
    def open(cls, path: Path) -> VipsImageBackend:
        damage = image_file_damage(path)
        if damage:
            raise SlideError(f"slide {path.name}: {damage}")
        pyvips = _vips()
        try:
            img = pyvips.Image.new_from_file(
                str(path), access="random", fail_on="truncated", revalidate=True
            )
        except pyvips.Error:
            return cls._open_with_pil(path)  # not a format libvips knows (or broken): try PIL
        loader = str(img.get("vips-loader")) if "vips-loader" in img.get_fields() else "vips"
        try:
            if loader.startswith(("jpegload", "pngload", "webpload", "heifload", "tiffload")):
                img = img.autorot()
            img = to_srgb8(img)
            if img.width * img.height <= EAGER_DECODE_PX:
                img = img.copy_memory()  # decode now: broken files fail at open
        except pyvips.Error as exc:
            raise SlideError(
                f"slide {path.name}: cannot decode it as an image ({_reason(exc)})"
                + (truncation_hint(exc) or _cut_short(path))
            ) from None
        backend = cls(path, img, loader.removesuffix("_source").removesuffix("_file"))
        if loader.startswith("tiffload"):
            backend.properties = {**backend.properties, **_tiff_fields(img)}
        return backend

    @classmethod
    def _open_with_pil(cls, path: Path) -> VipsImageBackend:
        import warnings

        from PIL import UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as im:
                    fmt = im.format or "unknown"
                    im.load()
                    arr = np.asarray(im.convert("RGB"))
        except UnidentifiedImageError:
            raise SlideError(
                f"slide {path.name}: not a slide or an image slidescout can read (unsupported format); "
                "expected an OpenSlide format (SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM...) or "
                "PNG/JPEG/TIFF"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise SlideError(
                f"slide {path.name}: cannot decode it as an image ({_reason(exc)})"
                + truncation_hint(exc)
            ) from None
        img = (
            _vips()
            .Image.new_from_array(np.ascontiguousarray(arr), interpretation="srgb")
            .copy_memory()
        )
        return cls(path, img, f"pil:{fmt.lower()}")

    def _load_level(self, level: int):
        return self._image

    def close(self) -> None:
        self._levels.clear()
        self._readers.clear()
