"""Reading and writing images and masks on disk (NRRD, NIfTI, MHA, DICOM series, Slicer .seg.nrrd).

Every reader raises :class:`~rtresponse.errors.InputError` naming the file and the problem,
and every writer writes atomically. Masks are returned as uint8 0/1 images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .inputs import binary_mask, finite_voxels, regular_file

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm")
GEOMETRY_TOLERANCE = 1e-4  # mm and direction cosines; scanners write 6-7 significant digits
UNITS_KEY = "rtresponse_units"  # header key naming the voxel units (SUVbw, SUL (lbm), BQML, ...)
DICOM_UNITS_TAG = "0054|1001"   # Units of a PET image series (BQML, GML, CNTS, ...)


def is_segmentation_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".seg.nrrd")


def read_image(path: str | os.PathLike) -> "sitk.Image":
    """Read a 3D scalar image; a folder (or a ``.dcm`` file) is read as one DICOM series.

    NaN or infinite voxels are refused (they would make every feature NaN).
    """
    return finite_voxels(_read_scalar(path), str(path))


def _read_scalar(path: str | os.PathLike) -> "sitk.Image":
    import SimpleITK as sitk

    path = regular_file(path, "image file", folder_ok=True)
    try:
        if path.is_dir() or path.suffix.lower() == ".dcm":
            image = _read_dicom_series(path)
        else:
            image = sitk.ReadImage(str(path))
    except InputError:
        raise
    except RuntimeError as error:
        raise InputError(f"cannot read image ({_first_line(error)})", path=str(path)) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components per voxel",
                         path=str(path))
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3D image, got {image.GetDimension()}D", path=str(path))
    return image


def _read_dicom_series(path: Path) -> "sitk.Image":
    import SimpleITK as sitk

    folder = path if path.is_dir() else path.parent
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError("no DICOM series in folder", path=str(folder))
    if path.is_dir() and len(series) > 1:
        raise InputError(f"folder holds {len(series)} DICOM series ({', '.join(series)}); point to one file of "
                         "the series you want or give each series its own folder", path=str(folder))
    files = dicom_series_files(path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def dicom_series_files(path: str | os.PathLike) -> list[str]:
    """The files :func:`read_image` reads for a DICOM folder (its one series) or ``.dcm`` file (that file's series)."""
    import SimpleITK as sitk

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        return []
    if path.is_dir():
        series_id = series[0]
    else:  # an unreadable file raises RuntimeError (read_image names the file)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        series_id = reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else series[0]
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id))


def dicom_header_value(path: str | os.PathLike, key: str) -> str:
    """Header entry ``key`` (``"0054|1001"`` for a DICOM tag, a NRRD key) of one image file; '' when absent."""
    import SimpleITK as sitk

    if not Path(path).is_file():  # a missing file, a folder, a named pipe (reading it would block)
        return ""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def is_dicom_path(path: str | os.PathLike) -> bool:
    """A folder (read as one DICOM series) or a ``.dcm`` file."""
    path = Path(path)
    return path.is_dir() or path.suffix.lower() == ".dcm"


def image_units(path: str | os.PathLike) -> tuple[str, str]:
    """(units, where they were found) as the file records them, without reading the voxels.

    The header key ``rtresponse_units`` (written by ``import-dicom`` and the sample data: ``SUVbw``, ``SUL (lbm)``,
    or the DICOM Units), or for a DICOM series its Units (0054,1001) (``BQML``, ``GML``); ('', '') when neither.
    """
    path = Path(path)
    if not (path.is_file() or path.is_dir()):
        return "", ""
    if is_dicom_path(path):
        try:
            files = dicom_series_files(path)[:1] if path.is_dir() else [path]
        except RuntimeError:
            return "", ""
        key, where = DICOM_UNITS_TAG, "DICOM Units (0054,1001)"
    else:
        files, key, where = [path], UNITS_KEY, f"header {UNITS_KEY}"
    if not files or not Path(files[0]).is_file():
        return "", ""
    units = dicom_header_value(files[0], key)
    return (units, where) if units else ("", "")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # ITK errors end with the useful description; keep it short.
    useful = [line for line in lines if "Description" in line or "Could not" in line or "Unable" in line]
    text = (useful or lines or ["unknown error"])[-1]
    return text.replace("Description:", "").strip()[:200]


def read_segmentation(path: str | os.PathLike) -> dict[str, "sitk.Image"]:
    """{segment name: uint8 mask} from a Slicer ``.seg.nrrd`` (any number of layers)."""
    import SimpleITK as sitk

    path = regular_file(path, "segmentation file")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"cannot read segmentation ({_first_line(error)})", path=str(path)) from None
    keys = set(reader.GetMetaDataKeys())
    layers = [sitk.VectorIndexSelectionCast(image, i) for i in range(image.GetNumberOfComponentsPerPixel())] \
        if image.GetNumberOfComponentsPerPixel() > 1 else [image]
    segments: dict[str, sitk.Image] = {}
    index = 0
    while f"Segment{index}_Name" in keys or f"Segment{index}_ID" in keys:
        def meta(field, default=None):
            key = f"Segment{index}_{field}"
            return reader.GetMetaData(key) if key in keys else default
        name = meta("Name") or meta("ID")
        try:
            label, layer = int(meta("LabelValue", "1")), int(meta("Layer", "0"))
        except ValueError:
            raise InputError(f"segment '{name}' has a LabelValue or Layer that is not a whole number "
                             f"({meta('LabelValue')!r}, {meta('Layer')!r})", path=str(path)) from None
        if layer >= len(layers):
            raise InputError(f"segment '{name}' refers to layer {layer} but the file has {len(layers)}", path=str(path))
        mask = sitk.Cast(sitk.Equal(layers[layer], label), sitk.sitkUInt8)
        if mask.GetDimension() == 2:
            mask = sitk.JoinSeries(mask)
        segments[name] = mask
        index += 1
    if not segments:  # a plain label image saved with .seg.nrrd: every label is a segment
        voxels = sitk.GetArrayViewFromImage(layers[0])
        for label in np.unique(voxels[voxels != 0]):
            mask = sitk.Cast(sitk.Equal(layers[0], int(label)), sitk.sitkUInt8)
            segments[f"Label_{int(label)}"] = mask
    return segments


def read_mask(path: str | os.PathLike, segment: str | None = None) -> "sitk.Image":
    """A uint8 0/1 mask: non-zero voxels of a label image, or one segment of a ``.seg.nrrd``.

    For a ``.seg.nrrd`` the segment is chosen by ``segment`` (name, case-insensitive); a file
    with a single segment needs no name.
    """
    import SimpleITK as sitk

    path = Path(path)
    if is_segmentation_file(path):
        segments = read_segmentation(path)
        if segment is not None:
            matches = [name for name in segments if name.lower() == segment.lower()]
            if matches:
                return segments[matches[0]]
        if len(segments) == 1:
            # a single segment, whatever its name: the manifest column says which structure it is
            return next(iter(segments.values()))
        wanted = f"no segment named '{segment}'" if segment else "several segments and no name given"
        raise InputError(f"{wanted} (segments: {', '.join(segments) or 'none'})", path=str(path))
    return binary_mask(_read_scalar(path), str(path))


def write_image(image: "sitk.Image", path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically (format from the extension)."""
    import SimpleITK as sitk

    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return Path(path)


def write_segmentation(masks: Mapping[str, "sitk.Image"], path: str | os.PathLike,
                       colors: Mapping[str, Sequence[float]] | None = None) -> Path:
    """Write non-overlapping masks on one grid as a Slicer ``.seg.nrrd`` (one layer, labels 1..n)."""
    import SimpleITK as sitk

    if not masks:
        raise InputError("no masks to write", path=str(path))
    names = list(masks)
    reference = masks[names[0]]
    labels = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)
    for value, name in enumerate(names, start=1):
        mask = masks[name]
        if not same_geometry(mask, reference):
            raise InputError(f"segment '{name}' is not on the grid of '{names[0]}'", path=str(path))
        inside = sitk.GetArrayViewFromImage(mask) != 0
        if np.any(labels[inside]):
            raise InputError(f"segment '{name}' overlaps another segment; write it to its own file", path=str(path))
        labels[inside] = value
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    size = reference.GetSize()
    for index, name in enumerate(names):
        color = (colors or {}).get(name, _DEFAULT_COLORS[index % len(_DEFAULT_COLORS)])
        image.SetMetaData(f"Segment{index}_ID", name)
        image.SetMetaData(f"Segment{index}_Name", name)
        image.SetMetaData(f"Segment{index}_NameAutoGenerated", "0")
        image.SetMetaData(f"Segment{index}_Color", " ".join(f"{c:g}" for c in color))
        image.SetMetaData(f"Segment{index}_ColorAutoGenerated", "0")
        image.SetMetaData(f"Segment{index}_LabelValue", str(index + 1))
        image.SetMetaData(f"Segment{index}_Layer", "0")
        image.SetMetaData(f"Segment{index}_Extent", f"0 {size[0] - 1} 0 {size[1] - 1} 0 {size[2] - 1}")
        image.SetMetaData(f"Segment{index}_Tags", "")
    return write_image(image, path)


_DEFAULT_COLORS = ((0.85, 0.2, 0.2), (0.2, 0.6, 0.9), (0.95, 0.75, 0.1), (0.3, 0.8, 0.4), (0.7, 0.4, 0.9))


# --------------------------------------------------------------------------- geometry

def same_geometry(a: "sitk.Image", b: "sitk.Image", tolerance: float = GEOMETRY_TOLERANCE) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance, rtol=0)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance, rtol=0)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance, rtol=0))


def describe_geometry(image: "sitk.Image") -> str:
    size = "x".join(str(s) for s in image.GetSize())
    spacing = "x".join(f"{s:g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:g}" for o in image.GetOrigin())
    direction = " ".join(f"{d:.4g}" for d in image.GetDirection())
    return f"{size} voxels of {spacing} mm at ({origin}), direction ({direction})"


def align_mask(mask: "sitk.Image", reference: "sitk.Image", tolerance: float = GEOMETRY_TOLERANCE) -> "sitk.Image":
    """``mask`` on ``reference``'s grid without interpolation, or an InputError saying why not.

    Accepted: the same grid, or a sub-grid (same spacing and direction, origin on the
    reference's lattice) such as the cropped extent Slicer writes in ``.seg.nrrd`` files.
    Mask voxels that fall outside the reference make it an error (they would be lost).
    """
    import SimpleITK as sitk

    if same_geometry(mask, reference, tolerance):
        aligned = sitk.Cast(mask, sitk.sitkUInt8)
        aligned.CopyInformation(reference)
        return aligned
    if not (np.allclose(mask.GetSpacing(), reference.GetSpacing(), atol=tolerance, rtol=0)
            and np.allclose(mask.GetDirection(), reference.GetDirection(), atol=tolerance, rtol=0)):
        raise InputError(f"mask geometry ({describe_geometry(mask)}) does not match the image "
                         f"({describe_geometry(reference)})")
    offset = np.array(reference.TransformPhysicalPointToContinuousIndex(mask.GetOrigin()))
    if not np.allclose(offset, np.round(offset), atol=1e-3):
        raise InputError(f"mask voxels are not on the image's voxel grid (offset {np.round(offset, 3).tolist()} voxels)")
    offset = np.round(offset).astype(int)
    mask_voxels = sitk.GetArrayViewFromImage(mask) != 0
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)
    lo = offset[::-1]  # (z, y, x)
    hi = lo + np.array(mask_voxels.shape)
    src_lo = np.maximum(0, -lo)
    dst_lo = np.maximum(0, lo)
    dst_hi = np.minimum(out.shape, hi)
    if np.any(dst_hi <= dst_lo):
        if mask_voxels.any():
            raise InputError("mask lies entirely outside the image")
    else:
        src_hi = src_lo + (dst_hi - dst_lo)
        window = mask_voxels[src_lo[0]:src_hi[0], src_lo[1]:src_hi[1], src_lo[2]:src_hi[2]]
        if int(window.sum()) != int(mask_voxels.sum()):
            raise InputError(f"{int(mask_voxels.sum()) - int(window.sum())} mask voxels lie outside the image")
        out[dst_lo[0]:dst_hi[0], dst_lo[1]:dst_hi[1], dst_lo[2]:dst_hi[2]] = window
    aligned = sitk.GetImageFromArray(out)
    aligned.CopyInformation(reference)
    return aligned
