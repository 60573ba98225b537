"""Segment inputs of a module: the embedded segment editor, the segments table, what Run measures, first guesses."""

from __future__ import annotations

import re


def setUpSegmentEditor(editor, segmentEditorNode) -> None:
    """An embedded segment editor driven by the module's inputs, with its own parameter node (set before the scene,
    see qMRMLSegmentEditorWidget.h) and a short undo history."""
    editor.setMaximumNumberOfUndoStates(10)
    editor.setSegmentationNodeSelectorVisible(False)
    editor.setSourceVolumeNodeSelectorVisible(False)
    editor.setMRMLSegmentEditorNode(segmentEditorNode)


def showSegmentation(tableView, editor, segmentation, volume) -> None:
    """Show ``segmentation`` in the segments table and the editor (on ``volume``), touching them only on a change."""
    if tableView.segmentationNode() is not segmentation:
        tableView.setSegmentationNode(segmentation)
    if editor.segmentationNode() is not segmentation:
        editor.setSegmentationNode(segmentation)
    if segmentation and editor.sourceVolumeNode() is not volume:
        editor.setSourceVolumeNode(volume)


def segmentIdsToMeasure(tableView, segmentation) -> list:
    """The segments selected in the table; all segments when none is selected; [] without a segmentation."""
    if not segmentation:
        return []
    selected = list(tableView.selectedSegmentIDs())
    segments = segmentation.GetSegmentation()
    return selected or [segments.GetNthSegmentID(i) for i in range(segments.GetNumberOfSegments())]


class SegmentsObserver:
    """Calls ``callback()`` when a segment of the followed segmentation is added, removed or changed (renamed, edited
    in the editor): what Run would measure has changed."""

    def __init__(self, callback):
        self.callback, self.segmentation, self.tags = callback, None, []

    def follow(self, segmentation) -> None:
        if segmentation is self.segmentation:
            return
        for tag in self.tags:
            self.segmentation.RemoveObserver(tag)
        self.segmentation, self.tags = segmentation, []
        if segmentation is not None:
            import slicer

            for event in (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                          slicer.vtkSegmentation.SegmentModified):
                self.tags.append(segmentation.AddObserver(event, lambda *unused: self.callback()))


def guessInputs(parameterNode, scene, volume: str = "inputVolume", segmentation: str = "inputSegmentation") -> None:
    """Fill empty inputs with the scene's first (non-label-map) volume and first segmentation."""
    if not getattr(parameterNode, volume):
        volumes = [node for node in _nodes(scene, "vtkMRMLScalarVolumeNode")
                   if not node.IsA("vtkMRMLLabelMapVolumeNode")]
        if volumes:
            setattr(parameterNode, volume, volumes[0])
    if not getattr(parameterNode, segmentation):
        found = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        if found:
            setattr(parameterNode, segmentation, found)


def named(node, *words, wordEnd: bool = True) -> bool:
    """The node's name holds one of ``words`` as a word of its own ("PET", "pre-CT", not "spectrum"); with
    ``wordEnd`` False, also as the start of a word ("T1w", "MRI")."""
    end = "([^a-z]|$)" if wordEnd else ""
    return any(re.search(rf"(^|[^a-z]){word}{end}", node.GetName().lower()) for word in words)


def inputVolumes(scene, outputAttribute: str) -> list:
    """The scene's scalar volumes that are not label maps nor outputs of the module (``outputAttribute``)."""
    return [v for v in _nodes(scene, "vtkMRMLScalarVolumeNode")
            if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(outputAttribute)]


def findSegment(scene, words, outputAttribute: str):
    """(segmentation, segment id) of the first segment whose name contains one of ``words``; (None, None)."""
    for segmentation in _nodes(scene, "vtkMRMLSegmentationNode"):
        if segmentation.GetAttribute(outputAttribute):
            continue
        segments = segmentation.GetSegmentation()
        for k in range(segments.GetNumberOfSegments()):
            if any(word in segments.GetNthSegment(k).GetName().lower() for word in words):
                return segmentation, segments.GetNthSegmentID(k)
    return None, None


def _nodes(scene, className: str) -> list:
    return [scene.GetNthNodeByClass(i, className) for i in range(scene.GetNumberOfNodesByClass(className))]


def segmentEditorNode(scene, singletonTag: str):
    """A module's own segment editor parameter node (not the Segment Editor module's), made on first use."""
    import slicer

    node = scene.GetSingletonNode(singletonTag, "vtkMRMLSegmentEditorNode")
    if node is None:
        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag(singletonTag)
        node = scene.AddNode(node)
    return node
