"""Small scenes for the modules' self-tests and the pytest suite (the same data in and out of Slicer)."""

from __future__ import annotations


def sphereScene(scene, name: str = "TumorFeaturesTest"):
    """A 32³ image (1 x 1 x 2 mm voxels, seeded noise) with a bright sphere of radius 8 voxels, and a segmentation
    with the sphere ("GTV") and an empty segment ("Empty"); returns (volume, segmentation, [GTV id, Empty id])."""
    import numpy as np
    import SimpleITK as sitk
    from rtresponse import mrml

    z, y, x = np.mgrid[:32, :32, :32]
    inside = (z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 8 ** 2
    noise = np.random.default_rng(0).normal(0.0, 20.0, inside.shape)
    image = sitk.GetImageFromArray((np.where(inside, 60.0, -40.0) + noise).astype(np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    volume = mrml.image_to_volume_node(image, f"{name}Image", scene=scene)
    segmentation = mrml.new_segmentation_node(f"{name}Segmentation", volume, scene=scene)
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    gtv = mrml.mask_to_segment(mask, segmentation, "GTV", volume)
    empty = segmentation.GetSegmentation().AddEmptySegment("", "Empty")
    return volume, segmentation, [gtv, empty]


def checkSphereTable(frame) -> None:
    """What a handcrafted ``ct-tanaka`` table of :func:`sphereScene` must show, however it was made (in process or
    by a job): the sphere measured (volume within 15 %, bright inside), the empty segment failed with its reason."""
    import math

    assert list(frame.index) == ["GTV", "Empty"], f"rows {list(frame.index)}"
    assert frame.index.name == "segment", f"index {frame.index.name}"
    assert frame.loc["GTV", "status"] == "ok", frame.loc["GTV", "status"]
    assert "mask is empty" in frame.loc["Empty", "status"], frame.loc["Empty", "status"]
    sphere = 4.0 / 3.0 * math.pi * 8 ** 3 * 2.0  # mm³
    assert abs(frame.loc["GTV", "original_shape_MeshVolume"] / sphere - 1.0) <= 0.15
    assert frame.loc["GTV", "original_firstorder_Mean"] > 20.0  # inside the bright sphere
