"""Image and mask files: readers name the file and the problem; writers are atomic."""

from __future__ import annotations

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.imageio import (  # noqa: E402
    align_mask, read_image, read_mask, read_segmentation, write_image, write_segmentation)


def _image(shape=(4, 6, 8), spacing=(1.0, 1.0, 2.0)):
    image = sitk.GetImageFromArray(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_formats_round_trip(tmp_path, suffix):
    image = _image()
    path = write_image(image, tmp_path / f"ct{suffix}")
    back = read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetSpacing() == image.GetSpacing()
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]  # no temporary left behind


def test_dicom_series_folder_is_read_as_one_volume(tmp_path):
    image = sitk.Cast(_image(shape=(3, 6, 8)), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        slice_.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.1")  # series instance UID
        slice_.SetMetaData("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k)))))
        slice_.SetMetaData("0020|0013", str(k + 1))
        slice_.SetMetaData("0008|0060", "CT")
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)
    volume = read_image(tmp_path)
    assert volume.GetSize() == (8, 6, 3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume), sitk.GetArrayFromImage(image))


def test_unreadable_and_missing_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.nrrd.*file not found"):
        read_image(tmp_path / "nothere.nrrd")
    bad = tmp_path / "bad.nrrd"
    bad.write_text("NRRD0004\ngarbage")
    with pytest.raises(InputError, match=r"bad\.nrrd.*cannot read image"):
        read_image(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "empty")


def test_label_image_mask_is_binary(tmp_path):
    labels = sitk.GetImageFromArray(np.array([[[0, 255, 255, 0]]], dtype=np.uint8))
    path = write_image(labels, tmp_path / "labels.nrrd")
    assert sitk.GetArrayFromImage(read_mask(path)).tolist() == [[[0, 1, 1, 0]]]


def test_a_label_map_of_several_structures_is_not_one_mask(tmp_path):
    labels = sitk.GetImageFromArray(np.array([[[0, 1, 2, 0]]], dtype=np.uint8))
    path = write_image(labels, tmp_path / "labels.nrrd")
    with pytest.raises(InputError, match=r"several labels \(1, 2\)") as error:
        read_mask(path)
    assert str(path) in str(error.value)


def test_segmentation_file_round_trip_and_overlap_refused(tmp_path):
    a = sitk.GetImageFromArray(np.array([[[1, 1, 0, 0]]], dtype=np.uint8))
    b = sitk.GetImageFromArray(np.array([[[0, 0, 0, 1]]], dtype=np.uint8))
    path = write_segmentation({"GTVp": a, "GTVn": b}, tmp_path / "gtv.seg.nrrd")
    segments = read_segmentation(path)
    assert list(segments) == ["GTVp", "GTVn"]
    assert sitk.GetArrayFromImage(segments["GTVn"]).tolist() == [[[0, 0, 0, 1]]]
    assert sitk.GetArrayFromImage(read_mask(path, "gtvp")).tolist() == [[[1, 1, 0, 0]]]  # case-insensitive
    with pytest.raises(InputError, match="overlaps"):
        write_segmentation({"A": a, "B": a}, tmp_path / "overlap.seg.nrrd")
    assert not (tmp_path / "overlap.seg.nrrd").exists()


def test_align_mask_refuses_what_it_cannot_place_exactly():
    reference = _image()
    shifted = sitk.Image(4, 4, 2, sitk.sitkUInt8)
    shifted.SetSpacing(reference.GetSpacing())
    shifted.SetOrigin((0.5, 0.0, 0.0))  # half a voxel off the lattice
    with pytest.raises(InputError, match="not on the image's voxel grid"):
        align_mask(shifted, reference)
    coarse = sitk.Image(4, 3, 2, sitk.sitkUInt8)
    coarse.SetSpacing((2.0, 2.0, 2.0))
    with pytest.raises(InputError, match="does not match the image"):
        align_mask(coarse, reference)
    outside = sitk.Image(2, 2, 2, sitk.sitkUInt8)
    outside.SetSpacing(reference.GetSpacing())
    outside.SetOrigin((7.0, 0.0, 0.0))  # its second column is beyond the last index, x = 7
    outside[1, 0, 0] = 1
    with pytest.raises(InputError, match="1 mask voxels lie outside the image"):
        align_mask(outside, reference)
