"""Test files of the formats beyond TIFF, each written with its own ecosystem's writer:

- OME-Zarr (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3): arrays by ``zarr``, metadata as the NGFF spec
  lays it out (written here, independently of the reader's parser);
- DICOM WSI: one TILED_FULL VL Whole Slide Microscopy instance per level, written with ``pydicom``
  (the library wsidicom reads and writes with), frames JPEG baseline or uncompressed; optionally
  with cropped edge frames (as some scanners write them, and OpenSlide rejects);
- CZI: ``pylibCZIrw``'s writer (Zeiss libCZI), with channels, Z, T and scenes;
- LIF: the Leica container (header, UTF-16 XML, memory blocks) laid out as readlif documents it.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import slidefactory as sf
from PIL import Image

# ------------------------------------------------------------------------------------------
# OME-Zarr


def make_ome_zarr(
    path: Path | str,
    levels: list[np.ndarray],
    *,
    axes: str = "cyx",
    mpp: float = 0.25,
    unit: str = "micrometer",
    channels: list[str] | None = None,
    version: str = "0.4",
    chunk: int = 128,
) -> Path | str:
    """Write ``levels`` (each shaped as ``axes`` says) as an OME-Zarr multiscale image.

    ``path`` may be a folder or an fsspec URL (``memory://...``)."""
    import zarr

    zf = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=zf)
    ax = []
    for a in axes:
        kind = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}[a]
        entry = {"name": a, "type": kind}
        if a in "xyz":
            entry["unit"] = unit
        ax.append(entry)
    datasets = []
    for i, arr in enumerate(levels):
        f = 2**i
        scale = [mpp * f if a in "xy" else 1.0 for a in axes]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
        chunks = tuple(chunk if a in "xy" else 1 for a in axes)
        z = group.create_array(str(i), shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        z[...] = arr
    ms = {"axes": ax, "datasets": datasets, "name": "image"}
    attrs: dict = {"multiscales": [ms]}
    if channels:
        colours = ["0000FF", "00FF00", "FF0000", "FFFFFF"]
        attrs["omero"] = {
            "channels": [
                {
                    "label": n,
                    "color": colours[i % 4],
                    "window": {"min": 0, "max": 65535, "start": 0, "end": 4000},
                }
                for i, n in enumerate(channels)
            ]
        }
    if version == "0.4":
        ms["version"] = "0.4"
        group.attrs.update(attrs)
    else:
        group.attrs.update({"ome": {"version": "0.5", **attrs}})
    return path


def rgb_levels(width: int, height: int, n: int = 3) -> list[np.ndarray]:
    """A gradient/tissue image and its 2x reductions, (c, y, x) uint8."""
    base = sf.render_pattern(width, height, "tissue")
    out = []
    for arr in sf.pyramid(base, min_side=1)[:n]:
        out.append(np.ascontiguousarray(np.moveaxis(arr, 2, 0)))
    return out


# ------------------------------------------------------------------------------------------
# DICOM WSI

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _jpeg(tile: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tile, "RGB").save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def make_dicom_wsi(
    folder: Path,
    levels: list[np.ndarray],
    *,
    tile: int = 128,
    mpp: float = 0.25,
    power: float | None = 20.0,
    codec: str = "jpeg",
    crop_edges: bool = False,
) -> list[Path]:
    """Write one DICOM file per level of ``levels`` ((h, w, 3) uint8). ``codec``: ``jpeg``
    (baseline, 4:4:4, YBR_FULL) or ``raw`` (explicit VR little endian, RGB). ``crop_edges``: the
    last column and row of JPEG frames hold only the image's pixels (smaller than the tile);
    uncompressed frames always have the tile's size (DICOM fixes their length)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        generate_uid,
    )

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_ref = generate_uid(), generate_uid(), generate_uid()
    h0, w0 = levels[0].shape[:2]
    paths = []
    for li, arr in enumerate(levels):
        h, w = arr.shape[:2]
        frames = []
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                part = arr[ty : ty + tile, tx : tx + tile]
                if (codec == "raw" or not crop_edges) and part.shape[:2] != (tile, tile):
                    full = np.full((tile, tile, 3), 255, np.uint8)
                    full[: part.shape[0], : part.shape[1]] = part
                    part = full
                frames.append(np.ascontiguousarray(part))
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = WSI_SOP_CLASS
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = JPEGBaseline8Bit if codec == "jpeg" else ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.SOPClassUID = WSI_SOP_CLASS
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame_ref
        ds.Modality = "SM"
        ds.PatientName = "Test^Slide"
        ds.PatientID = "T1"
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyDate = "20260101"
        ds.StudyTime = "120000"
        ds.ContentDate = "20260101"
        ds.ContentTime = "120000"
        ds.AcquisitionDateTime = "20260101120000"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = li + 1
        ds.Manufacturer = "slidescout tests"
        ds.ManufacturerModelName = "formatfactory"
        ds.DeviceSerialNumber = "1"
        ds.SoftwareVersions = "1"
        ds.ContainerIdentifier = "SLIDE1"
        ds.IssuerOfTheContainerIdentifierSequence = Sequence()
        ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])
        ds.SpecimenDescriptionSequence = Sequence()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        ds.BurnedInAnnotation = "NO"
        ds.SpecimenLabelInImage = "NO"
        ds.VolumetricProperties = "VOLUME"
        ds.FocusMethod = "AUTO"
        ds.LossyImageCompression = "01" if codec == "jpeg" else "00"
        ds.DimensionOrganizationType = "TILED_FULL"
        ds.DimensionOrganizationSequence = Sequence([Dataset()])
        ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = generate_uid()
        ds.TotalPixelMatrixColumns = w
        ds.TotalPixelMatrixRows = h
        ds.TotalPixelMatrixFocalPlanes = 1
        ds.NumberOfFocalPlanes = 1
        origin = Dataset()
        origin.XOffsetInSlideCoordinateSystem = 0.0
        origin.YOffsetInSlideCoordinateSystem = 0.0
        ds.TotalPixelMatrixOriginSequence = Sequence([origin])
        ds.ImageOrientationSlide = [0, 1, 0, 1, 0, 0]
        spacing = mpp * (w0 / w) / 1000.0
        ds.ImagedVolumeWidth = w0 * mpp / 1000.0
        ds.ImagedVolumeHeight = h0 * mpp / 1000.0
        ds.ImagedVolumeDepth = 0.001
        shared = Dataset()
        pm = Dataset()
        pm.PixelSpacing = [spacing, spacing]
        pm.SliceThickness = 0.001
        shared.PixelMeasuresSequence = Sequence([pm])
        fc = Dataset()
        fc.FrameType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([fc])
        op_ref = Dataset()
        op_ref.OpticalPathIdentifier = "1"
        shared.OpticalPathIdentificationSequence = Sequence([op_ref])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        op = Dataset()
        op.OpticalPathIdentifier = "1"
        op.IlluminationTypeCodeSequence = Sequence(
            [_code("111744", "DCM", "Brightfield illumination")]
        )
        op.IlluminationColorCodeSequence = Sequence([_code("414298005", "SCT", "Full Spectrum")])
        if power is not None:
            op.ObjectiveLensPower = power
        ds.OpticalPathSequence = Sequence([op])
        ds.NumberOfOpticalPaths = 1
        ds.Rows = tile
        ds.Columns = tile
        ds.NumberOfFrames = len(frames)
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        if codec == "jpeg":
            ds.PhotometricInterpretation = "YBR_FULL_422"
            ds.LossyImageCompressionRatio = "10"
            ds.LossyImageCompressionMethod = "ISO_10918_1"
            ds.PixelData = encapsulate([_jpeg(f) for f in frames])
            ds["PixelData"].is_undefined_length = True
            ds["PixelData"].VR = "OB"
        else:
            ds.PhotometricInterpretation = "RGB"
            ds.PixelData = b"".join(f.tobytes() for f in frames)
        out = folder / f"level{li}.dcm"
        ds.save_as(out, enforce_file_format=True)
        paths.append(out)
    return paths


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


# ------------------------------------------------------------------------------------------
# CZI


def make_czi(
    path: Path,
    *,
    width: int = 600,
    height: int = 400,
    channels: int = 0,
    z: int = 1,
    t: int = 1,
    scenes: int = 1,
    mpp: float = 0.22,
    compression: str | None = None,
) -> Path:
    """A CZI written by pylibCZIrw: RGB (Bgr24) when ``channels`` is 0, else ``channels`` Gray16
    channels named after stains; ``z`` planes, ``t`` points, ``scenes`` side by side."""
    from pylibCZIrw import czi

    names = ["DAPI", "FITC", "TRITC", "Cy5"][: max(channels, 0)]
    with czi.create_czi(str(path), exist_ok=True, compression_options=compression) as w:
        for s in range(scenes):
            x0 = s * (width + 100)
            for ti in range(t):
                for zi in range(z):
                    if channels == 0:
                        rgb = sf.render_pattern(width, height, "tissue")
                        rgb = np.roll(rgb, 7 * zi + 13 * ti + 29 * s, axis=1)
                        bgr = np.ascontiguousarray(rgb[..., ::-1])
                        w.write(bgr, location=(x0, 0), plane=_plane(ti, zi, 0, t, z), scene=s)
                    else:
                        data = sf.channel_data(width, height, channels)
                        for c in range(channels):
                            plane = np.ascontiguousarray(
                                np.roll(data[..., c], 5 * zi + 11 * ti, axis=0)
                            )
                            w.write(plane, location=(x0, 0), plane=_plane(ti, zi, c, t, z), scene=s)
        w.write_metadata(
            document_name="slidescout test",
            channel_names={i: n for i, n in enumerate(names)} if names else None,
            scale_x=mpp * 1e-6,
            scale_y=mpp * 1e-6,
        )
    return path


def _plane(ti: int, zi: int, c: int, t: int, z: int) -> dict[str, int]:
    """Only the dimensions the image has (a Z or T index of a 2D image makes OpenSlide refuse it)."""
    plane = {"C": c}
    if t > 1:
        plane["T"] = ti
    if z > 1:
        plane["Z"] = zi
    return plane


# ------------------------------------------------------------------------------------------
# LIF

_LIF_XML = """<LMSDataContainerHeader Version="2"><Element Name="{name}" Visibility="1" \
CopyOption="1" UniqueID="0"><Data><Experiment /></Data><Memory Size="0" MemoryBlockID="" />\
<Children><Element Name="{image}" Visibility="1" CopyOption="1" UniqueID="1"><Data><Image>\
<ImageDescription><Channels>{channels}</Channels><Dimensions>\
<DimensionDescription DimID="1" NumberOfElements="{w}" Origin="0" Length="{lx}" Unit="m" \
BitInc="0" BytesInc="{bx}" />\
<DimensionDescription DimID="2" NumberOfElements="{h}" Origin="0" Length="{ly}" Unit="m" \
BitInc="0" BytesInc="{by}" /></Dimensions></ImageDescription><Attachment Name="HardwareSetting">\
<ATLConfocalSettingDefinition ObjectiveName="HC PL APO 20x/0.75" Magnification="20" /></Attachment>\
</Image></Data><Memory Size="{size}" MemoryBlockID="MemBlock_1" /><Children /></Element>\
</Children></Element></LMSDataContainerHeader>"""


def make_lif(path: Path, planes: list[np.ndarray], names: list[str], mpp: float = 0.5) -> Path:
    """One image of ``len(planes)`` uint8 (h, w) channels in a LIF container (readlif's layout:
    0x70, length, 0x2A, UTF-16 XML; then per memory block 0x70, length, 0x2A, size, 0x2A,
    UTF-16 block id, data)."""
    h, w = planes[0].shape
    chans = "".join(
        f'<ChannelDescription DataType="0" ChannelTag="0" Resolution="8" NameOfMeasuredQuantity="" '
        f'Min="0" Max="255" Unit="" LUTName="{n}" IsLUTInverted="0" BytesInc="{i * w * h}" '
        f'BitInc="0" />'
        for i, n in enumerate(names)
    )
    data = b"".join(np.ascontiguousarray(p, np.uint8).tobytes() for p in planes)
    xml = _LIF_XML.format(
        name="slidescout",
        image="image 1",
        channels=chans,
        w=w,
        h=h,
        lx=repr((w - 1) * mpp * 1e-6),
        ly=repr((h - 1) * mpp * 1e-6),
        bx=1,
        by=w,
        size=len(data),
    )
    x = xml.encode("utf-16-le")
    out = io.BytesIO()
    out.write(struct.pack("<iiBi", 0x70, len(x) + 5, 0x2A, len(xml)) + x)
    block = "MemBlock_1".encode("utf-16-le")
    out.write(struct.pack("<iiBqBi", 0x70, 0, 0x2A, len(data), 0x2A, len(block) // 2) + block)
    out.write(data)
    Path(path).write_bytes(out.getvalue())
    return Path(path)


def write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj))
