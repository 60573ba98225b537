"""Inflated-3D ResNet-50 radiomics fused with clinical factors (Jeong et al.).

``inflate`` turns a 2D network into 3D; the rest of the package builds the frozen I3D feature
extractor, the MR input pipeline, the feature cache, the fusion head, its training and tuning.
Importing this package imports torch.
"""

from .inflate import inflate

__all__ = ["inflate"]
