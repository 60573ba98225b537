"""From co-registered MR sequences and a tumour mask to the I3D input, as a MONAI transform pipeline.

Per patient: every sequence is resampled onto the first sequence's grid (linear; co-registered
scans usually share it already) and the mask onto the same grid (nearest). Then, in MONAI:
resample to a fixed voxel size, crop the mask's bounding box plus a margin, pad or crop to a
fixed shape around that box's centre, and scale each sequence to [0, 1] between its 0.5th and
99.5th percentiles inside the crop. Training-time augmentation (flip, small rotation/scaling,
noise, intensity scaling) is optional.

Sequences reach the ImageNet network in one of two ways (``mode``):

``"channels"`` (default) one pass, the sequences as the three RGB channels: one sequence is
               repeated, two give (first, second, their mean), three are used as they are;
``"streams"``  one pass per sequence (repeated to three channels), the feature vectors
               concatenated (2048 per sequence).

Either way each channel is normalised with ImageNet's mean and SD, as the network was trained.
Arrays are (depth, height, width) = (z, y, x); sizes below are given as (x, y, z) like the rest
of the library and converted here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from ...errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("channels", "streams")


@dataclass(frozen=True)
class VolumeConfig:
    sequences: tuple = ("T1", "T2")          # manifest image names (image_<name>), first = reference grid
    mask: str = "GTVp"                      # manifest mask name (mask_<name>)
    spacing_xyz: tuple = (1.5, 1.5, 3.0)    # mm
    shape_xyz: tuple = (96, 96, 24)         # voxels: 144 x 144 x 72 mm around the tumour
    margin_mm: float = 10.0
    mode: str = "channels"
    percentiles: tuple = (0.5, 99.5)

    def __post_init__(self):
        if not self.sequences:
            raise InputError("choose at least one MR sequence")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if self.mode == "channels" and len(self.sequences) > 3:
            raise InputError(f"{len(self.sequences)} sequences do not fit 3 channels; use mode='streams'")
        if len(self.spacing_xyz) != 3 or len(self.shape_xyz) != 3 or min(self.shape_xyz) < 8:
            raise InputError(f"spacing and shape need 3 values each, shape at least 8 voxels: "
                             f"{self.spacing_xyz}, {self.shape_xyz}")

    @property
    def passes(self) -> int:
        return 1 if self.mode == "channels" else len(self.sequences)

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping) -> "VolumeConfig":
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def transforms(config: VolumeConfig, augment: bool = False, source_spacing_xyz=None):
    """The MONAI ``Compose`` from a dict {sequence: (1, z, y, x) MetaTensor, "mask": ...} to cropped, scaled arrays.

    With ``source_spacing_xyz`` (the images' voxel size) a first, generous crop around the mask
    keeps the resampling to the region that can reach the output (whole scans are slow to resample).
    """
    from monai import transforms as mt

    keys = list(config.sequences)
    spacing_zyx = tuple(float(s) for s in config.spacing_xyz[::-1])
    margin = [int(np.ceil(config.margin_mm / s)) for s in spacing_zyx]
    steps = []
    if source_spacing_xyz is not None:
        reach_mm = [n * s / 2 + config.margin_mm for n, s in zip(config.shape_xyz[::-1], spacing_zyx)]
        coarse = [int(np.ceil(r / s)) + 2 for r, s in zip(reach_mm, source_spacing_xyz[::-1])]
        steps.append(mt.CropForegroundd(keys=keys + ["mask"], source_key="mask", margin=coarse, allow_smaller=True))
    steps += [
        mt.Spacingd(keys=keys + ["mask"], pixdim=spacing_zyx, mode=["bilinear"] * len(keys) + ["nearest"]),
        mt.CropForegroundd(keys=keys + ["mask"], source_key="mask", margin=margin, allow_smaller=True),
        mt.ResizeWithPadOrCropd(keys=keys + ["mask"], spatial_size=tuple(config.shape_xyz[::-1])),
    ]
    if augment:
        steps += [
            mt.RandFlipd(keys=keys + ["mask"], prob=0.5, spatial_axis=2),  # left-right
            mt.RandAffined(keys=keys + ["mask"], prob=0.5, rotate_range=(0.0, 0.0, np.pi / 18),
                           scale_range=(0.1, 0.1, 0.1), mode=["bilinear"] * len(keys) + ["nearest"],
                           padding_mode="border"),
        ]
    steps += [mt.ScaleIntensityRangePercentilesd(keys=key, lower=config.percentiles[0], upper=config.percentiles[1],
                                                 b_min=0.0, b_max=1.0, clip=True) for key in keys]
    if augment:
        steps += [mt.RandScaleIntensityd(keys=keys, factors=0.1, prob=0.5),
                  mt.RandGaussianNoised(keys=keys, prob=0.3, std=0.02)]
    return mt.Compose(steps)


def _meta_tensor(image) -> "MetaTensor":
    import SimpleITK as sitk
    from monai.data import MetaTensor

    array = sitk.GetArrayFromImage(image).astype(np.float32)[None]  # (1, z, y, x)
    affine = np.diag([*image.GetSpacing()[::-1], 1.0])  # axis-aligned voxel grid: only the spacing matters here
    return MetaTensor(array, affine=affine)


def _on_grid(image, reference, nearest: bool):
    import SimpleITK as sitk

    same = (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
            and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-5))
    if same:
        return image
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, image.GetPixelID())


def volume_input(images: Mapping[str, object] | Sequence, mask, config: VolumeConfig, augment: bool = False,
                 seed: int | None = None, patient: str = "") -> np.ndarray:
    """The network input for one patient: (passes, 3, z, y, x) float32, ImageNet-normalised.

    ``images``: SimpleITK images, a dict by sequence name or a list in ``config.sequences`` order.
    ``mask``: the tumour mask (any grid; resampled onto the first sequence's).
    """
    import SimpleITK as sitk

    named = dict(images) if isinstance(images, Mapping) else dict(zip(config.sequences, images))
    missing = [s for s in config.sequences if s not in named]
    if missing:
        raise InputError(f"missing MR sequence(s) {', '.join(missing)}", patient=patient or None)
    reference = named[config.sequences[0]]
    mask = sitk.Cast(_on_grid(mask, reference, nearest=True) != 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(f"the tumour mask '{config.mask}' is empty", patient=patient or None)
    data = {name: _meta_tensor(_on_grid(sitk.Cast(named[name], sitk.sitkFloat32), reference, nearest=False))
            for name in config.sequences}
    data["mask"] = _meta_tensor(mask)
    pipeline = transforms(config, augment, source_spacing_xyz=reference.GetSpacing())
    if augment:
        pipeline.set_random_state(seed=0 if seed is None else int(seed))
    result = pipeline(data)
    scaled = [np.asarray(result[name].detach().cpu().numpy()[0], dtype=np.float32) for name in config.sequences]
    return _to_rgb(scaled, config.mode)


def _to_rgb(scaled: list[np.ndarray], mode: str) -> np.ndarray:
    if mode == "streams":
        passes = [np.stack([s, s, s]) for s in scaled]
    elif len(scaled) == 1:
        passes = [np.stack([scaled[0]] * 3)]
    elif len(scaled) == 2:
        passes = [np.stack([scaled[0], scaled[1], (scaled[0] + scaled[1]) / 2])]
    else:
        passes = [np.stack(scaled)]
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None, None]
    return np.stack([(p - mean) / std for p in passes]).astype(np.float32)
