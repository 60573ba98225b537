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


RESIDUAL_SMALL = dict(network="squeezenet", weights=None, input_size=32, epochs=1, learning_rate=0.01, batch_size=32)
RESIDUAL_UNET_FEATURES = (4, 4, 8, 8, 16, 4)


def residualModels(folder):
    """A synthetic 4-patient cohort in ``folder`` and two small residual classifiers (SqueezeNet on 32-pixel crops,
    one epoch from random weights: tests check plumbing, not accuracy); returns (manifest, ccrt path, ic path)."""
    import os

    from rtresponse.cohort import load_manifest
    from rtresponse.residual.classification import ClassifierConfig, save_classifier, train_classifier
    from rtresponse.residual.slices import rectangular_crops
    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(os.path.join(folder, "cohort"), n_patients=4, size=(48, 48, 16))
    cohort = load_manifest(manifest)
    pids, paths = list(cohort.patient_ids), []
    for offset, regimen in enumerate(("CCRT", "IC+CCRT")):
        config = ClassifierConfig(**RESIDUAL_SMALL, regimen=regimen)
        samples = []
        for pid in pids:
            image = cohort.read_image(pid, "T1")
            samples += rectangular_crops(image, cohort.read_mask(pid, "GTVp", image="T1", reference=image), pid,
                                         **config.crop_options())
        labels = {pid: (i + offset) % 2 for i, pid in enumerate(pids)}  # plumbing only: any two classes
        paths.append(os.path.join(folder, f"{regimen}.pt"))
        save_classifier(paths[-1], train_classifier(samples, labels, config))
    return manifest, paths[0], paths[1]


def residualScene(scene, manifest):
    """The first patient of ``manifest``: its T1 MR and a segmentation with its GTVp; returns (mr, segmentation,
    GTVp id)."""
    from rtresponse import mrml
    from rtresponse.cohort import load_manifest

    cohort = load_manifest(manifest)
    nodes = mrml.load_patient(cohort, list(cohort.patient_ids)[0], scene=scene, images=["T1"], masks=["GTVp"])
    segmentation = nodes["segmentation"]
    return nodes["volumes"]["T1"], segmentation, segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTVp")


def saveResidualSegmenter(path):
    """An untrained small U-Net segmenter at threshold 0 (its probabilities are near 0.5: it finds a tumour for
    sure; plumbing only)."""
    from rtresponse.residual.segmentation import Segmenter, SegmenterConfig, make_segmenter, save_segmenter

    config = SegmenterConfig(architecture="unet", input_size=32, unet_features=RESIDUAL_UNET_FEATURES,
                             backbone_weights=None, threshold=0.0)
    return save_segmenter(path, Segmenter(make_segmenter("unet", None, unet_features=RESIDUAL_UNET_FEATURES), config))


def checkResidualOutputs(nodes, mr, gradcam: bool = True) -> None:
    """What a residual run must give, however it was made: a table with the slices and the patient row (the mean of
    the slices, the recommendation), Grad-CAM maps in [0, 1] on the MR's grid when asked."""
    import numpy as np
    import slicer
    from rtresponse import mrml

    from .residualtumor import OUTPUT_ATTRIBUTE, RECOMMENDATION_ATTRIBUTE, RECOMMENDATIONS, REGIMENS

    assert nodes.recommendation in RECOMMENDATIONS and nodes.recommendation in nodes.reasoning, nodes.reasoning
    assert nodes.table.GetAttribute(RECOMMENDATION_ATTRIBUTE) == nodes.recommendation
    frame = mrml.table_node_to_dataframe(nodes.table)
    assert frame.index[-1] == "patient" and len(frame) >= 2, list(frame.index)
    assert frame.loc["patient", "recommendation"] == nodes.recommendation
    for regimen, column in zip(REGIMENS, ("p_residual_CCRT", "p_residual_IC_CCRT")):
        values = frame[column].astype(float)
        assert ((values >= 0) & (values <= 1)).all()
        assert abs(values.iloc[:-1].mean() - values["patient"]) < 1e-5  # the patient's is the mean of its slices
        assert abs(nodes.probabilities[regimen] - values["patient"]) < 1e-5
    assert set(nodes.gradcam) == (set(REGIMENS) if gradcam else set())
    for node in nodes.gradcam.values():
        assert node.GetImageData().GetDimensions() == mr.GetImageData().GetDimensions()
        assert np.allclose(node.GetSpacing() + node.GetOrigin(), mr.GetSpacing() + mr.GetOrigin(), atol=1e-5)
        cam = slicer.util.arrayFromVolume(node)
        assert 0.0 <= float(cam.min()) and float(cam.max()) <= 1.0
        assert node.GetAttribute(OUTPUT_ATTRIBUTE) == "1"
