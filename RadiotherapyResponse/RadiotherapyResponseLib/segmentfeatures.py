"""Tumor Features in process, for scripts (the Logic's ``run`` and ``runDeep``): segments measured by this Python.

The module's widget never calls these (it runs the same extraction as a background job, see :mod:`.featurejobs`);
a script in the Python console gets the table directly, with ``progress`` and ``shouldCancel`` callbacks. The
tables are the same either way: names, attributes, index ``segment``, ``status``.
"""

from __future__ import annotations

from typing import Mapping

from . import featurejobs


def segmentIdsOrAll(volumeNode, segmentationNode, segmentIds) -> list:
    """``segmentIds`` (IDs or names), or every segment when None or empty; refuses missing inputs."""
    from rtresponse import mrml
    from rtresponse.errors import InputError

    if volumeNode is None or segmentationNode is None:
        raise InputError("no volume selected" if volumeNode is None else "no segmentation selected")
    segmentIds = list(segmentIds or mrml.segment_names(segmentationNode))
    if not segmentIds:
        raise InputError("the segmentation has no segments", node=segmentationNode.GetName())
    return segmentIds


def tableNode(frame, volumeNode, name: str, attributes: Mapping[str, str]):
    """``frame`` as a new table node in the volume's scene, named ``name`` (made unique), with ``attributes``."""
    from rtresponse import mrml

    scene = volumeNode.GetScene()
    table = mrml.dataframe_to_table_node(frame, scene.GenerateUniqueName(name), scene=scene)
    for key, value in attributes.items():
        table.SetAttribute(key, value)
    return table


def measure(volumeNode, segmentationNode, segmentIds, settings, tableName=None, progress=None, shouldCancel=None):
    """Handcrafted features of segments (IDs or names; None: all) on a volume, in a new table node (rows: segments,
    columns: features, and ``status``: "ok" or why a segment could not be measured). ``settings``: a preset, a
    PyRadiomics parameter file or dict. ``progress(done, total)`` after each segment; ``shouldCancel()`` True raises
    ``rtresponse.features.handcrafted.Cancelled`` (no table). Named "<volume> features (<preset>)"."""
    from rtresponse.features import handcrafted

    segmentIds = segmentIdsOrAll(volumeNode, segmentationNode, segmentIds)
    handcrafted.load_settings(settings)  # a bad preset or parameter file fails here, not once per segment
    frame = handcrafted.extract_segments(volumeNode, segmentationNode, segmentIds, settings, progress=progress,
                                         should_cancel=shouldCancel)
    return tableNode(frame, volumeNode, tableName or featurejobs.handcraftedTableName(volumeNode.GetName(), settings),
                     featurejobs.handcraftedAttributes(volumeNode.GetName(), segmentationNode.GetName(), settings))


def measureDeep(volumeNode, segmentationNode, segmentIds, model, weights, settings, tableName=None, progress=None,
                shouldCancel=None):
    """Raw deep features (1000 columns, ``weights`` and ``status``) of segments, as :func:`measure`. ``model``: one of
    ``rtresponse.features.deep2d.MODELS``; ``weights``: "imagenet" (from ``settings.weights_folder``), a file, or None
    (random, testing only: the table name says "(random)"); ``settings``: the hub's (device, weights folder).
    Missing ImageNet weights raise ``deep2d.WeightsNotFound`` before any segment is measured."""
    from rtresponse.features import deep2d

    segmentIds = segmentIdsOrAll(volumeNode, segmentationNode, segmentIds)
    frame = deep2d.extract_segments(volumeNode, segmentationNode, segmentIds, model=model, weights=weights,
                                    device=settings.device, progress=progress, should_cancel=shouldCancel,
                                    weights_folder=settings.weights_folder)
    return tableNode(frame, volumeNode, tableName or featurejobs.deepTableName(volumeNode.GetName(), model, weights),
                     featurejobs.deepAttributes(volumeNode.GetName(), segmentationNode.GetName(), model, weights))


def showActivationMap(volumeNode, segmentationNode, segmentId, model, weights, settings):
    """A new volume with the Grad-CAM map of a segment's largest slice, shown over the volume; returns it. In process,
    for scripts: on 2 CPU cores ~2 s with resnet18 (7 s the first time), ~25 s with inception_resnet_v2, during which
    Slicer waits (the module runs ``rtresponse gradcam`` as a job instead, see :mod:`.gradcamjob`)."""
    import slicer
    from rtresponse.features import deep2d

    from .slicerutils import jumpSlicesToNonZero

    heat = deep2d.gradcam_volume_node(volumeNode, segmentationNode, segmentId, model=model, weights=weights,
                                      device=settings.device, weights_folder=settings.weights_folder)
    slicer.util.setSliceViewerLayers(background=volumeNode, foreground=heat, foregroundOpacity=0.5)
    jumpSlicesToNonZero(heat)  # the map fills one slice: show it
    return heat
