"""The frozen inflated ResNet-50 of Jeong et al.: conv5_x feature maps, average-pooled to 2048 numbers.

The 2D ResNet-50 comes from :func:`rtresponse.features.deep2d.networks.build`, so its ImageNet
weights follow the same rules as the 2D deep features: a local file (weights folder, torch hub
cache) or an explicit path; random weights only when asked for (``weights=None``), never as a
silent fallback.
"""

from __future__ import annotations

import os

FEATURE_SIZE = 2048  # conv5_x channels of ResNet-50


def _extractor_class():
    import torch

    class I3DFeatures(torch.nn.Module):
        """conv1 ... layer4 (conv5_x) of an inflated ResNet, then the mean over depth, height and width."""

        def __init__(self, resnet3d):
            super().__init__()
            self.stem = torch.nn.Sequential(resnet3d.conv1, resnet3d.bn1, resnet3d.relu, resnet3d.maxpool)
            self.layers = torch.nn.Sequential(resnet3d.layer1, resnet3d.layer2, resnet3d.layer3, resnet3d.layer4)

        def forward(self, volume):  # (N, 3, D, H, W) -> (N, 2048)
            return self.layers(self.stem(volume)).mean(dim=(2, 3, 4))

    return I3DFeatures


def i3d_resnet50(weights: str | os.PathLike | None = "imagenet", weights_folder: str | os.PathLike | None = None,
                 seed: int = 0, depth_stride="same") -> "torch.nn.Module":
    """The frozen I3D ResNet-50 feature extractor in eval mode (input (N, 3, D, H, W), output (N, 2048))."""
    from ...features.deep2d.networks import build
    from .inflate import inflate

    resnet = build("resnet50", weights=weights, seed=seed, weights_folder=weights_folder)
    extractor = _extractor_class()(inflate(resnet, depth_stride=depth_stride))
    extractor.eval()
    for parameter in extractor.parameters():
        parameter.requires_grad_(False)
    return extractor
