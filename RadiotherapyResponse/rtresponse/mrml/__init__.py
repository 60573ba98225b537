"""The bridge between rtresponse and the MRML scene: the only package that touches MRML nodes.

``nodes`` converts single nodes (volumes, segments, tables, plots, scene bundles);
``patient`` puts a cohort patient (images, masks, clinical row) into a scene.
"""

from .nodes import (  # noqa: F401
    dataframe_to_table_node,
    image_to_volume_node,
    mask_to_segment,
    new_scene,
    new_segmentation_node,
    nodes_by_class,
    open_scene_bundle,
    plot_columns,
    plot_xy,
    register_segmentation_converters,
    save_scene,
    segment_names,
    segment_to_mask,
    table_node_to_dataframe,
    update_table_node,
    volume_node_to_image,
)
from .patient import load_patient  # noqa: F401

__all__ = [
    "dataframe_to_table_node", "image_to_volume_node", "load_patient", "mask_to_segment", "new_scene",
    "new_segmentation_node", "nodes_by_class", "open_scene_bundle", "plot_columns", "plot_xy",
    "register_segmentation_converters", "save_scene", "segment_names", "segment_to_mask", "table_node_to_dataframe",
    "update_table_node", "volume_node_to_image",
]
