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


RECURRENCE_CHANNELS = (8, 8, 16, 32, 64, 8)  # a small U-Net: tests check plumbing, not accuracy
RECURRENCE_BOX = (48, 64, 32)  # larger than the 40 x 40 x 20 test CT: the box is padded


def recurrenceScene(scene, name: str = "RecurrenceVolumeTest"):
    """CT (40 x 40 x 20 voxels of 1.5 x 1.5 x 3 mm, noise with a brighter GTV), PET on a coarser grid with a hot
    blob near the GTV, and a segmentation with the GTV ("GTVp") and the relapse (PET at least 42 % of its maximum
    in the GTV); returns (ct, pet, segmentation, gtv id, relapse id)."""
    import numpy as np
    import SimpleITK as sitk
    from rtresponse import mrml

    shape = (20, 40, 40)  # z, y, x
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2
    gtv = ((z - centre[0]) / 6) ** 2 + ((y - centre[1]) / 9) ** 2 + ((x - centre[2]) / 9) ** 2 <= 1
    hot = centre + [1.0, 2.0, -2.0]
    suv = 1.0 + 9.0 * np.exp(-(((z - hot[0]) / 2.5) ** 2 + ((y - hot[1]) / 4) ** 2 + ((x - hot[2]) / 4) ** 2))
    ctArray = np.where(gtv, 45.0, 20.0) + np.random.default_rng(5).normal(0, 15, shape)

    def image(array, pixel=np.float32):
        out = sitk.GetImageFromArray(array.astype(pixel))
        out.SetSpacing((1.5, 1.5, 3.0))
        out.SetOrigin((-30.0, 10.0, 5.0))
        return out

    ctImage = image(ctArray, np.int16)
    petImage = sitk.Resample(image(suv), [20, 20, 15], sitk.Transform(), sitk.sitkLinear, (-29.25, 10.75, 6.0),
                             (3.0, 3.0, 4.0), ctImage.GetDirection(), 0.0, sitk.sitkFloat32)
    ct = mrml.image_to_volume_node(ctImage, f"{name} CT", scene=scene)
    pet = mrml.image_to_volume_node(petImage, f"{name} PET", scene=scene)
    segmentation = mrml.new_segmentation_node(f"{name} contours", ct, scene=scene)
    gtvId = mrml.mask_to_segment(image(gtv, np.uint8), segmentation, "GTVp", ct)
    relapseId = mrml.mask_to_segment(image(suv >= 0.42 * suv[gtv].max(), np.uint8), segmentation, "relapse", ct)
    return ct, pet, segmentation, gtvId, relapseId


def saveRecurrenceModel(path):
    """A small random recurrence U-Net saved as a model file (with its box), as ``recurrence train`` saves one."""
    from rtresponse.recurrence import make_unet, save_model

    return save_model(path, make_unet(RECURRENCE_CHANNELS), {"channels": list(RECURRENCE_CHANNELS),
                                                             "box_xyz": list(RECURRENCE_BOX)})


def checkRecurrenceOutputs(nodes, ct, withMetrics: bool = True) -> None:
    """What a run with a model must give, however it was made (in process or by a job): a probability map in
    [0, 1] on the CT's grid, the predicted relapse, SUVmax and GTV segments and, with the relapse, the metrics."""
    import numpy as np
    import slicer
    from rtresponse import mrml

    probability = nodes.probability
    assert probability.GetImageData().GetDimensions() == ct.GetImageData().GetDimensions()
    assert np.allclose(probability.GetSpacing() + probability.GetOrigin(), ct.GetSpacing() + ct.GetOrigin(), atol=1e-5)
    values = slicer.util.arrayFromVolume(probability)
    assert 0.0 <= float(values.min()) and float(values.max()) <= 1.0, (values.min(), values.max())
    assert nodes.segmentation.GetSegmentation().GetNumberOfSegments() == 3  # predicted, SUVmax, GTV
    if withMetrics:
        assert list(mrml.table_node_to_dataframe(nodes.metrics).index) == ["CNN", "SUVmax 38%", "GTV"]
