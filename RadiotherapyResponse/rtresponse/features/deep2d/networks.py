"""Building a zoo network (timm or torchvision) frozen, with ImageNet, file or seeded random weights."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import InputError
from ...modelfile import check_torch_file, first_problem
from .catalogue import ModelSpec, model_spec
from .weights import read_state_dict, require_weights

if TYPE_CHECKING:  # pragma: no cover
    import torch

# torchvision builds GoogLeNet / Inception-v3 with auxiliary heads only for training; their
# ImageNet files carry them, and expect the input re-normalisation they were trained with.
_TORCHVISION_OPTIONS = {
    "googlenet": {"aux_logits": False, "transform_input": True, "init_weights": True},
    "inception_v3": {"aux_logits": False, "transform_input": True, "init_weights": True},
}
_AUXILIARY = ("aux1.", "aux2.", "AuxLogits.")
# torchvision's DenseNet files predate a module rename ("norm.1" -> "norm1"); the same regex torchvision uses.
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


# lukemelas/EfficientNet-PyTorch's layout (the EfficientNet-Lite0 PyPI package's file) -> timm's EfficientNet.
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
                 "_bn2": "bn3"}
# the first block has no expansion: depthwise, then the projection, as timm's DepthwiseSeparableConv names them
_EFFNET_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                     "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def efficientnet_pytorch_state(state: dict, model, name: str = "the network") -> dict:
    """``state`` (lukemelas/EfficientNet-PyTorch names: ``_blocks.N._depthwise_conv.weight``) renamed for timm's
    EfficientNet ``model`` (``blocks.S.I.conv_dw.weight``), by name: the flat block number N is the N-th of timm's
    stage blocks; a block without ``_expand_conv`` is timm's depthwise-separable block. A key with no counterpart
    is an :class:`InputError`; the caller loads the result strictly (every key used, every shape equal)."""
    blocks = [name for name, _ in model.named_modules() if re.fullmatch(r"blocks\.\d+\.\d+", name)]
    renamed = {}
    for key, tensor in state.items():
        match = _EFFNET_KEY.match(key)
        if match:
            number, layer, parameter = int(match[1]), match[2], match[3]
            table = _EFFNET_BLOCK if f"_blocks.{number}._expand_conv.weight" in state else _EFFNET_SEPARABLE
            if number >= len(blocks) or layer not in table:
                raise InputError(f"weights do not fit {name} (no counterpart of '{key}')")
            new = f"{blocks[number]}.{table[layer]}.{parameter}"
        else:
            module, _, parameter = key.rpartition(".")
            if module not in _EFFNET_TOP:
                raise InputError(f"weights do not fit {name} (no counterpart of '{key}')")
            new = f"{_EFFNET_TOP[module]}.{parameter}"
        renamed[new] = tensor
    return renamed


def _is_efficientnet_pytorch(state: dict) -> bool:
    return "_conv_stem.weight" in state


def _load_efficientnet_pytorch(spec: ModelSpec, path: Path, state: dict):
    """A timm EfficientNet with a lukemelas-layout file's weights, loaded strictly (see the catalogue's ``layout``)."""
    import timm

    model = timm.create_model(spec.id, pretrained=False, num_classes=1000)
    try:
        model.load_state_dict(efficientnet_pytorch_state(state, model, spec.name), strict=True)
    except InputError as error:
        raise InputError(error.problem, path=str(path)) from None
    except RuntimeError as error:
        raise InputError(f"weights do not fit {spec.name} ({first_problem(error)})", path=str(path)) from None
    return model


def _torchvision_state(spec: ModelSpec, state: dict) -> dict:
    state = {k: v for k, v in state.items() if not k.startswith(_AUXILIARY)}
    if spec.id.startswith("densenet"):
        state = {(_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    return state


def _build_torchvision(spec: ModelSpec, path: Path | None):
    import torchvision

    model = torchvision.models.get_model(spec.id, weights=None, num_classes=1000,
                                         **_TORCHVISION_OPTIONS.get(spec.id, {}))
    if path is not None:
        try:
            model.load_state_dict(_torchvision_state(spec, read_state_dict(path)))
        except RuntimeError as error:
            raise InputError(f"weights do not fit {spec.name} ({first_problem(error)})", path=str(path)) from None
    return model


def _build_timm(spec: ModelSpec, path: Path | None, imagenet: bool):
    import timm

    if path is None:
        return timm.create_model(spec.id, pretrained=False, num_classes=1000)
    if (spec.weights or {}).get("layout") == "efficientnet_pytorch":  # this network's files may come in that layout
        state = read_state_dict(path)
        if _is_efficientnet_pytorch(state):
            return _load_efficientnet_pytorch(spec, path, state)
    tag = (spec.weights or {}).get("tag") if imagenet else None
    name = f"{spec.id}.{tag}" if tag else spec.id
    if path.suffix != ".safetensors":
        check_torch_file(path, "a weights file")  # timm reads it with torch.load: no zip bomb first
    try:  # timm's own loader: applies the model's key remapping, safetensors or weights_only torch.load
        return timm.create_model(name, pretrained=True, num_classes=1000, pretrained_cfg_overlay={"file": str(path)})
    except Exception as error:  # noqa: BLE001 - the file is the user's: refused pickles, bad zips, misfits
        if str(error).startswith("Error(s) in loading state_dict"):
            raise InputError(f"weights do not fit {spec.name} ({first_problem(error)})", path=str(path)) from None
        raise InputError(f"cannot read weights for {spec.name} ({first_problem(error)}); files that need "
                         "pickled code to load are refused", path=str(path)) from None


def weights_file(model: str | ModelSpec, weights: str | os.PathLike | None = "imagenet",
                 weights_folder: str | os.PathLike | None = None) -> Path | None:
    """The file :func:`build` loads for ``weights`` (None for random weights); a missing one is an error."""
    spec = model_spec(model)
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        return require_weights(spec, weights_folder)
    path = Path(weights)
    if not path.is_file():
        raise InputError("weights file not found", path=str(path))
    return path


def weights_provenance(model: str | ModelSpec, weights: str | os.PathLike | None = "imagenet", seed: int = 0,
                       weights_folder: str | os.PathLike | None = None) -> dict:
    """What a provenance record says of the weights: ``{"weights": "random", "seed": N}`` for random weights,
    else the file actually loaded and its SHA-256 (``name`` "imagenet" and the published source for ImageNet's)."""
    from ... import provenance

    spec = model_spec(model)
    path = weights_file(spec, weights, weights_folder)
    imagenet = isinstance(weights, str) and weights == "imagenet"
    found = provenance.weights_record(path, seed, "imagenet" if imagenet else None)
    if imagenet and spec.weights:
        found["published"] = {key: spec.weights[key] for key in ("url", "hf_hub_id", "package", "version", "file",
                                                                 "tag", "sha256") if spec.weights.get(key)}
    return found


def build(model: str | ModelSpec, weights: str | os.PathLike | None = "imagenet", seed: int = 0,
          weights_folder: str | os.PathLike | None = None) -> "torch.nn.Module":
    """The network in eval mode with every parameter frozen.

    ``weights``: ``"imagenet"`` (a local file, see :func:`~.weights.find_weights`; never a
    silent fallback), a path to a weights file, or ``None`` for random weights seeded by ``seed``.
    """
    import torch

    spec = model_spec(model)
    imagenet = isinstance(weights, str) and weights == "imagenet"
    path = weights_file(spec, weights, weights_folder)
    torch.manual_seed(seed)
    network = _build_timm(spec, path, imagenet) if spec.library == "timm" else _build_torchvision(spec, path)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


@lru_cache(maxsize=2)
def _cached(name: str, weights: str | None, seed: int, weights_folder: str | None, device: str):
    return build(name, weights, seed, weights_folder).to(device)


def load_network(model: str | ModelSpec, weights=None, seed: int = 0, weights_folder=None, device: str = "cpu"):
    """:func:`build`, moved to ``device`` and kept for the next call with the same arguments."""
    spec = model_spec(model)
    key = None if weights is None else str(weights)
    return _cached(spec.name, key, int(seed), None if weights_folder is None else str(weights_folder), device)


def to_input(crops: list[np.ndarray], spec: ModelSpec, device: str = "cpu") -> "torch.Tensor":
    """(N, 3, S, S) network input: grey crops in [0, 1], bilinear to the network's size, 3 channels, normalised."""
    import torch
    import torch.nn.functional as F

    batch = torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in crops]))[:, None].to(device)
    size = (spec.input_size, spec.input_size)
    batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    batch = batch.expand(-1, 3, -1, -1)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return ((batch - mean) / std).contiguous()
