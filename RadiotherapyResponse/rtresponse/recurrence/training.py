"""Training the recurrence U-Net as the paper did, and predicting probability maps.

Adam (β1 0.9, β2 0.999, ε 1e-8); the learning rate reduced when the validation Dice plateaus;
MONAI's Dice loss (smoothing 1e-5, sigmoid output); random left-right flips (p 0.1); early
stopping on the validation Dice; several runs from different seeds, the best on validation
kept. "Fine-tune" starts every run from a pre-trained state (e.g. a GTV-segmentation model)
instead of He-initialised weights. Defaults are the paper's; tests and quick looks pass fewer
epochs and runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import Cancelled, InputError
from ..evaluation.segmentation import dice
from ..settings import autocast
from .model import PAPER_CHANNELS, make_unet
from .preprocess import Sample

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class TrainingConfig:
    """Hyper-parameters; defaults are the paper's (learning rate 0.1, factor 0.05 after 10 epochs, patience 60)."""

    learning_rate: float = 0.1
    lr_factor: float = 0.05
    lr_patience: int = 10
    early_stopping_patience: int = 60
    max_epochs: int = 500
    batch_size: int = 2
    flip_probability: float = 0.1
    runs: int = 5
    dice_smooth: float = 1e-5
    threshold: float = 0.5  # probability above which a voxel is predicted relapse (validation Dice)
    channels: tuple = PAPER_CHANNELS
    amp: bool = False
    compile: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        values = asdict(self)
        values["channels"] = list(self.channels)
        return values


@dataclass
class TrainingResult:
    network: "torch.nn.Module"
    best_validation_dice: float
    best_run: int
    best_epoch: int
    history: list = field(default_factory=list)  # one dict per run and epoch


def _batch(samples: Sequence[Sample], indices, device: str, rng: np.random.Generator | None, flip: float):
    import torch

    images, labels = [], []
    for i in indices:
        image, label = samples[i].image, samples[i].label.astype(np.float32)[None]
        if rng is not None and rng.random() < flip:  # left-right: the x axis, last in (c, z, y, x)
            image, label = image[..., ::-1], label[..., ::-1]
        images.append(np.ascontiguousarray(image))
        labels.append(np.ascontiguousarray(label))
    return torch.from_numpy(np.stack(images)).to(device), torch.from_numpy(np.stack(labels)).to(device)


def predict_boxes(network, samples: Sequence[Sample], device: str = "cpu", amp: bool = False,
                  roi_size: Sequence[int] | None = None) -> list[np.ndarray]:
    """Relapse probability per voxel of each sample's box (MONAI sliding windows of ``roi_size``, default the box)."""
    import torch
    from monai.inferers import sliding_window_inference

    network.eval()
    out = []
    with torch.inference_mode(), autocast(device, amp):
        for sample in samples:
            x = torch.from_numpy(sample.image[None]).to(device)
            window = tuple(roi_size or sample.image.shape[1:])
            logits = sliding_window_inference(x, window, sw_batch_size=1, predictor=network, overlap=0.25)
            out.append(torch.sigmoid(logits.float())[0, 0].cpu().numpy())
    return out


def mean_dice(network, samples: Sequence[Sample], device: str, threshold: float = 0.5, amp: bool = False) -> float:
    probabilities = predict_boxes(network, samples, device, amp)
    return float(np.mean([dice(p >= threshold, s.label) for p, s in zip(probabilities, samples)]))


def _check(samples: Sequence[Sample], role: str) -> None:
    if not samples:
        raise InputError(f"no {role} patients")
    for sample in samples:
        if sample.label is None:
            raise InputError(f"{role} patient has no relapse mask", patient=sample.patient_id)


def train(train_samples: Sequence[Sample], validation_samples: Sequence[Sample],
          config: TrainingConfig | None = None, device: str = "cpu", initial_state: dict | None = None,
          progress: Callable[[dict], None] | None = None,
          should_cancel: Callable[[], bool] | None = None) -> TrainingResult:
    """Train ``config.runs`` networks and keep the one with the best validation Dice.

    ``initial_state``: a state dict every run starts from ("fine-tune"); None: He initialisation.
    ``progress`` receives each epoch's record (run, epoch, train_loss, validation_dice, lr, seconds).
    """
    import torch
    from monai.losses import DiceLoss

    config = config or TrainingConfig()
    _check(train_samples, "training")
    _check(validation_samples, "validation")
    loss_function = DiceLoss(sigmoid=True, smooth_nr=config.dice_smooth, smooth_dr=config.dice_smooth)
    history: list[dict] = []
    best = (-1.0, 0, 0, None)  # (dice, run, epoch, state)
    for run in range(config.runs):
        seed = config.seed + run
        network = make_unet(config.channels, seed=seed)
        if initial_state is not None:
            network.load_state_dict(initial_state)
        network.to(device)
        step = torch.compile(network) if config.compile else network
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.lr_factor,
                                                               patience=config.lr_patience)
        rng = np.random.default_rng(seed)
        run_best, since_best = -1.0, 0
        for epoch in range(1, config.max_epochs + 1):
            start = time.perf_counter()
            network.train()
            order = rng.permutation(len(train_samples))
            losses = []
            for first in range(0, len(order), config.batch_size):
                images, labels = _batch(train_samples, order[first:first + config.batch_size], device, rng,
                                        config.flip_probability)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, config.amp):
                    loss = loss_function(step(images).float(), labels)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                if should_cancel is not None and should_cancel():
                    raise Cancelled("training cancelled")
            validation = mean_dice(network, validation_samples, device, config.threshold, config.amp)
            scheduler.step(validation)
            record = {"run": run, "epoch": epoch, "train_loss": float(np.mean(losses)),
                      "validation_dice": validation, "lr": optimizer.param_groups[0]["lr"],
                      "seconds": time.perf_counter() - start}
            history.append(record)
            if progress:
                progress(record)
            if validation > run_best:
                run_best, since_best = validation, 0
                if validation > best[0]:
                    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
                    best = (validation, run, epoch, state)
            else:
                since_best += 1
                if since_best >= config.early_stopping_patience:
                    break
    network = make_unet(config.channels, seed=None)
    network.load_state_dict(best[3])
    return TrainingResult(network.eval(), best[0], best[1], best[2], history)
