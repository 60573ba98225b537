"""Grad-CAM of a residual-tumour classifier on each crop, put back onto the MR grid.

MONAI's GradCAM on the catalogue's Grad-CAM layer explains the residual-tumour logit: bright is
where the network looked when it called the tumour residual (the paper's Figure 9, Xception).
Each crop's map is scaled to [0, 1] (the largest activation 1, as in
:mod:`rtresponse.features.deep2d.gradcam`), resized to its box and written on its slice
(:func:`rtresponse.residual.slices.paste_maps`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..features.deep2d.catalogue import model_spec
from ..features.deep2d.gradcam import min_max_per_map
from .classification import Classifier, _tensor
from .slices import SliceSample, paste_maps

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk


def gradcam_slices(classifier: Classifier, samples: Sequence[SliceSample], device: str = "cpu",
                   batch_size: int = 16) -> list[np.ndarray]:
    """One (size, size) float32 map in [0, 1] per crop."""
    from monai.visualize import GradCAM

    spec = model_spec(classifier.config.network)
    network = copy.deepcopy(classifier.network).to(device).eval()  # MONAI leaves hooks on the module it wraps
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    cam = GradCAM(nn_module=network, target_layers=f"net.{spec.cam_layer}", postprocessing=min_max_per_map)
    maps = []
    for first in range(0, len(samples), batch_size):
        x = _tensor(samples, range(first, min(first + batch_size, len(samples))), device).requires_grad_(True)
        heat = cam(x, class_idx=0)  # (n, 1, size, size)
        maps.extend(np.clip(h[0], 0.0, 1.0).astype(np.float32) for h in heat.detach().float().cpu().numpy())
    return maps


def gradcam_image(classifier: Classifier, samples: Sequence[SliceSample], reference: "sitk.Image",
                  device: str = "cpu") -> "sitk.Image":
    """Grad-CAM of every crop as one float32 image with ``reference``'s (the MR's) geometry, 0 off the boxes."""
    return paste_maps(samples, gradcam_slices(classifier, samples, device), reference)
