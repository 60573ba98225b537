"""2D tumour segmentation on axial MR slices: U-Net vs DeepLabv3, as the NPC paper compared them.

The paper trained a "transferred" U-Net and DeepLabv3 with RMSprop (learning rate 0.001, batch 32,
20 epochs), scored them by Dice (DeepLabv3 0.752, U-Net 0.689) and kept the better one to find the
tumour before the rectangular crops. Here:

* U-Net: MONAI's ``BasicUNet`` in 2D (two 3 x 3 convolutions per level, four poolings, skip
  connections — Ronneberger's design). It has no published ImageNet weights: it starts from seeded
  random weights (the paper does not say what its U-Net was transferred from).
* DeepLabv3: torchvision's ``deeplabv3_resnet50`` (output stride 8, ASPP) with its ImageNet
  ResNet-50 backbone, found locally like every other ImageNet file
  (:func:`rtresponse.features.deep2d.weights.require_weights`); random weights only when asked
  for (``backbone_weights=None``). The grey slice is repeated to three channels and normalised
  with ImageNet's mean and standard deviation.

Both take (N, 1, S, S) slices in [0, 1] and return one logit per pixel. Each axial slice is
resized to S x S for the network and the probability resized back, so :func:`segment_image` gives
a mask with exactly the image's geometry. Training uses every tumour slice plus a share of
tumour-free slices (``negatives``), so the network also learns where there is no tumour;
Dice is reported on held-out slices that hold tumour (mean and 95 % t-interval).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..modelfile import file_settings, first_problem, load_weights, read_state, save_state
from ..errors import Cancelled, InputError
from ..evaluation.segmentation import dice
from ..settings import autocast
from .slices import normalise, resize, tumour_voxels

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk
    import torch

ARCHITECTURES = ("unet", "deeplabv3")
FORMAT = "rtresponse-residual-segmenter-1"
UNET_FEATURES = (32, 32, 64, 128, 256, 32)  # MONAI BasicUNet's default; sides must divide by 16
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class SegmenterConfig:
    """Hyper-parameters; defaults are the paper's (RMSprop, learning rate 0.001, batch 32, 20 epochs)."""

    architecture: str = "deeplabv3"
    input_size: int = 256  # slices are resized to this square (the paper's MR was 512 x 512)
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 20
    backbone_weights: str | None = "imagenet"  # DeepLabv3's ResNet-50: "imagenet", a file, or None (random)
    unet_features: tuple = UNET_FEATURES
    negatives: float = 0.25  # tumour-free slices per tumour slice in training
    threshold: float = 0.5
    reference: str = "body"  # intensity percentiles (see rtresponse.residual.slices.normalise)
    amp: bool = False
    seed: int = 0
    keep: str = "best"  # the epoch kept: "best" validation Dice (beyond the paper) or the "last" (the paper)

    def __post_init__(self):
        if self.keep not in ("best", "last"):
            raise InputError(f"keep must be 'best' or 'last', got '{self.keep}'")
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"segmenter must be one of {', '.join(ARCHITECTURES)}, got '{self.architecture}'")
        if self.architecture == "unet" and self.input_size % 16:
            raise InputError(f"the U-Net needs an input size divisible by 16, got {self.input_size}")
        for name in ("input_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["unet_features"] = list(self.unet_features)
        values["backbone_weights"] = None if self.backbone_weights is None else str(self.backbone_weights)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "SegmenterConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "unet_features" in known:
            known["unet_features"] = tuple(known["unet_features"])
        return cls(**known)


@dataclass
class SegmentationSlices:
    """Whole axial slices resized to the network's square: images (N, S, S) in [0, 1], masks (N, S, S) bool."""

    images: np.ndarray
    masks: np.ndarray
    patient_ids: list = field(default_factory=list)
    slice_indices: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def concatenate(parts: Sequence["SegmentationSlices"]) -> "SegmentationSlices":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise InputError("no slices to concatenate")
        return SegmentationSlices(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                                  [pid for p in parts for pid in p.patient_ids],
                                  [z for p in parts for z in p.slice_indices])


@dataclass
class Segmenter:
    """A trained segmentation network with the configuration it was trained with."""

    network: "torch.nn.Module"
    config: SegmenterConfig
    validation_dice: float = float("nan")
    history: list = field(default_factory=list)
    epoch: int = 0  # the epoch whose weights these are


def segmentation_slices(image: "sitk.Image", mask: "sitk.Image", patient_id: str = "", size: int = 256,
                        negatives: float = 0.25, reference: str = "body", seed: int = 0) -> SegmentationSlices:
    """Every tumour slice of a patient and ``negatives`` x as many tumour-free ones (seeded), at ``size``."""
    tumour = tumour_voxels(image, mask, patient_id or None)
    values = normalise(image, reference, patient_id=patient_id or None)
    with_tumour = np.flatnonzero(tumour.any(axis=(1, 2)))
    without = np.setdiff1d(np.arange(tumour.shape[0]), with_tumour)
    count = min(len(without), int(round(negatives * len(with_tumour))))
    chosen = np.concatenate([with_tumour, np.random.default_rng(seed).choice(without, count, replace=False)])
    chosen = np.sort(chosen).astype(int)
    images = np.stack([resize(values[z], (size, size), order=1) for z in chosen]).astype(np.float32)
    masks = np.stack([resize(tumour[z], (size, size), order=0) for z in chosen]).astype(bool)
    return SegmentationSlices(images, masks, [patient_id] * len(chosen), chosen.tolist())


# --------------------------------------------------------------------------- networks

def _load_backbone(deeplab, weights, weights_folder) -> None:
    from ..features.deep2d.weights import read_state_dict, require_weights

    path = require_weights("resnet50", weights_folder) if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise InputError("backbone weights file not found", path=str(path))
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
    try:
        missing, unexpected = deeplab.backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes that differ
        raise InputError(f"weights do not fit DeepLabv3's ResNet-50 backbone ({first_problem(error)})",
                         path=str(path)) from None
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise InputError(f"weights do not fit DeepLabv3's ResNet-50 backbone ({what})", path=str(path))


def make_segmenter(architecture: str = "deeplabv3", weights: str | os.PathLike | None = "imagenet", seed: int = 0,
                   unet_features: Sequence[int] = UNET_FEATURES, weights_folder=None) -> "torch.nn.Module":
    """A segmentation network taking (N, 1, S, S) in [0, 1] and giving (N, 1, S, S) logits.

    ``weights``: DeepLabv3's backbone — ``"imagenet"`` (a local ResNet-50 file; a missing one is a
    ``WeightsNotFound`` error, never random weights), a file, or None (seeded random). The U-Net
    has no ImageNet weights: it takes only None.
    """
    import torch

    if architecture not in ARCHITECTURES:
        raise InputError(f"segmenter must be one of {', '.join(ARCHITECTURES)}, got '{architecture}'")
    torch.manual_seed(seed)
    if architecture == "unet":
        if weights is not None:
            raise InputError("MONAI's U-Net has no ImageNet weights: build it with weights=None (seeded random)")
        from monai.networks.nets import BasicUNet

        if len(unet_features) != 6:
            raise InputError(f"unet_features must be 6 feature counts, got {tuple(unet_features)}")
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(int(f) for f in unet_features))

    from torchvision.models.segmentation import deeplabv3_resnet50

    deeplab = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
    if weights is not None:
        _load_backbone(deeplab, weights, weights_folder)

    class DeepLabGrey(torch.nn.Module):
        """DeepLabv3 on grey slices: repeated to RGB, ImageNet-normalised; the ``out`` logits."""

        def __init__(self):
            super().__init__()
            self.deeplab = deeplab
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, x):
            return self.deeplab((x.expand(-1, 3, -1, -1) - self.mean) / self.std)["out"]

    return DeepLabGrey()


# --------------------------------------------------------------------------- training and evaluation

def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index batches; a last batch of one joins the previous one (batch norm needs two)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [order[s:(starts[i + 1] if i + 1 < len(starts) else n)] for i, s in enumerate(starts)]


def predict_probabilities(network, images: np.ndarray, device: str = "cpu", batch_size: int = 32,
                          amp: bool = False) -> np.ndarray:
    """(N, S, S) tumour probabilities of (N, S, S) slices."""
    import torch

    network.eval()
    out = []
    with torch.inference_mode(), autocast(device, amp):
        for indices in _batches(len(images), batch_size, None):
            x = torch.from_numpy(np.ascontiguousarray(images[indices])[:, None]).to(device)
            out.append(torch.sigmoid(network(x).float())[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.float32)


def dice_summary(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean Dice with its t-interval: ``{"dice_mean", "dice_low", "dice_high", "n_slices"}``."""
    from scipy import stats

    values = np.asarray(values, float)
    n = values.size
    if n == 0:
        raise InputError("no slices with tumour to score")
    mean = float(values.mean())
    if n < 2:
        return {"dice_mean": mean, "dice_low": float("nan"), "dice_high": float("nan"), "n_slices": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return {"dice_mean": mean, "dice_low": mean - half, "dice_high": mean + half, "n_slices": int(n)}


def slice_dice(network, slices: SegmentationSlices, device: str = "cpu", threshold: float = 0.5,
               amp: bool = False) -> np.ndarray:
    """Dice of each held-out slice that holds tumour (an empty prediction scores 0)."""
    keep = slices.masks.any(axis=(1, 2))
    probabilities = predict_probabilities(network, slices.images[keep], device, amp=amp)
    return np.array([dice(p >= threshold, m) for p, m in zip(probabilities, slices.masks[keep])])


def evaluate_segmenter(segmenter: Segmenter, slices: SegmentationSlices, device: str = "cpu") -> dict:
    """Per-slice Dice on held-out slices: mean, 95 % CI, number of slices."""
    return dice_summary(slice_dice(segmenter.network.to(device), slices, device, segmenter.config.threshold,
                                   segmenter.config.amp))


def train_segmenter(train: SegmentationSlices, validation: SegmentationSlices,
                    config: SegmenterConfig | None = None, device: str = "cpu", weights_folder=None,
                    progress: Callable[[dict], None] | None = None,
                    should_cancel: Callable[[], bool] | None = None) -> Segmenter:
    """Train with RMSprop and MONAI's Dice loss; the network of the best epoch on ``validation`` (or the last).

    ``config.keep`` says which epoch's weights are kept: "best" (highest mean validation Dice,
    earliest on ties) or "last" (what the paper reports); the returned Dice is that epoch's.

    ``progress`` receives each epoch's record (architecture, epoch, train_loss, validation_dice, seconds).
    """
    import torch
    from monai.losses import DiceLoss

    config = config or SegmenterConfig()
    for part, name in ((train, "training"), (validation, "validation")):
        if not len(part):
            raise InputError(f"no {name} slices")
        if part.images.shape[1:] != (config.input_size, config.input_size):
            raise InputError(f"{name} slices are {part.images.shape[1:]}, the segmenter expects "
                             f"{config.input_size} x {config.input_size}")
    if not validation.masks.any():
        raise InputError("no validation slice holds tumour")
    weights = config.backbone_weights if config.architecture == "deeplabv3" else None
    network = make_segmenter(config.architecture, weights, config.seed, config.unet_features,
                             weights_folder).to(device)
    optimizer = torch.optim.RMSprop(network.parameters(), lr=config.learning_rate)
    loss_function = DiceLoss(sigmoid=True)
    rng = np.random.default_rng(config.seed)
    history = []
    kept: tuple[float, int, dict] | None = None  # (Dice, epoch, weights on the CPU) of the epoch to keep
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        network.train()
        losses = []
        for indices in _batches(len(train), config.batch_size, rng):
            x = torch.from_numpy(train.images[indices][:, None]).to(device)
            y = torch.from_numpy(train.masks[indices][:, None].astype(np.float32)).to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, config.amp):
                loss = loss_function(network(x).float(), y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if should_cancel is not None and should_cancel():
                raise Cancelled("segmentation training cancelled")
        record = {"architecture": config.architecture, "epoch": epoch, "train_loss": float(np.mean(losses)),
                  "validation_dice": float(np.mean(slice_dice(network, validation, device, config.threshold,
                                                              config.amp))),
                  "seconds": time.perf_counter() - start}
        history.append(record)
        dice = record["validation_dice"]
        if config.keep == "last" or kept is None or dice > kept[0]:
            kept = (dice, epoch, {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()})
        if progress:
            progress(record)
    dice, epoch, weights = kept
    network.load_state_dict(weights)
    network.eval()
    return Segmenter(network, config, dice, history, epoch)


@dataclass
class SegmenterComparison:
    best: Segmenter
    segmenters: dict  # architecture -> Segmenter
    table: "pd.DataFrame"  # one row per architecture: Dice mean, 95 % CI, slices


def compare_segmenters(train: SegmentationSlices, validation: SegmentationSlices,
                       config: SegmenterConfig | None = None, architectures: Sequence[str] = ARCHITECTURES,
                       device: str = "cpu", weights_folder=None, progress=None, should_cancel=None
                       ) -> SegmenterComparison:
    """Train each architecture with ``config`` and keep the one with the higher validation Dice (ties: the first)."""
    import pandas as pd

    config = config or SegmenterConfig()
    segmenters, rows = {}, []
    for architecture in architectures:
        trained = train_segmenter(train, validation, replace(config, architecture=architecture), device,
                                  weights_folder, progress, should_cancel)
        segmenters[architecture] = trained
        rows.append({"architecture": architecture, "epoch": trained.epoch,
                     **evaluate_segmenter(trained, validation, device)})
    table = pd.DataFrame(rows).set_index("architecture")
    best = str(table["dice_mean"].idxmax())
    return SegmenterComparison(segmenters[best], segmenters, table)


def segment_image(segmenter: Segmenter, image: "sitk.Image", device: str = "cpu",
                  threshold: float | None = None) -> "sitk.Image":
    """A uint8 tumour mask with exactly ``image``'s geometry, predicted slice by slice."""
    import SimpleITK as sitk

    config = segmenter.config
    values = normalise(image, config.reference)
    size = (config.input_size, config.input_size)
    slices = np.stack([resize(plane, size, order=1) for plane in values]).astype(np.float32)
    probabilities = predict_probabilities(segmenter.network.to(device), slices, device, amp=config.amp)
    cut = config.threshold if threshold is None else threshold
    mask = np.stack([resize(p, values.shape[1:], order=1) >= cut for p in probabilities]).astype(np.uint8)
    out = sitk.GetImageFromArray(mask)
    out.CopyInformation(image)
    return out


def weights_provenance(config: SegmenterConfig, weights_folder=None) -> dict:
    """:func:`rtresponse.provenance.weights_record` of the starting weights: DeepLabv3's backbone file with its
    SHA-256, or "random" with the seed (the U-Net always)."""
    from ..features.deep2d.weights import require_weights
    from ..provenance import weights_record

    weights = config.backbone_weights if config.architecture == "deeplabv3" else None
    if weights is None:
        return weights_record(None, config.seed)
    if str(weights) == "imagenet":
        return weights_record(require_weights("resnet50", weights_folder),
                              name="resnet50 ImageNet (DeepLabv3 backbone)")
    return weights_record(weights)


# --------------------------------------------------------------------------- files

def save_segmenter(path: str | os.PathLike, segmenter: Segmenter) -> Path:
    """State dict and configuration (plain values only), written atomically."""
    return save_state(path, FORMAT, segmenter.network, config=segmenter.config.to_dict(),
                      validation_dice=segmenter.validation_dice, epoch=segmenter.epoch)


def load_segmenter(path: str | os.PathLike, device: str = "cpu") -> Segmenter:
    """A saved segmenter on ``device`` (read with ``weights_only=True``; no ImageNet file needed)."""
    state = read_state(path, FORMAT, "the segmenter", "a residual-tumour segmenter")
    with file_settings(path):
        config = SegmenterConfig.from_dict(state["config"])
        dice = float(state.get("validation_dice", float("nan")))
        network = make_segmenter(config.architecture, None, config.seed, config.unet_features)
    load_weights(network, state, path)
    return Segmenter(network.to(device).eval(), config, dice, epoch=int(state.get("epoch", 0)))
