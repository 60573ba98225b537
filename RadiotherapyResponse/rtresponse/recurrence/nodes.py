"""Recurrence predictions in the MRML scene: probability map, dose-painting segment, baselines, metrics.

What the RecurrenceVolume module calls. Every output is a new node; the inputs are only read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..evaluation.segmentation import case_metrics
from .baselines import PAPER_FRACTION, pet_values_warning, suvmax_threshold
from .preprocess import BOX_XYZ, pet_on_ct, prediction_to_image, prepare
from .training import predict_boxes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

PROBABILITY_COLOR_NODE = "vtkMRMLColorTableNodeFileColdToHotRainbow.txt"
PREDICTED = "Predicted relapse"


@dataclass
class RecurrenceNodes:
    probability: object  # vtkMRMLScalarVolumeNode, values 0-1 on the CT grid
    segmentation: object  # vtkMRMLSegmentationNode: predicted relapse (thresholded) and the baselines
    segment_ids: dict = field(default_factory=dict)  # method -> segment id
    metrics: object | None = None  # vtkMRMLTableNode when a relapse segment was given
    warnings: list = field(default_factory=list)  # e.g. the PET looks like Bq/mL (baselines.pet_values_warning)


def probability_image(ct: "sitk.Image", pet: "sitk.Image", gtv: "sitk.Image", network, device: str = "cpu",
                      box_xyz=BOX_XYZ, amp: bool = False) -> "sitk.Image":
    """The network's relapse probability on exactly the CT's grid (0 outside the box)."""
    sample = prepare(ct, pet, gtv, box_xyz=box_xyz)
    [probability] = predict_boxes(network, [sample], device, amp)
    return prediction_to_image(probability.astype(np.float32), sample, ct)


def _mask_of(segmentation_node, segment_id, volume_node, role):
    from .. import mrml

    if segmentation_node is None or not segment_id:
        return None
    try:
        return mrml.segment_to_mask(segmentation_node, segment_id, volume_node)
    except InputError as error:
        raise InputError(f"{role} segment '{segment_id}': {error.problem}", node=segmentation_node.GetName()) from None


def _thresholded(probability: "sitk.Image", threshold: float) -> "sitk.Image":
    import SimpleITK as sitk

    return sitk.Cast(probability >= float(threshold), sitk.sitkUInt8)


def set_threshold(nodes: RecurrenceNodes, ct_node, threshold: float) -> str:
    """Replace the predicted-relapse segment by the probability map at ``threshold`` (the dose-painting slider)."""
    from .. import mrml

    if not 0 < threshold < 1:
        raise InputError(f"threshold must be between 0 and 1, got {threshold}")
    mask = _thresholded(mrml.volume_node_to_image(nodes.probability), threshold)
    old = nodes.segment_ids.get(PREDICTED)
    if old:
        nodes.segmentation.GetSegmentation().RemoveSegment(old)
    nodes.segment_ids[PREDICTED] = mrml.mask_to_segment(mask, nodes.segmentation, f"{PREDICTED} (p >= {threshold:.2f})",
                                                        ct_node, color=(1.0, 0.2, 0.2))
    return nodes.segment_ids[PREDICTED]


def predict_in_scene(ct_node, pet_node, gtv_segmentation, gtv_segment, network=None, device: str = "cpu",
                     threshold: float = 0.5, fraction: float = PAPER_FRACTION, brain_segmentation=None,
                     brain_segment: str | None = None, relapse_segmentation=None, relapse_segment: str | None = None,
                     box_xyz=BOX_XYZ, name: str | None = None, scene=None) -> RecurrenceNodes:
    """Probability map (volume node over the CT), a segmentation with the predicted relapse at ``threshold``,
    the SUVmax-threshold (``fraction``) and GTV baselines, and — given a relapse segment — a metrics table.

    ``network`` None gives only the baselines' segments (no probability map needs a model).
    """
    from .. import mrml

    probability = None
    if network is not None:
        ct = mrml.volume_node_to_image(ct_node)
        gtv = _mask_of(gtv_segmentation, gtv_segment, ct_node, "GTV")
        if gtv is None:
            raise InputError("a GTV segment is needed (the box is centred on it)")
        pet = pet_on_ct(mrml.volume_node_to_image(pet_node), ct)
        probability = probability_image(ct, pet, gtv, network, device, box_xyz)
    return outputs_in_scene(ct_node, pet_node, gtv_segmentation, gtv_segment, probability, threshold, fraction,
                            brain_segmentation, brain_segment, relapse_segmentation, relapse_segment, name, scene)


def outputs_in_scene(ct_node, pet_node, gtv_segmentation, gtv_segment, probability: "sitk.Image | None" = None,
                     threshold: float = 0.5, fraction: float = PAPER_FRACTION, brain_segmentation=None,
                     brain_segment: str | None = None, relapse_segmentation=None, relapse_segment: str | None = None,
                     name: str | None = None, scene=None) -> RecurrenceNodes:
    """The nodes of :func:`predict_in_scene` from a probability map already made on the CT's grid (by a
    ``recurrence predict`` job; None: the baselines only). Thresholds, baselines and metrics take well under a
    second for one patient."""
    from .. import mrml

    scene = scene or ct_node.GetScene()
    name = name or f"{ct_node.GetName()} recurrence"
    ct = mrml.volume_node_to_image(ct_node)
    pet = pet_on_ct(mrml.volume_node_to_image(pet_node), ct)
    gtv = _mask_of(gtv_segmentation, gtv_segment, ct_node, "GTV")
    if gtv is None:
        raise InputError("a GTV segment is needed (the box is centred on it)")
    brain = _mask_of(brain_segmentation, brain_segment, ct_node, "brain")
    relapse = _mask_of(relapse_segmentation, relapse_segment, ct_node, "relapse")
    if probability is not None and (probability.GetSize() != ct.GetSize() or
                                    not np.allclose(probability.GetOrigin(), ct.GetOrigin(), atol=1e-3) or
                                    not np.allclose(probability.GetSpacing(), ct.GetSpacing(), atol=1e-5)):
        raise InputError("the probability map is not on the CT's grid", node=ct_node.GetName())
    segmentation = mrml.new_segmentation_node(f"{name} segments", ct_node, scene=scene)
    nodes = RecurrenceNodes(probability=None, segmentation=segmentation)
    predictions = {}
    if probability is not None:
        nodes.probability = mrml.image_to_volume_node(probability, f"{name} probability", scene=scene)
        _show_probability(nodes.probability)
        set_threshold(nodes, ct_node, threshold)
        predictions["CNN"] = _thresholded(probability, threshold)
    warning = pet_values_warning(pet, f"PET node '{pet_node.GetName()}'")
    if warning:
        nodes.warnings.append(warning)
    suv = suvmax_threshold(pet, gtv, fraction, brain)
    label = f"SUVmax {fraction:.0%}"
    nodes.segment_ids[label] = mrml.mask_to_segment(suv, segmentation, label, ct_node, color=(1.0, 0.8, 0.1))
    nodes.segment_ids["GTV"] = mrml.mask_to_segment(gtv, segmentation, "GTV (baseline)", ct_node, color=(0.2, 0.6, 1.0))
    predictions[label], predictions["GTV"] = suv, gtv
    if relapse is not None:
        nodes.metrics = mrml.dataframe_to_table_node(metrics_table(predictions, relapse), f"{name} metrics", scene=scene)
    return nodes


def metrics_table(predictions: dict, relapse: "sitk.Image") -> "pd.DataFrame":
    """One row per method: Dice, recall, precision, volume (cc), points of origin included."""
    import pandas as pd
    import SimpleITK as sitk

    reference = sitk.GetArrayFromImage(relapse) != 0
    spacing = relapse.GetSpacing()[::-1]
    rows = {method: case_metrics(sitk.GetArrayFromImage(mask) != 0, reference, spacing)
            for method, mask in predictions.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def _show_probability(node) -> None:
    display = node.GetDisplayNode()
    if display is None:
        return
    color = node.GetScene().GetNodeByID(PROBABILITY_COLOR_NODE)
    if color is not None:
        display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetLowerThreshold(0.05)
    display.ApplyThresholdOn()
