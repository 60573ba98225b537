"""Deep features from frozen ImageNet 2D CNNs on the max-area GTV slice (Tanaka et al.)."""

from .catalogue import MODELS, PAPER_DEFAULT, ModelSpec, model_spec
from .networks import build, load_network, to_input, weights_file, weights_provenance
from .weights import WeightsNotFound, download_weights, find_weights, require_weights

__all__ = ["MODELS", "PAPER_DEFAULT", "ModelSpec", "WeightsNotFound", "build", "download_weights", "find_weights",
           "load_network", "model_spec", "require_weights", "to_input", "weights_file", "weights_provenance"]
from .extraction import (STATUS, WEIGHTS, Cancelled, extract, extract_cohort, feature_names,  # noqa: E402
                         network_outputs, zscore)
from .gradcam import crop_map_to_image, gradcam, gradcam_cohort, gradcam_crop, target_weights  # noqa: E402

__all__ += ["STATUS", "WEIGHTS", "Cancelled", "crop_map_to_image", "extract", "extract_cohort", "feature_names",
            "gradcam", "gradcam_cohort", "gradcam_crop", "network_outputs", "target_weights", "zscore"]
from .nodes import extract_segments, gradcam_node_name, gradcam_volume_node, show_as_heat_map  # noqa: E402

__all__ += ["extract_segments", "gradcam_node_name", "gradcam_volume_node", "show_as_heat_map"]
