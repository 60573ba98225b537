"""Deep features and Grad-CAM maps on MRML nodes (what the TumorFeatures module calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from ...errors import InputError
from ...settings import resolve_device
from .catalogue import PAPER_DEFAULT, model_spec
from .extraction import (STATUS, WEIGHTS, Cancelled, device_record, extract, feature_names, network_record,
                         weights_column)
from .gradcam import Target, gradcam
from .networks import load_network, weights_provenance

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

HEAT_COLOR_NODE = "vtkMRMLColorTableNodeFileColdToHotRainbow.txt"  # one of Slicer's default colour tables
GRADCAM_MODEL_ATTRIBUTE = "RadiotherapyResponse.GradCAM.model"
GRADCAM_SEGMENT_ATTRIBUTE = "RadiotherapyResponse.GradCAM.segment"


def extract_segments(volume_node, segmentation_node, segment_ids: Sequence[str], model: str = PAPER_DEFAULT,
                     weights="imagenet", device: str = "auto", progress: Callable[[int, int], None] | None = None,
                     should_cancel: Callable[[], bool] | None = None, **options) -> "pd.DataFrame":
    """Raw (not z-scored) deep features, one row per segment (index: segment names) plus ``status``.

    Z-scoring needs a cohort: apply :func:`~.extraction.zscore` with a cohort's statistics.
    ``options`` are those of :func:`~.extraction.extract`. A failing segment keeps its row.
    """
    from ... import provenance
    from ..segments import measure_segments

    device = resolve_device(device)
    # Weights problems are the same for every segment: fail once, with their message, before any segment.
    load_network(model, weights, options.get("seed", 0), options.get("weights_folder"), device)
    weights_record = weights_provenance(model, weights, options.get("seed", 0), options.get("weights_folder"))
    columns = feature_names(model)
    frame = measure_segments(
        volume_node, segmentation_node, segment_ids,
        lambda image, mask: dict(zip(columns, extract(image, mask, model, weights, device, **options))),
        Cancelled("deep feature extraction cancelled"), progress, should_cancel, columns)
    frame.insert(frame.columns.get_loc(STATUS), WEIGHTS, weights_column(weights_record))
    preprocessing = {name: options[name] for name in ("size_mm", "level", "width", "context", "top_k")
                     if name in options}
    frame.attrs["provenance"] = provenance.record(
        settings={"volume": volume_node.GetName(), "segmentation": segmentation_node.GetName(),
                  "segments": list(segment_ids), "model": model_spec(model).name, "weights": weights,
                  "device": device, **options},
        kind="deep2d", network=network_record(model_spec(model)), weights=weights_record,
        preprocessing=preprocessing or "defaults of extract()", device=device_record(device), zscore="none")
    return frame


def gradcam_volume_node(volume_node, segmentation_node, segment_id: str, model: str = PAPER_DEFAULT,
                        weights="imagenet", target: Target = None, statistics=None, device: str = "auto",
                        name: str | None = None, scene=None, **options):
    """A new scalar volume node: the Grad-CAM of the segment's max-area slice on the volume's grid, shown as a heat
    map (:func:`show_as_heat_map`)."""
    from ... import mrml

    image = mrml.volume_node_to_image(volume_node)
    mask = mrml.segment_to_mask(segmentation_node, segment_id, volume_node)
    try:
        heat = gradcam(image, mask, model, weights, target, statistics, device, **options)
    except InputError as error:
        raise InputError(f"segment '{segment_id}': {error.problem}", node=segmentation_node.GetName()) from None
    segment = mrml.segment_names(segmentation_node).get(segment_id, segment_id)
    name = name or gradcam_node_name(volume_node.GetName(), model, segment)
    return show_as_heat_map(mrml.image_to_volume_node(heat, name, scene=scene or volume_node.GetScene()), model,
                            segment)


def gradcam_node_name(volume_name: str, model: str, segment: str) -> str:
    return f"{volume_name} Grad-CAM {model_spec(model).name} {segment}"


def show_as_heat_map(node, model: str, segment: str):
    """A Grad-CAM volume node (values in [0, 1]) shown with a cold-to-hot colour table where the scene has it
    (Slicer's default colours), window 0..1, values under 0.05 hidden (the CT stays visible around the map), and
    attributes naming the network and the segment; returns the node."""
    display = node.GetDisplayNode()
    if display is not None:
        color = node.GetScene().GetNodeByID(HEAT_COLOR_NODE)
        if color is not None:
            display.SetAndObserveColorNodeID(color.GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.SetLowerThreshold(0.05)  # keep the CT visible around the map
        display.ApplyThresholdOn()
    node.SetAttribute(GRADCAM_MODEL_ATTRIBUTE, model_spec(model).name)
    node.SetAttribute(GRADCAM_SEGMENT_ATTRIBUTE, segment)
    return node


__all__ = ["GRADCAM_MODEL_ATTRIBUTE", "GRADCAM_SEGMENT_ATTRIBUTE", "HEAT_COLOR_NODE", "extract_segments",
           "gradcam_node_name", "gradcam_volume_node", "show_as_heat_map"]
