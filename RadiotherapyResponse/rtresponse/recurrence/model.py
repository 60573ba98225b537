"""The recurrence network: a 3D U-Net with two input channels (CT, PET), instance norm, He initialisation.

The paper used a 3D U-Net after Çiçek et al. (two 3 x 3 x 3 convolutions per level, max-pooling,
transposed convolutions, skip connections) with instance instead of batch normalisation, "more
than 5.6 million" parameters. MONAI's ``BasicUNet`` is that design: with its default features
(32, 32, 64, 128, 256, 32), ReLU and instance norm it has 5.75 million parameters. Saved models
are a state dict plus the configuration (plain values), read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..modelfile import file_settings, load_weights, read_state, save_state

if TYPE_CHECKING:  # pragma: no cover
    import torch

PAPER_CHANNELS = (32, 32, 64, 128, 256, 32)  # BasicUNet features: 4 poolings, box sides divide by 16
FORMAT = "rtresponse-recurrence-unet-1"


def make_unet(channels=PAPER_CHANNELS, in_channels: int = 2, seed: int | None = 0) -> "torch.nn.Module":
    """A 3D U-Net with He (Kaiming normal, fan-in) initial weights; each box side must divide by 16."""
    import torch
    from monai.networks.nets import BasicUNet

    if len(channels) != 6:
        raise InputError(f"channels must be the 6 feature counts of a BasicUNet, got {tuple(channels)}")
    if seed is not None:
        torch.manual_seed(seed)
    network = BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=1, features=tuple(channels),
                        act=("relu", {"inplace": True}), norm=("instance", {"affine": True}))
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return network


def save_model(path: str | os.PathLike, network: "torch.nn.Module", config: dict) -> Path:
    """Write the state dict and configuration atomically (no pickled objects: only tensors and plain values)."""
    return save_state(path, FORMAT, network, config=dict(config))


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple["torch.nn.Module", dict]:
    """A saved model in eval mode on ``device``, and its configuration; refuses files that need code to load."""
    state = read_state(path, FORMAT, "the model", "a recurrence model")
    with file_settings(path):
        config = dict(state["config"])
        network = make_unet(config.get("channels", PAPER_CHANNELS), seed=None)
    load_weights(network, state, path)
    return network.to(device).eval(), config
