"""Small Slicer helpers every analysis module uses: the hub's settings, showing a table or a chart, the device in
words. Needs the application (except :func:`deviceText`)."""

from __future__ import annotations


def hubSettings():
    """Device, weights folder, workers and models folder: the Radiotherapy Response module's settings (read each
    time: they may change while a module is open)."""
    import RadiotherapyResponse

    return RadiotherapyResponse.RadiotherapyResponseLogic().settings()


def showTable(tableNode) -> None:
    """Show the table in a layout with a table view (does nothing without the application's layout)."""
    import slicer

    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return
    layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    applicationLogic = slicer.app.applicationLogic()
    applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
    applicationLogic.PropagateTableSelection()


def showChart(chartNode) -> None:
    """Show the plot chart in a layout with a plot view (does nothing without the application's layout)."""
    import slicer

    if slicer.app.layoutManager() is None:
        return
    slicer.modules.plots.logic().ShowChartInLayout(chartNode)


def deviceText(device: str) -> str:
    """The hub's device setting in words, for a module's device label."""
    if device == "auto":
        return "auto: CUDA when PyTorch sees a GPU, else CPU (Radiotherapy Response settings)"
    return f"{device} (Radiotherapy Response settings)"


def jumpSlicesToNonZero(volumeNode) -> None:
    """Move every slice view (without panning) to the centre of the volume's non-zero voxels (a map that fills one
    slice, such as a Grad-CAM map, is then in view)."""
    import numpy as np
    import slicer
    import vtk

    kji = np.argwhere(slicer.util.arrayFromVolume(volumeNode) > 0)
    if not len(kji):
        return
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    ras = ijkToRas.MultiplyPoint([float(v) for v in kji.mean(axis=0)[::-1]] + [1.0])[:3]
    for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
        sliceNode.JumpSliceByOffsetting(*ras)
