"""Putting a cohort patient into the scene: volumes, one segmentation, a clinical table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..errors import InputError
from .nodes import _scene, dataframe_to_table_node, image_to_volume_node, mask_to_segment, new_segmentation_node

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort import Cohort

# Slicer's default colours for the structures we know; others get the segmentation's defaults.
SEGMENT_COLORS = {
    "GTVp": (0.85, 0.2, 0.2), "GTVn": (0.2, 0.6, 0.9), "GTVp_boost": (0.95, 0.75, 0.1),
    "relapse": (0.6, 0.3, 0.9), "tumour": (0.85, 0.2, 0.2),
}


def load_patient(cohort: "Cohort", patient_id: str, scene=None, images: Sequence[str] | None = None,
                 masks: Sequence[str] | None = None) -> dict:
    """New nodes for one patient; returns ``{"volumes": {name: node}, "segmentation": node | None,
    "clinical": table node}``.

    Node names start with the patient id (``P001 CT``). Masks become segments (named as in
    the manifest) of one segmentation on the grid of the patient's first image. Every file is
    read before any node is made, so a bad file leaves the scene untouched.
    """
    import pandas as pd

    scene = _scene(scene)
    patient = cohort.patient(patient_id)
    image_names = [n for n in (images or cohort.image_names) if n in patient.images]
    mask_names = [n for n in (masks or cohort.mask_names) if n in patient.masks]
    if images and not image_names:
        raise InputError(f"none of the images {list(images)} is given", patient=patient_id)
    loaded_images = {name: cohort.read_image(patient_id, name) for name in image_names}
    loaded_masks = {name: cohort.read_mask(patient_id, name) for name in mask_names}

    volumes = {name: image_to_volume_node(image, f"{patient_id} {name}", scene)
               for name, image in loaded_images.items()}
    segmentation = None
    if loaded_masks:
        reference = next(iter(volumes.values()), None)
        segmentation = new_segmentation_node(f"{patient_id} contours", reference, scene)
        for name, mask in loaded_masks.items():
            mask_to_segment(mask, segmentation, name, reference, SEGMENT_COLORS.get(name))
    row = cohort.table.loc[[patient_id], [c for c in cohort.table.columns if c.startswith(("clin_", "outcome_"))]]
    clinical_values = pd.concat([cohort.clinical().loc[[patient_id]].add_prefix("clin_"),
                                 cohort.outcomes().loc[[patient_id]].add_prefix("outcome_")], axis=1)[row.columns]
    clinical = dataframe_to_table_node(clinical_values, f"{patient_id} clinical", scene)
    return {"volumes": volumes, "segmentation": segmentation, "clinical": clinical}
