"""The bridge between rtresponse and the MRML scene: the only module that touches MRML nodes.

Everything else in rtresponse works on SimpleITK images, numpy arrays and pandas DataFrames.
Inside 3D Slicer ``scene=None`` means ``slicer.mrmlScene``; outside Slicer (tests, batch) pass
a scene from the ``slicer-core`` wheel (see :func:`new_scene`).

Geometry: Slicer stores volumes in RAS, ITK in LPS. Conversion flips the first two axes of
origin and direction; spacing and voxel order are untouched, so round trips are exact.
Inputs are never modified; every function that produces something makes a new node.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..safezip import check_zip, safe_extract

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

# RAS <-> LPS: negate x and y.
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

# Node attributes used to restore a DataFrame exactly from a table node.
_INDEX_ATTRIBUTE = "rtresponse.index"
_DTYPES_ATTRIBUTE = "rtresponse.dtypes"
PROVENANCE_ATTRIBUTE = "rtresponse.provenance"  # JSON: how the table was made (the frame's attrs["provenance"])
_MISSING_ATTRIBUTE = "rtresponse.missing"  # rows of each text column that were missing (not empty text)


# --------------------------------------------------------------------------- scene helpers

def _slicer():
    try:
        import slicer
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise InputError("MRML is not available: run inside 3D Slicer or install slicer-core "
                         "(pip install 'rtresponse[mrml]', never inside Slicer)") from error
    return slicer


def _scene(scene=None):
    if scene is not None:
        return scene
    scene = getattr(_slicer(), "mrmlScene", None)
    if scene is None:
        raise InputError("no MRML scene given and none is current (pass scene=..., or run inside 3D Slicer)")
    return scene


def _node_name(node) -> str:
    return node.GetName() if node is not None and hasattr(node, "GetName") else "<none>"


def _require(node, class_name: str, role: str) -> None:
    """One clear error when a caller passes nothing, or a node of the wrong kind."""
    if node is None:
        raise InputError(f"no {role} given")
    if not (hasattr(node, "IsA") and node.IsA(class_name)):
        kind = node.GetClassName() if hasattr(node, "GetClassName") else type(node).__name__
        raise InputError(f"expected a {role} ({class_name}), got {kind}", node=_node_name(node))


def register_segmentation_converters() -> None:
    """Register the segmentation conversion rules 3D Slicer registers at start-up.

    Needed only outside the application (slicer-core): without them a segmentation cannot
    hold a binary labelmap. Safe to call more than once.
    """
    slicer = _slicer()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.ConstructRepresentationObjectByRepresentation("Binary labelmap") is not None:
        return  # the application (or an earlier call) did it
    for rule_class in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                       slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
                       slicer.vtkClosedSurfaceToFractionalLabelmapConversionRule,
                       slicer.vtkFractionalLabelmapToClosedSurfaceConversionRule):
        factory.RegisterConverterRule(rule_class())


def new_scene():
    """A fresh, empty MRML scene with segmentation converters registered (outside Slicer)."""
    slicer = _slicer()
    register_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    return scene


# --------------------------------------------------------------------------- geometry

def _world_ijk_to_ras(volume_node) -> np.ndarray:
    """The node's IJK->RAS matrix in world coordinates (parent linear transforms applied)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _np_from_vtk_matrix(matrix)
    transform_node = volume_node.GetParentTransformNode()
    if transform_node is not None:
        if not transform_node.IsTransformToWorldLinear():
            raise InputError("volume is under a non-linear transform; harden the transform first",
                             node=_node_name(volume_node))
        to_world = vtk.vtkMatrix4x4()
        transform_node.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = _np_from_vtk_matrix(to_world) @ ijk_to_ras
    return ijk_to_ras


def _np_from_vtk_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _vtk_from_np_matrix(array: np.ndarray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _split_ijk_to_ras(ijk_to_ras: np.ndarray, node_name: str):
    """(origin, spacing, direction) in RAS from a 4x4 IJK->RAS matrix; rejects shear."""
    linear = ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise InputError("volume has zero spacing", node=node_name)
    direction = linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise InputError("volume geometry is sheared (non-orthogonal axes); harden or resample it first",
                         node=node_name)
    return ijk_to_ras[:3, 3].copy(), spacing, direction


def image_geometry_ras(image: "sitk.Image"):
    """(origin, spacing, direction) of a SimpleITK image expressed in RAS."""
    direction_lps = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    origin_ras = _LPS_FROM_RAS @ np.array(image.GetOrigin(), dtype=float)
    return origin_ras, np.array(image.GetSpacing(), dtype=float), _LPS_FROM_RAS @ direction_lps


def _image_ijk_to_ras(image: "sitk.Image") -> np.ndarray:
    origin, spacing, direction = image_geometry_ras(image)
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing
    matrix[:3, 3] = origin
    return matrix


# --------------------------------------------------------------------------- volumes

def volume_node_to_image(volume_node) -> "sitk.Image":
    """A SimpleITK image (LPS) with the voxels, geometry and pixel type of ``volume_node``.

    The voxels are copied: changing the image never changes the node. A parent linear
    transform is applied to the geometry (the image is where the volume is shown).
    """
    import SimpleITK as sitk

    _require(volume_node, "vtkMRMLScalarVolumeNode", "scalar volume node")
    name = _node_name(volume_node)
    image_data = volume_node.GetImageData()
    if image_data is None or image_data.GetNumberOfPoints() == 0:
        raise InputError("volume node has no voxels", node=name)
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"expected a scalar volume, got {image_data.GetNumberOfScalarComponents()} components "
                         "per voxel", node=name)
    from vtk.util import numpy_support

    shape = tuple(reversed(image_data.GetDimensions()))
    voxels = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(shape).copy()
    origin, spacing, direction = _split_ijk_to_ras(_world_ijk_to_ras(volume_node), name)
    image = sitk.GetImageFromArray(voxels)
    image.SetOrigin(tuple(_LPS_FROM_RAS @ origin))
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((_LPS_FROM_RAS @ direction).ravel()))
    return image


def image_to_volume_node(image: "sitk.Image", name: str, scene=None, labelmap: bool = False):
    """A new scalar (or label map) volume node holding ``image``; geometry and pixel type kept.

    ``image`` may also be a numpy array only if it is already a SimpleITK image; 2D images
    become single-slice volumes.
    """
    import SimpleITK as sitk

    scene = _scene(scene)
    if not isinstance(image, sitk.Image):
        raise InputError(f"expected a SimpleITK image, got {type(image).__name__}", node=name)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("only scalar images can become volume nodes", node=name)
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputError(f"expected a 2D or 3D image, got {image.GetDimension()}D", node=name)
    voxels = sitk.GetArrayFromImage(image)
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    _set_voxels(node, voxels)
    origin, spacing, direction = image_geometry_ras(image)
    node.SetOrigin(*origin)
    node.SetSpacing(*spacing)
    node.SetIJKToRASDirectionMatrix(_vtk_from_np_matrix(_embed3(direction)))
    node.CreateDefaultDisplayNodes()
    return node


def _embed3(matrix3: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = matrix3
    return matrix


def _set_voxels(volume_node, voxels: np.ndarray) -> None:
    """Deep-copy a (k, j, i) array into the node's image data, keeping the numpy dtype."""
    import vtk
    from vtk.util import numpy_support

    voxels = np.ascontiguousarray(voxels)
    if voxels.dtype == bool:
        voxels = voxels.astype(np.uint8)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(voxels.shape[2], voxels.shape[1], voxels.shape[0])
    scalars = numpy_support.numpy_to_vtk(voxels.ravel(), deep=True,
                                         array_type=numpy_support.get_vtk_array_type(voxels.dtype))
    image_data.GetPointData().SetScalars(scalars)
    volume_node.SetAndObserveImageData(image_data)


# --------------------------------------------------------------------------- segmentations

def segment_to_mask(segmentation_node, segment_id: str, reference_volume_node) -> "sitk.Image":
    """The segment as a uint8 0/1 SimpleITK image on the geometry of ``reference_volume_node``.

    The segmentation is not modified and nothing is left in the scene: the export goes through a
    temporary label map, and the colour table the export makes for the segmentation is removed.
    """
    import SimpleITK as sitk
    import vtk

    slicer = _slicer()
    _require(segmentation_node, "vtkMRMLSegmentationNode", "segmentation node")
    seg_name = _node_name(segmentation_node)
    if reference_volume_node is None:
        raise InputError("no reference volume given for the segment's geometry", node=seg_name)
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is None:
        by_name = segmentation.GetSegmentIdBySegmentName(segment_id)
        if by_name:
            segment_id = by_name
        else:
            known = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
            raise InputError(f"no segment with id or name '{segment_id}' (segments: {', '.join(known) or 'none'})",
                             node=seg_name)
    reference = volume_node_to_image(reference_volume_node)  # validates the reference too
    scene = segmentation_node.GetScene()
    colour_tables = _node_ids(scene, "vtkMRMLColorTableNode")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__rtresponse_export__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_volume_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        image_data = labelmap.GetImageData()
        if not ok or image_data is None or image_data.GetNumberOfPoints() == 0:
            voxels = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)
        else:
            from vtk.util import numpy_support

            shape = tuple(reversed(image_data.GetDimensions()))
            voxels = (numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(shape) > 0)
            voxels = voxels.astype(np.uint8)
    finally:
        _remove_node(scene, labelmap)
        # the export makes a colour table for the segmentation ("<name>_ColorTable"); remove it unless it is used
        referenced = _referenced_ids(scene)
        for node_id in _node_ids(scene, "vtkMRMLColorTableNode") - colour_tables - referenced:
            scene.RemoveNode(scene.GetNodeByID(node_id))
    if voxels.shape != sitk.GetArrayViewFromImage(reference).shape:
        raise InputError(f"exported segment '{segment_id}' has shape {voxels.shape}, expected the reference's "
                         f"{sitk.GetArrayViewFromImage(reference).shape}", node=seg_name)
    mask = sitk.GetImageFromArray(voxels)
    mask.CopyInformation(reference)
    return mask


def _node_ids(scene, class_name: str) -> set[str]:
    return {scene.GetNthNodeByClass(i, class_name).GetID() for i in range(scene.GetNumberOfNodesByClass(class_name))}


def _referenced_ids(scene) -> set[str]:
    """IDs of the nodes that some node of the scene refers to."""
    ids = set()
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        for r in range(node.GetNumberOfNodeReferenceRoles()):
            role = node.GetNthNodeReferenceRole(r)
            ids.update(node.GetNthNodeReferenceID(role, k) for k in range(node.GetNumberOfNodeReferences(role)))
    return ids


def _remove_node(scene, node) -> None:
    for i in range(node.GetNumberOfDisplayNodes()) if hasattr(node, "GetNumberOfDisplayNodes") else ():
        display = node.GetNthDisplayNode(i)
        if display is not None:
            scene.RemoveNode(display)
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    if storage is not None:
        scene.RemoveNode(storage)
    scene.RemoveNode(node)


def mask_to_segment(mask_image: "sitk.Image", segmentation_node, segment_name: str,
                    reference_volume_node=None, color: Sequence[float] | None = None) -> str:
    """Add ``mask_image`` (non-zero = inside) as a new segment; returns the new segment's id.

    With ``reference_volume_node`` the segmentation's reference geometry is set from it when
    the segmentation has none yet, so later edits happen on that volume's grid.
    """
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    slicer = _slicer()
    _require(segmentation_node, "vtkMRMLSegmentationNode", "segmentation node")
    if not isinstance(mask_image, sitk.Image) or mask_image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("mask must be a scalar SimpleITK image", node=_node_name(segmentation_node))
    if mask_image.GetDimension() == 2:
        mask_image = sitk.JoinSeries(mask_image)
    voxels = (sitk.GetArrayViewFromImage(mask_image) != 0).astype(np.uint8)
    if reference_volume_node is not None and not segmentation_node.GetNodeReference(
            slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()):
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    oriented = slicer.vtkOrientedImageData()
    oriented.SetDimensions(voxels.shape[2], voxels.shape[1], voxels.shape[0])
    oriented.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels.ravel(), deep=True,
                                                                  array_type=vtk.VTK_UNSIGNED_CHAR))
    oriented.SetImageToWorldMatrix(_vtk_from_np_matrix(_image_ijk_to_ras(mask_image)))
    if color is None:
        segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(oriented, segment_name)
    else:
        segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(oriented, segment_name,
                                                                                 list(color)[:3])
    if not segment_id:
        raise InputError(f"could not add segment '{segment_name}'", node=_node_name(segmentation_node))
    return segment_id


def new_segmentation_node(name: str, reference_volume_node=None, scene=None):
    """A new, empty segmentation node (with display node), optionally on a volume's grid."""
    scene = _scene(scene)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    return node


def segment_names(segmentation_node) -> dict[str, str]:
    """{segment id: segment name} in display order."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    return {segment_id: segmentation.GetSegment(segment_id).GetName() for segment_id in ids}


# --------------------------------------------------------------------------- tables

def dataframe_to_table_node(df: "pd.DataFrame", name: str, scene=None):
    """A new table node with ``df``'s columns; the index and dtypes are kept for the way back.

    Numbers become double/integer columns (NaN kept), booleans integer 0/1, everything
    else text, where a missing value is an empty cell. ``df.attrs["provenance"]`` (how a feature table was
    made) is kept as the node attribute ``rtresponse.provenance`` (JSON).
    """
    scene = _scene(scene)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    try:
        return update_table_node(node, df)
    except InputError:
        scene.RemoveNode(node)
        raise


def update_table_node(node, df: "pd.DataFrame"):
    """Replace a table node's rows and columns by ``df``'s (as :func:`dataframe_to_table_node`); returns the node.
    Views and plot series of the node follow (a live training curve grows this way)."""
    import pandas as pd
    import vtk

    name = node.GetName()
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}", node=name)
    frame = df
    index_names: list[str] = []
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        index_names = [n if n is not None else f"level_{i}" if df.index.nlevels > 1 else "index"
                       for i, n in enumerate(df.index.names)]
        frame = df.reset_index()
        frame.columns = index_names + [str(c) for c in df.columns]
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise InputError("column names are not unique", node=name)
    table = vtk.vtkTable()
    dtypes, missing = {}, {}
    for column, values in zip(names, (frame.iloc[:, i] for i in range(frame.shape[1]))):
        dtypes[column] = str(values.dtype)
        table.AddColumn(_vtk_column(column, values))
        if table.GetColumn(table.GetNumberOfColumns() - 1).IsA("vtkStringArray"):
            # a text cell is '' both when missing and when empty: remember which were missing
            missing[column] = [i for i, value in enumerate(values.tolist()) if _is_missing(value)]
    node.SetAndObserveTable(table)
    node.SetAttribute(_INDEX_ATTRIBUTE, json.dumps(index_names))
    node.SetAttribute(_DTYPES_ATTRIBUTE, json.dumps(dtypes))
    node.SetAttribute(_MISSING_ATTRIBUTE, json.dumps(missing))
    if df.attrs.get("provenance"):
        node.SetAttribute(PROVENANCE_ATTRIBUTE, json.dumps(df.attrs["provenance"], default=str))
    return node


def _vtk_column(column: str, values: "pd.Series"):
    import pandas as pd
    import vtk
    from vtk.util import numpy_support

    if pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
        array = _as_int_array(values.to_numpy(dtype=np.int64))
    elif pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any():
        array = _as_int_array(values.to_numpy(dtype=np.int64))
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        array = numpy_support.numpy_to_vtk(values.to_numpy(dtype=np.float64, na_value=np.nan), deep=True,
                                           array_type=vtk.VTK_DOUBLE)
    else:
        array = vtk.vtkStringArray()
        array.SetNumberOfValues(len(values))
        for i, value in enumerate(values.tolist()):
            array.SetValue(i, "" if _is_missing(value) else str(value))
    array.SetName(column)
    return array


def _as_int_array(values: np.ndarray):
    import vtk
    from vtk.util import numpy_support

    return numpy_support.numpy_to_vtk(values, deep=True, array_type=vtk.VTK_LONG_LONG)


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT, pd.NA-like
    except (TypeError, ValueError):
        return False


def table_node_to_dataframe(table_node) -> "pd.DataFrame":
    """A DataFrame with the table's columns; restores index and dtypes written by rtresponse.

    Tables made elsewhere (in Slicer's table module, say) come back with a column per
    array: numbers as numbers, text as text, empty text cells as missing.
    """
    import pandas as pd
    from vtk.util import numpy_support

    _require(table_node, "vtkMRMLTableNode", "table node")
    table = table_node.GetTable()
    missing = table_node.GetAttribute(_MISSING_ATTRIBUTE)
    missing = None if missing is None else json.loads(missing)  # None: not written by rtresponse
    columns = {}
    for i in range(table.GetNumberOfColumns()):
        array = table.GetColumn(i)
        name = array.GetName() or f"column_{i}"
        if hasattr(array, "GetNumberOfComponents") and array.IsNumeric():
            columns[name] = numpy_support.vtk_to_numpy(array).copy()
        else:
            values = [array.GetValue(r) for r in range(array.GetNumberOfValues())]
            if missing is not None and name in missing:
                gaps = set(missing[name])
                values = [None if r in gaps else v for r, v in enumerate(values)]
            else:
                values = [None if v == "" else v for v in values]
            columns[name] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(columns)
    dtypes = json.loads(table_node.GetAttribute(_DTYPES_ATTRIBUTE) or "{}")
    for column, dtype in dtypes.items():
        if column in frame.columns and str(frame[column].dtype) != dtype:
            frame[column] = _restore_dtype(frame[column], dtype)
    index_names = json.loads(table_node.GetAttribute(_INDEX_ATTRIBUTE) or "[]")
    if index_names:
        frame = frame.set_index(index_names)
        if len(index_names) == 1 and index_names[0] == "index":
            frame.index.name = None
    recorded = table_node.GetAttribute(PROVENANCE_ATTRIBUTE)
    if recorded:
        frame.attrs["provenance"] = json.loads(recorded)
    return frame


def _restore_dtype(values: "pd.Series", dtype: str) -> "pd.Series":
    import pandas as pd

    if dtype == "bool":
        return values.astype(bool)
    if dtype in ("str", "string"):
        return values.astype(dtype)
    if dtype == "object":
        return values.astype(object).where(values.notna(), None)
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values if dtype != "category" else pd.Categorical(values)


# --------------------------------------------------------------------------- plots

def plot_xy(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], name: str, scene=None,
            x_title: str = "x", y_title: str = "y", line: bool = True):
    """A plot chart node with one line per ``{series name: (x, y)}``; returns the chart node.

    The points of every series go into one table node (``<name> points``: columns ``<series> <x_title>`` and
    ``<series> <y_title>``), so a chart adds one table to the scene, saved with it and exportable. A table's columns
    have one length: a shorter series repeats its last point, which draws nothing more on a line.
    """
    import pandas as pd

    slicer = _slicer()
    scene = _scene(scene)
    curves = {}
    for series_name, (x, y) in series.items():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.shape != y.shape or x.ndim != 1 or not len(x):
            raise InputError(f"x and y of series '{series_name}' differ in shape or are empty ({x.shape} vs "
                             f"{y.shape})", node=name)
        curves[str(series_name)] = (x, y)
    rows = max((len(x) for x, _ in curves.values()), default=0)
    columns = {}
    for series_name, (x, y) in curves.items():
        padding = rows - len(x)
        columns[f"{series_name} {x_title}"] = np.concatenate([x, np.repeat(x[-1:], padding)])
        columns[f"{series_name} {y_title}"] = np.concatenate([y, np.repeat(y[-1:], padding)])
    table = dataframe_to_table_node(pd.DataFrame(columns), f"{name} points", scene)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for series_name in curves:
        plot = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} {series_name}")
        plot.SetAndObserveTableNodeID(table.GetID())
        plot.SetXColumnName(f"{series_name} {x_title}")
        plot.SetYColumnName(f"{series_name} {y_title}")
        plot.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        if line:
            plot.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        else:
            plot.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
        chart.AddAndObservePlotSeriesNodeID(plot.GetID())
    return chart


def plot_columns(table_node, x_column: str, y_columns: Sequence[str], name: str, chart=None, x_title: str = "",
                 y_title: str = ""):
    """A line per column of ``y_columns`` against ``x_column``, all from the one table node; returns the chart node.

    Given an existing ``chart``, only the columns it does not plot yet are added (a table that grows new
    columns, such as a training curve whose validation starts later)."""
    slicer = _slicer()
    scene = table_node.GetScene()
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
        chart.SetTitle(name)
        chart.SetXAxisTitle(x_title or x_column)
        chart.SetYAxisTitle(y_title)
    plotted = {chart.GetNthPlotSeriesNode(i).GetYColumnName() for i in range(chart.GetNumberOfPlotSeriesNodes())}
    for column in y_columns:
        if column in plotted:
            continue
        plot = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} {column}")
        plot.SetAndObserveTableNodeID(table_node.GetID())
        plot.SetXColumnName(x_column)
        plot.SetYColumnName(column)
        plot.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        plot.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        plot.SetUniqueColor()
        chart.AddAndObservePlotSeriesNodeID(plot.GetID())
    return chart


# --------------------------------------------------------------------------- saving

def save_scene(path: str | os.PathLike, scene=None) -> Path:
    """Write the scene and its data as a Medical Reality Bundle (``.mrb``), atomically."""
    scene = _scene(scene)
    path = Path(path).absolute()  # WriteToMRB refuses relative paths
    if path.suffix.lower() != ".mrb":
        raise InputError("scene bundles must end in .mrb", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # WriteToMRB names the bundle's inner folder after the file, so write the real name
    # inside a private folder beside the target, then move it into place in one step.
    staging = Path(tempfile.mkdtemp(prefix=".rtresponse-mrb-", dir=path.parent))
    try:
        staged = staging / path.name
        if not scene.WriteToMRB(str(staged)) or not staged.is_file():
            raise InputError("could not write the scene bundle", path=str(path))
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def open_scene_bundle(path: str | os.PathLike, scene=None):
    """Load an ``.mrb`` into ``scene`` (a new scene by default) outside the Slicer application.

    slicer-core's ``ReadFromMRB`` needs the application, so the bundle is unpacked into a
    temporary folder and its ``.mrml`` imported; data files are read while it exists. A file
    that is not a zip, a zip bomb, or members named outside the folder (absolute, ``..``) are
    refused before anything is written.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("scene bundle not found", path=str(path))
    check_zip(path, "a scene bundle")
    scene = new_scene() if scene is None else scene
    with tempfile.TemporaryDirectory(prefix="rtresponse-mrb-") as folder:
        safe_extract(path, folder, "a scene bundle")
        mrml_files = sorted(Path(folder).rglob("*.mrml"))
        if not mrml_files:
            raise InputError("no .mrml file inside the bundle", path=str(path))
        scene.SetURL(str(mrml_files[0]))
        if not scene.Import():
            raise InputError("could not import the scene in the bundle", path=str(path))
    return scene


def nodes_by_class(scene, class_name: str) -> list:
    """All nodes of one MRML class in the scene, in scene order."""
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]

