"""rtresponse.mrml against a real MRML scene: exact round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

sitk = pytest.importorskip("SimpleITK")
from rtresponse import mrml  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402

from conftest import oblique_direction  # noqa: E402


def assert_same_geometry(a, b, tol=1e-6):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=tol, rtol=0)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=tol, rtol=0)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.int32, np.uint16])
def test_image_volume_image_is_exact_for_oblique_anisotropic_images(scene, oblique_image, dtype):
    image = sitk.Cast(oblique_image, sitk.GetImageFromArray(np.zeros((1, 1, 1), dtype)).GetPixelID())
    node = mrml.image_to_volume_node(image, "ct", scene)
    back = mrml.volume_node_to_image(node)
    assert_same_geometry(image, back)
    assert back.GetPixelID() == image.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_volume_node_is_in_ras(scene, oblique_image):
    """Slicer's RAS is ITK's LPS with x and y negated: check against the node's own matrix."""
    import vtk

    node = mrml.image_to_volume_node(oblique_image, "ct", scene)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    # voxel (i, j, k) = (2, 3, 4): physical point in LPS from ITK
    lps = np.array(oblique_image.TransformIndexToPhysicalPoint((2, 3, 4)))
    ras = ijk_to_ras @ np.array([2, 3, 4, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_linear_parent_transform_moves_the_exported_image(scene, oblique_image):
    import vtk

    node = mrml.image_to_volume_node(oblique_image, "ct", scene)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 10.0)  # +10 mm in R = -10 mm in L
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = mrml.volume_node_to_image(node)
    np.testing.assert_allclose(np.array(moved.GetOrigin()) - oblique_image.GetOrigin(), [-10, 0, 0], atol=1e-9)


def test_exporting_copies_voxels(scene, oblique_image):
    node = mrml.image_to_volume_node(oblique_image, "ct", scene)
    image = mrml.volume_node_to_image(node)
    image[0, 0, 0] = 12345.0
    again = mrml.volume_node_to_image(node)
    assert again[0, 0, 0] == oblique_image[0, 0, 0]


def test_two_dimensional_image_becomes_single_slice_volume(scene):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4))
    image.SetSpacing((0.5, 0.25))
    node = mrml.image_to_volume_node(image, "slice", scene)
    back = mrml.volume_node_to_image(node)
    assert back.GetSize() == (4, 3, 1)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back)[0], sitk.GetArrayFromImage(image))


def test_empty_volume_node_is_rejected_with_its_name(scene):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty CT")
    with pytest.raises(InputError, match="Empty CT.*no voxels"):
        mrml.volume_node_to_image(node)


def _sphere_mask(reference, centre_index, radius_vox):
    z, y, x = np.indices(sitk.GetArrayViewFromImage(reference).shape)
    cx, cy, cz = centre_index
    inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_vox ** 2
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def test_mask_segment_mask_is_voxel_identical_on_oblique_grid(scene, oblique_image):
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    mask = _sphere_mask(oblique_image, (5, 4, 3), 2.6)
    segmentation = mrml.new_segmentation_node("contours", volume, scene)
    segment_id = mrml.mask_to_segment(mask, segmentation, "GTVp", volume)
    assert mrml.segment_names(segmentation)[segment_id] == "GTVp"
    colour_tables = scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")
    back = mrml.segment_to_mask(segmentation, segment_id, volume)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert_same_geometry(back, oblique_image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    # the export left no temporary node behind, nor the colour table Slicer's export makes for the segmentation
    assert [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLLabelMapVolumeNode")] == []
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == colour_tables


def test_two_segments_stay_apart_and_can_be_found_by_name(scene, oblique_image):
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    segmentation = mrml.new_segmentation_node("contours", volume, scene)
    first = _sphere_mask(oblique_image, (3, 3, 2), 1.5)
    second = _sphere_mask(oblique_image, (8, 5, 3), 1.5)
    mrml.mask_to_segment(first, segmentation, "GTVp", volume)
    mrml.mask_to_segment(second, segmentation, "GTVn", volume)
    back = mrml.segment_to_mask(segmentation, "GTVn", volume)  # name accepted as well as id
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(second))


def test_empty_mask_round_trips_to_empty(scene, oblique_image):
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    segmentation = mrml.new_segmentation_node("contours", volume, scene)
    empty = sitk.Image(oblique_image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(oblique_image)
    segment_id = mrml.mask_to_segment(empty, segmentation, "nothing", volume)
    back = mrml.segment_to_mask(segmentation, segment_id, volume)
    assert sitk.GetArrayViewFromImage(back).sum() == 0
    assert_same_geometry(back, oblique_image)


def test_unknown_segment_is_named_in_the_error(scene, oblique_image):
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    segmentation = mrml.new_segmentation_node("contours", volume, scene)
    mrml.mask_to_segment(_sphere_mask(oblique_image, (5, 4, 3), 2), segmentation, "GTVp", volume)
    with pytest.raises(InputError, match=r"contours.*'GTVx'.*GTVp|contours.*'GTVx'"):
        mrml.segment_to_mask(segmentation, "GTVx", volume)


def test_mask_on_finer_grid_is_resampled_onto_reference(scene):
    """A segment drawn on another grid comes back on the reference volume's grid."""
    reference = sitk.Image((10, 10, 10), sitk.sitkInt16)
    reference.SetSpacing((2.0, 2.0, 2.0))
    volume = mrml.image_to_volume_node(reference, "ct", scene)
    fine = sitk.Image((20, 20, 20), sitk.sitkUInt8)
    fine.SetSpacing((1.0, 1.0, 1.0))
    fine.SetOrigin((-0.5, -0.5, -0.5))  # voxel corners coincide with the coarse grid's
    fine_voxels = np.zeros((20, 20, 20), np.uint8)
    fine_voxels[4:12, 4:12, 4:12] = 1  # = coarse voxels 2..5
    fine = sitk.GetImageFromArray(fine_voxels)
    fine.SetSpacing((1.0, 1.0, 1.0))
    fine.SetOrigin((-0.5, -0.5, -0.5))
    segmentation = mrml.new_segmentation_node("contours", None, scene)
    segment_id = mrml.mask_to_segment(fine, segmentation, "GTV")
    back = sitk.GetArrayFromImage(mrml.segment_to_mask(segmentation, segment_id, volume))
    assert back.shape == (10, 10, 10)
    assert back[2:6, 2:6, 2:6].all()
    assert back.sum() == 64


def test_dataframe_table_dataframe_keeps_values_index_and_dtypes(scene):
    df = pd.DataFrame({
        "age": [61, 54, 70],
        "suv_max": [12.5, np.nan, 7.25],
        "hpv_positive": [True, False, True],
        "stage": ["III", None, "IVa"],
        "weird name (mm^3)": [1e-12, -3.5e8, 0.0],
    }, index=pd.Index(["P001", "P002", "P003"], name="patient_id"))
    node = mrml.dataframe_to_table_node(df, "clinical", scene)
    assert node.GetNumberOfRows() == 3
    back = mrml.table_node_to_dataframe(node)
    pd.testing.assert_frame_equal(back, df)


def test_dataframe_without_named_index_round_trips(scene):
    df = pd.DataFrame({"x": [0.0, 0.5, 1.0], "y": [1, 2, 3]})
    back = mrml.table_node_to_dataframe(mrml.dataframe_to_table_node(df, "points", scene))
    pd.testing.assert_frame_equal(back, df)


def test_table_made_in_slicer_reads_back(scene):
    """A table built with plain VTK arrays (as Slicer's Tables module does) reads as numbers/text."""
    import vtk

    table = vtk.vtkTable()
    numbers = vtk.vtkDoubleArray()
    numbers.SetName("dose")
    for value in (1.5, 2.5):
        numbers.InsertNextValue(value)
    text = vtk.vtkStringArray()
    text.SetName("organ")
    for value in ("parotid", ""):
        text.InsertNextValue(value)
    table.AddColumn(numbers)
    table.AddColumn(text)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", "from slicer")
    node.SetAndObserveTable(table)
    frame = mrml.table_node_to_dataframe(node)
    assert frame["dose"].tolist() == [1.5, 2.5]
    assert frame["organ"].tolist() == ["parotid", None]


def test_plot_xy_makes_chart_with_one_series_per_curve_from_one_table(scene):
    chart = mrml.plot_xy({"train": ([0, 0.5, 1], [0, 0.8, 1]), "test": ([0, 1], [0, 1])}, "ROC", scene,
                         x_title="1 - specificity", y_title="sensitivity")
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1  # one table per chart
    train, test = (chart.GetNthPlotSeriesNode(i) for i in range(2))
    assert train.GetTableNode() is test.GetTableNode()
    points = mrml.table_node_to_dataframe(train.GetTableNode())
    assert points[train.GetYColumnName()].tolist() == [0, 0.8, 1]
    assert points[test.GetXColumnName()].tolist() == [0, 1, 1]  # the shorter curve repeats its last point
    assert points[test.GetYColumnName()].tolist() == [0, 1, 1]
    with pytest.raises(InputError, match="shape"):
        mrml.plot_xy({"bad": ([0, 1], [0])}, "broken", scene)


def test_save_scene_writes_a_bundle_that_reopens(scene, oblique_image, tmp_path):
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    segmentation = mrml.new_segmentation_node("contours", volume, scene)
    mask = _sphere_mask(oblique_image, (5, 4, 3), 2.6)
    mrml.mask_to_segment(mask, segmentation, "GTVp", volume)
    mrml.dataframe_to_table_node(pd.DataFrame({"age": [61]}, index=pd.Index(["P1"], name="patient_id")),
                                 "clinical", scene)
    path = mrml.save_scene(tmp_path / "scene.mrb", scene)
    assert path.is_file() and list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    reopened = mrml.open_scene_bundle(path)
    volumes = mrml.nodes_by_class(reopened, "vtkMRMLScalarVolumeNode")
    segmentations = mrml.nodes_by_class(reopened, "vtkMRMLSegmentationNode")
    tables = mrml.nodes_by_class(reopened, "vtkMRMLTableNode")
    assert [v.GetName() for v in volumes] == ["ct"]
    image = mrml.volume_node_to_image(volumes[0])
    assert_same_geometry(image, oblique_image, tol=1e-5)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(oblique_image))
    back = mrml.segment_to_mask(segmentations[0], "GTVp", volumes[0])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert mrml.table_node_to_dataframe(tables[0]).loc["P1", "age"] == 61


def test_save_scene_refuses_other_extensions(scene, tmp_path):
    with pytest.raises(InputError, match=r"\.mrb"):
        mrml.save_scene(tmp_path / "scene.zip", scene)
    assert list(tmp_path.iterdir()) == []


def test_oblique_direction_helper_is_a_rotation():
    rotation = oblique_direction()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert abs(np.linalg.det(rotation) - 1) < 1e-12


def test_wrong_kinds_of_node_get_one_clear_message(scene, oblique_image):
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "clinical")
    volume = mrml.image_to_volume_node(oblique_image, "ct", scene)
    with pytest.raises(InputError, match=r"node 'clinical': expected a scalar volume node .* got vtkMRMLTableNode"):
        mrml.volume_node_to_image(table)
    with pytest.raises(InputError, match=r"node 'ct': expected a segmentation node"):
        mrml.segment_to_mask(volume, "GTVp", volume)
    with pytest.raises(InputError, match=r"node 'ct': expected a table node"):
        mrml.table_node_to_dataframe(volume)
    with pytest.raises(InputError, match="no segmentation node given"):
        mrml.mask_to_segment(oblique_image, None, "GTVp")
    with pytest.raises(InputError, match="expected a SimpleITK image, got ndarray"):
        mrml.image_to_volume_node(np.zeros((2, 2, 2)), "array", scene)
    assert len(mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")) == 1  # nothing made half-way


def test_label_map_volume_round_trips_as_a_volume(scene, oblique_image):
    mask = sitk.Cast(oblique_image > 40, sitk.sitkUInt8)
    node = mrml.image_to_volume_node(mask, "labels", scene, labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mrml.volume_node_to_image(node)),
                                  sitk.GetArrayFromImage(mask))


def test_empty_text_and_missing_text_stay_apart_in_a_table_round_trip(scene):
    frame = pd.DataFrame({"note": ["", None, "left"], "dose": [70.0, np.nan, 66.0]},
                         index=pd.Index(["007", "008", "009"], name="patient_id"))
    back = mrml.table_node_to_dataframe(mrml.dataframe_to_table_node(frame, "notes", scene))
    assert back.loc["007", "note"] == ""
    assert pd.isna(back.loc["008", "note"])
    assert back.loc["009", "note"] == "left"
    assert list(back.index) == ["007", "008", "009"]
    assert np.isnan(back.loc["008", "dose"])
