"""Image preprocessing shared by the deep-learning methods (resampling, tumour-centred crops)."""

from .resample import resample_isotropic
from .slices import SliceCrop, max_area_slice, tumour_slices, window

__all__ = ["SliceCrop", "max_area_slice", "resample_isotropic", "tumour_slices", "window"]
